"""Genomic task files: checking, the two protocols end to end on real data, and the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from titans_sci.cli import main
from titans_sci.data.registry import load_manifest
from titans_sci.genomics import load_task, run_task

TINY = """
[model]
variant = "lmm"
dim = 16
depth = 1
memory = {{ preset = "titans", num_heads = 2, head_dim = 8, chunk_size = 16 }}
[training]
epochs = 2
max_train = 128
batch_size = 32
"""


def _write(path, text: str):
    path.write_text(text)
    return path


def _real_csv(tmp_path, split: str, rows: int) -> str:
    """A real subset of bundled GUE prom_core_tata as a user CSV (both classes)."""
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits[split].file)
    subset = frame.groupby("label").head(rows // 2)
    path = tmp_path / f"{split}.csv"
    subset.to_csv(path, index=False)
    return path.name


def test_train_dev_test_on_user_files(tmp_path):
    names = {s: _real_csv(tmp_path, s, n) for s, n in (("train", 128), ("dev", 40), ("test", 40))}
    task = _write(
        tmp_path / "task.toml",
        f'[task]\nname = "user"\ntrain = "{names["train"]}"\ndev = "{names["dev"]}"\n'
        f'test = "{names["test"]}"\nseeds = [1, 2]\n' + TINY.format(),
    )
    result = run_task(task, tmp_path / "runs")
    assert len(result["runs"]) == 2 * 3  # two seeds x (Titans, k-mer LR, CNN)
    assert set(result["summary"]) == {"titans", "kmer_lr", "cnn"}
    for metrics in result["summary"].values():
        assert set(metrics) == {"accuracy", "mcc", "f1", "auroc"}
        assert metrics["accuracy"]["n"] == 2
    saved = json.loads((tmp_path / "runs" / "user" / "results.json").read_text())
    assert saved["summary"] == result["summary"]
    assert (tmp_path / "runs" / "user" / "runs.csv").read_text().startswith("seed,model,")


def test_kfold_on_a_test_only_set(tmp_path):
    name = _real_csv(tmp_path, "test", 60)
    task = _write(
        tmp_path / "task.toml",
        f'[task]\nname = "folds"\ntest = "{name}"\nprotocol = "kfold"\nfolds = 2\n' + TINY.format(),
    )
    result = run_task(task, tmp_path / "runs")
    assert len(result["runs"]) == 2 * 3
    assert "stratified 2-fold cross-validation on the test split" in result["protocol"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[task]\nname = "x"\ndataset = "gue/prom/prom_core_tata"\n[optimizer]\n', "unknown table"),
        ('[task]\nname = "x"\ndataset = "gue/prom/prom_core_tata"\ncolour = 1\n', "colour"),
        ('[task]\nname = "x"\ndataset = "gue/prom/prom_core_tata"\n[training]\nepochs = "5"\n',
         r"\[training\] epochs = '5' should be int"),
        ('[model]\nvariant = "lmm"\n', "missing the \\[task\\] table"),
        ('[task]\nname = "x"\ndataset = "d"\nprotocol = "cv"\n', "protocol = 'cv'"),
        ('[task]\nname = "x"\n', "needs either dataset or train/dev/test"),
        ('[task]\nname = "x"\ndataset = "d"\n[model]\nvariant = "rnn"\n', "variant = 'rnn'"),
        ("[task\n", "cannot read the task file"),
    ],
)  # fmt: skip
def test_bad_task_files_name_file_and_key(tmp_path, text: str, message: str):
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ValueError, match=message) as info:
        load_task(path)
    assert str(path) in str(info.value)


def test_bundled_task_files_parse():
    for name in ("gue_prom_core_tata", "gb_human_nontata_promoters"):
        task = load_task(f"tasks/{name}.toml")
        assert load_manifest(task.task.dataset).name == task.task.dataset


def test_cli_runs_a_task_and_reports_bad_ones(tmp_path, capsys):
    names = {s: _real_csv(tmp_path, s, 40) for s in ("train", "dev", "test")}
    task = _write(
        tmp_path / "cli.toml",
        f'[task]\nname = "cli"\ntrain = "{names["train"]}"\ndev = "{names["dev"]}"\n'
        f'test = "{names["test"]}"\n' + TINY.format(),
    )
    assert main(["run", str(task), "--out", str(tmp_path / "runs")]) == 0
    assert "accuracy" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.toml", '[task]\nname = "x"\n')
    assert main(["run", str(bad)]) == 2
    assert "needs either dataset" in capsys.readouterr().err


def test_unknown_and_missing_labels_are_named(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sequence,label\nACGTACGT,0\nTTTTACGT,1\n")
    dev = tmp_path / "dev.csv"
    dev.write_text("sequence,label\nACGTACGA,0\nACGTACGC,7\n")
    nolabel = tmp_path / "test.csv"
    nolabel.write_text("sequence\nACGTACGT\n")
    task = _write(
        tmp_path / "t.toml",
        '[task]\nname = "x"\ntrain = "train.csv"\ndev = "dev.csv"\ntest = "dev.csv"\n',
    )
    from titans_sci.genomics import load_splits

    with pytest.raises(ValueError, match=r"dev.csv: record row2 has label 7, which the training"):
        load_splits(load_task(task))
    task2 = _write(
        tmp_path / "t2.toml", '[task]\nname = "x"\ntrain = "train.csv"\ntest = "test.csv"\n'
    )
    with pytest.raises(ValueError, match=r"test.csv: records without a label"):
        load_splits(load_task(task2))


def test_runs_are_reproducible(tmp_path):
    """The same task and seed give the same numbers, whatever ran before in the process."""
    names = {s: _real_csv(tmp_path, s, 40) for s in ("train", "dev", "test")}
    text = (
        f'[task]\nname = "again"\ntrain = "{names["train"]}"\ndev = "{names["dev"]}"\n'
        f'test = "{names["test"]}"\n' + TINY.format()
    )
    first = run_task(_write(tmp_path / "a.toml", text), tmp_path / "runs")
    torch.rand(100)  # move the global random state
    second = run_task(_write(tmp_path / "b.toml", text), tmp_path / "runs")
    assert first["runs"] == second["runs"]
