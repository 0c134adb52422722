"""Task files: the config tree they map onto, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_tasks import classification_task, forecast_task, write
from titans_sci.data.registry import load_manifest
from titans_sci.models import MAGConfig
from titans_sci.tasks import load_task
from titans_sci.tasks.config import FORMAT, TASK_KINDS, AnnotationTask, PretrainTask

TASK_FILES = sorted(Path("tasks").glob("*.toml"))
GUE = 'dataset = "gue/prom/prom_core_tata"'
ETT = 'dataset = "ett/ETTh1"'
CL = 'format = 2\nname = "x"\n[data]\ndataset = "d"\n'
FC = 'format = 2\nkind = "forecasting"\nname = "x"\n[data]\ndataset = "d"\n'


def test_every_bundled_task_file_loads_onto_the_tree():
    assert len(TASK_FILES) >= 9
    for path in TASK_FILES:
        task = load_task(path)
        assert task.format == FORMAT
        assert task.name == path.stem
        assert isinstance(task, TASK_KINDS[task.kind].config)
        if isinstance(task, PretrainTask):
            assert task.data.bundled and not task.data.files
        elif isinstance(task, AnnotationTask):
            assert load_manifest(task.data.genome).kind == "genome"
        else:
            assert load_manifest(task.data.dataset).name == task.data.dataset


def test_nested_tables_reach_the_memory_and_the_variant(tmp_path):
    text = (
        classification_task("x", GUE)
        .replace("[model.backbone]\n", '[model.backbone]\nvariant = "mag"\nwindow = 8\n')
        .replace('preset = "titans"', 'preset = "yaad"')
    )
    task = load_task(write(tmp_path / "t.toml", text))
    assert isinstance(task.model.backbone, MAGConfig)
    assert task.model.backbone.window == 8
    assert task.model.backbone.memory.bias == "huber"  # the yaad preset
    assert task.model.backbone.memory.num_heads == 2  # the table's override


def test_overrides_set_dotted_keys_before_checking(tmp_path):
    path = write(tmp_path / "t.toml", forecast_task("x", ETT))
    task = load_task(path, {"training.epochs": 1, "protocol.horizons": [24], "data.max_eval": 8})
    assert (task.training.epochs, task.protocol.horizons, task.data.max_eval) == (1, (24,), 8)
    with pytest.raises(ValueError, match="training: epochs=0; expected >= 1"):
        load_task(path, {"training.epochs": 0})


def test_relative_data_files_are_relative_to_the_task_file(tmp_path):
    path = write(
        tmp_path / "t.toml", forecast_task("x", 'file = "a.csv"\nsplit_rule = "ratio_70_10_20"')
    )
    assert load_task(path).data.file == str(tmp_path / "a.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[task]\nname = "x"\ndataset = "d"\n', r"no 'format' key; add format = 2 .*format-1 file"),
        ('format = 1\nname = "x"\n', "format = 1; this titans-sci reads format 2"),
        ('format = 2\nkind = "weather"\nname = "x"\n', "kind = 'weather'"),
        ('format = 2\n[data]\ndataset = "d"\n', "missing key 'name'"),
        ('format = 2\nname = "../../x"\n[data]\ndataset = "d"\n',
         r"name = '../../x': String should match"),
        ('format = 2\nname = "a/b"\n[data]\ndataset = "d"\n', "name = 'a/b'"),
        ('format = 2\nname = ".hidden"\n[data]\ndataset = "d"\n', "name = '.hidden'"),
        ('format = 2\nname = "x"\n', "missing key 'data'"),
        ('format = 2\nname = "x"\n[data]\n', "give either dataset or train/dev/test"),
        (CL + '[optimizer]\n', "unknown key 'optimizer'"),
        (CL + 'colour = 1\n', "unknown key 'data.colour'"),
        (CL + '[training]\nepochs = "5"\n',
         "training.epochs = '5': Input should be a valid integer"),
        (CL + '[training]\npatience = true\n',
         "training.patience = True: Input should be a valid integer"),
        (CL + '[protocol]\nsplit = "cv"\n',
         "protocol.split = 'cv': Input should be 'train_dev_test' or 'kfold'"),
        (CL + '[model.backbone]\nvariant = "rnn"\n',
         "model.backbone names 'rnn'; expected one of 'lmm', 'mac', 'mag', 'mal'"),
        (CL + '[model.backbone]\nmemory = { preset = "atlas" }\n',
         "unknown memory preset 'atlas'"),
        (CL + '[model.backbone.memory]\nchunk_size = 300\n',
         "chunk_size=300; expected 1 to 256"),
        ('format = 2\nkind = "forecasting"\nname = "x"\n[data]\nfile = "a.csv"\n',
         "needs split_rule"),
        (FC + '[protocol]\nhorizons = [0]\n',
         r"horizons=\[0\]; expected ints >= 1"),
        (FC + '[training]\nloss_units = "raw"\n',
         "training.loss_units = 'raw'"),
        (FC + '[model]\nlookback_skip = 1\n',
         "model.lookback_skip = 1: Input should be a valid boolean"),
        (FC + '[training]\nrc_augment = true\n',
         "unknown key 'training.rc_augment'"),
        ("[task\n", "cannot read the task file"),
    ],
)  # fmt: skip
def test_bad_task_files_are_one_line_naming_file_and_key(tmp_path, text: str, message: str):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ValueError, match=message) as info:
        load_task(path)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)
