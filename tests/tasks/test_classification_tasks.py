"""Classification tasks: both protocols end to end on real data in user files, labels checked,
runs reproducible."""

from __future__ import annotations

import json

import pytest
import torch

from tiny_tasks import classification_task, gue_csv, write
from titans_sci.cli import main
from titans_sci.tasks import load_task, run
from titans_sci.tasks.classification import Classification
from titans_sci.tasks.config import ClassificationProtocol


def _user_files(folder, rows=(("train", 128), ("dev", 40), ("test", 40))) -> str:
    names = {split: gue_csv(folder, split, n) for split, n in rows}
    return "\n".join(f'{split} = "{name}"' for split, name in names.items())


def test_train_dev_test_on_user_files(tmp_path):
    text = classification_task("user", _user_files(tmp_path), "[protocol]\nseeds = [1, 2]\n")
    result = run(load_task(write(tmp_path / "task.toml", text)), tmp_path / "runs")
    assert len(result["runs"]) == 2 * 3  # two seeds x (Titans, CNN, k-mer LR)
    assert set(result["summary"]) == {"titans", "kmer_lr", "cnn"}
    for metrics in result["summary"].values():
        assert set(metrics) == {"accuracy", "mcc", "f1", "auroc"}
        assert metrics["accuracy"]["n"] == 2
    saved = json.loads((tmp_path / "runs" / "user" / "results.json").read_text())
    assert saved["summary"] == result["summary"]
    assert saved["fingerprint"]["data"]["train"]["sha256"]
    assert (tmp_path / "runs" / "user" / "runs.csv").read_text().startswith("seed,model,")


def test_kfold_on_a_test_only_set(tmp_path):
    data = _user_files(tmp_path, (("test", 60),))
    extra = '[protocol]\nsplit = "kfold"\nfolds = 2\n'
    result = run(load_task(write(tmp_path / "t.toml", classification_task("folds", data, extra))),
                 tmp_path / "runs")  # fmt: skip
    assert [r["fold"] for r in result["runs"]] == [0, 0, 0, 1, 1, 1]
    assert "stratified 2-fold cross-validation on the test split" in result["protocol"]


def test_unknown_and_missing_labels_are_named(tmp_path):
    (tmp_path / "train.csv").write_text("sequence,label\nACGTACGT,0\nTTTTACGT,1\n")
    (tmp_path / "dev.csv").write_text("sequence,label\nACGTACGA,0\nACGTACGC,7\n")
    (tmp_path / "test.csv").write_text("sequence\nACGTACGT\n")
    (tmp_path / "test0.csv").write_text("sequence,label\nACGTACGA,0\n")
    seven = classification_task("x", 'train = "train.csv"\ndev = "dev.csv"\ntest = "test0.csv"')
    with pytest.raises(ValueError, match=r"dev.csv: record row2 has label 7, which the training"):
        Classification(load_task(write(tmp_path / "a.toml", seven)))
    unlabelled = classification_task("x", 'train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"')
    with pytest.raises(ValueError, match=r"test.csv: records without a label"):
        Classification(load_task(write(tmp_path / "b.toml", unlabelled)))


def test_runs_are_reproducible(tmp_path):
    """The same task and seed give the same numbers, whatever ran before in the process."""
    text = classification_task(
        "again", _user_files(tmp_path, (("train", 40), ("dev", 40), ("test", 40)))
    )
    first = run(load_task(write(tmp_path / "a.toml", text)), tmp_path / "a")
    torch.rand(100)  # move the global random state
    second = run(load_task(write(tmp_path / "b.toml", text)), tmp_path / "b")
    assert first["runs"] == second["runs"]


def test_a_model_run_alone_gives_its_rows_of_the_whole_run(tmp_path):
    """``run(models=[...])`` (how the annotation benchmark runs a seed in parts) trains each
    model as the whole run does: its rows are the whole run's, to the bit."""
    text = classification_task(
        "parts", _user_files(tmp_path, (("train", 40), ("dev", 40), ("test", 40)))
    )
    whole = run(load_task(write(tmp_path / "a.toml", text)), tmp_path / "whole")
    cnn = run(load_task(write(tmp_path / "b.toml", text)), tmp_path / "cnn", models=["cnn"])
    titans = run(load_task(write(tmp_path / "c.toml", text)), tmp_path / "t", models=["titans"])
    assert [r["model"] for r in cnn["runs"]] == ["cnn", "kmer_lr"]
    assert whole["runs"] == [titans["runs"][0], *cnn["runs"]]


def test_cli_runs_a_task_and_reports_bad_ones(tmp_path, capsys):
    text = classification_task(
        "cli", _user_files(tmp_path, (("train", 40), ("dev", 40), ("test", 40)))
    )
    task = write(tmp_path / "cli.toml", text)
    assert main(["run", "-q", str(task), "--out", str(tmp_path / "runs")]) == 0
    assert "accuracy" in capsys.readouterr().out
    bad = write(tmp_path / "bad.toml", 'format = 2\nname = "x"\n[data]\n')
    assert main(["run", str(bad)]) == 2
    assert "give either dataset or train/dev/test" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ({"split": "kfold", "run_folds": (5,)}, "fold 5 is not in 0..4"),
        ({"split": "kfold", "run_folds": (1, 1)}, "names a fold twice"),
        ({"run_folds": (0,)}, "needs split = 'kfold'"),
    ],
)
def test_run_folds_names_folds_of_the_cross_validation_once(protocol, message):
    with pytest.raises(ValueError, match=message):
        ClassificationProtocol(**protocol)
