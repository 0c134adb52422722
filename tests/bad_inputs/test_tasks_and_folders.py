"""Bad task files, bad data set folders and a full disk: one clear line, nothing half-written."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

import pytest

from refusal import refused
from tiny_tasks import classification_task, gue_csv, write
from titans_sci.cli import main
from titans_sci.tasks import load_task, run

GUE = 'dataset = "gue/prom/prom_core_tata"'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[training]\nbatch_size = 0\n", "batch_size=0; expected >= 1"),
        ("[training]\nbatch_size = -5\n", "batch_size=-5; expected >= 1"),
        ("[training]\nlr = inf\n", "training.lr = inf: expected a finite number"),
        ("[training]\nlr = nan\n", "training.lr = nan: expected a finite number"),
        ("[training]\npatience = 0\n", "patience=0; expected >= 1"),
        ("[training]\nweight_decay = -1.0\n", "weight_decay=-1.0"),
        ("[protocol]\nseeds = []\n", "seeds is empty"),
        ('[protocol]\nseeds = ["a"]\n', "protocol.seeds[0] = 'a': Input should be a valid integer"),
        ('[protocol]\nsplit = "kfold"\nfolds = 1\n', "folds=1; expected >= 2"),
        ("[data.extra]\n", "unknown key 'data.extra'"),
    ],
)  # fmt: skip
def test_bad_classification_values_name_the_key_and_the_range(tmp_path, capsys, table, message):
    text = classification_task("x", GUE) + table
    if table.startswith("[training]"):  # set the key in the task's own [training] table
        key = table.split("\n")[1].split(" = ")[0]
        text = re.sub(rf"^{key} = .*\n", "", classification_task("x", GUE), flags=re.M)
        text = text.replace("[training]\n", table)
    path = write(tmp_path / "t.toml", text)
    refused(capsys, ["run", str(path), "--out", str(tmp_path / "runs")], str(path), message,
            watch=[tmp_path])  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('memory = { preset = "titans", colour = 1 }',
         "unknown key 'model.backbone.memory.colour'"),
        ('variant = "mac"\nsegment_len = 24\nmemory = { preset = "titans", chunk_size = 16 }',
         "segment_len=24 must be a positive multiple of memory.chunk_size=16"),
        ("max_step = 0.0", "max_step=0.0; must be > 0"),
    ],
)  # fmt: skip
def test_bad_backbone_values_name_the_key(tmp_path, capsys, change, message):
    text = classification_task("x", GUE)
    text = text.replace(
        'memory = { preset = "titans", num_heads = 2, head_dim = 8, chunk_size = 16 }', change
    )
    path = write(tmp_path / "t.toml", text)
    refused(capsys, ["run", str(path), "--out", str(tmp_path / "runs")], str(path), message)


def test_a_mac_segment_length_is_a_task_file_key(tmp_path):
    text = classification_task("x", GUE).replace(
        "[model.backbone]\n", '[model.backbone]\nvariant = "mac"\nsegment_len = 32\n'
    )
    task = load_task(write(tmp_path / "t.toml", text))
    assert task.model.backbone.segment_len == 32


def test_other_values_are_checked_where_read(tmp_path, capsys):
    for data, message in (
        (GUE + "\nmax_train = -1", "max_train=-1; expected >= 0"),
        (GUE + "\nmax_eval = -3", "max_eval=-3; expected >= 0"),
    ):
        path = write(tmp_path / "t.toml", classification_task("x", data))
        refused(capsys, ["run", str(path)], str(path), message, debug=False)


def test_data_verify_reports_a_bad_manifest_and_checks_the_others(tmp_path, monkeypatch, capsys):
    from titans_sci.resources import datasets_dir

    root = tmp_path / "datasets"
    shutil.copytree(datasets_dir() / "illness", root / "illness")
    (root / "broken").mkdir()
    (root / "broken" / "manifest.toml").write_text('name = "broken"\nkind = "dna"\n')
    monkeypatch.setenv("TITANS_SCI_DATASETS", str(root))
    assert main(["data", "verify"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "broken/manifest.toml" in out
    assert "ok   illness" in out and "1/2 data sets verified" in out


def _user_task(tmp_path: Path) -> Path:
    for split, rows in (("train", 48), ("dev", 24), ("test", 24)):
        gue_csv(tmp_path, split, rows)
    data = 'train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"'
    text = classification_task("full", data, "[baselines]\ncnn = false\n")
    return write(tmp_path / "t.toml", text.replace("epochs = 2", "epochs = 1"))


@pytest.mark.parametrize("victim", ["results.json", "runs.csv", "checkpoint.pt"])
def test_a_full_disk_is_one_line_and_leaves_no_half_written_pair(
    tmp_path, monkeypatch, capsys, victim
):
    """A writer that runs out of space (OSError ENOSPC, as a full disk raises it) while writing
    ``victim``: one line naming the file, exit 2, no results.json without its runs.csv, no
    temporary file left, and the run resumes once there is space."""
    import builtins

    import torch

    task = _user_task(tmp_path)
    real_open, real_save = builtins.open, torch.save

    def full(path, *args, **kwargs):
        if Path(str(path)).name.startswith(victim) and Path(str(path)).name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, *args, **kwargs)

    def full_save(obj, path, *args, **kwargs):
        if Path(str(path)).name.startswith(victim):
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed"
            )
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    monkeypatch.setattr(torch, "save", full_save)
    out = tmp_path / "runs"
    line = refused(capsys, ["run", "-q", str(task), "--out", str(out)], victim, debug=False)
    assert "disk" in line.lower() or "space" in line.lower()
    folder = out / "full"
    assert not list(folder.rglob("*.tmp"))
    assert (folder / "results.json").exists() <= (folder / "runs.csv").exists()
    if victim == "runs.csv":
        assert not (folder / "results.json").exists()
    monkeypatch.undo()
    assert run(load_task(task), out, resume=True)["runs"]
