"""Issue 36, items 11, 12, 14 and 15: a protocol that would run the same thing twice, a k-fold
that would quietly cross-validate the wrong file, labels that are not the classes 0..K-1 and
data too small to split are refused up front, in one line, before anything is trained or
written; a metric that a split cannot define is null with its reason; ``evaluate`` scores a
fold model on its own held-out fold only."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from refusal import refused
from tiny_tasks import FILES, classification_task, etth1_csv, forecast_task, gue_csv, write
from titans_sci.cli import main
from titans_sci.data.registry import load_manifest
from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.tasks import load_task, run

NO_CNN = "[baselines]\ncnn = false\n"


@pytest.fixture
def user_files(tmp_path):
    for split, rows in (("train", 32), ("dev", 16), ("test", 16)):
        gue_csv(tmp_path, split, rows)
    return tmp_path


def _task(folder, text: str, name: str = "t.toml"):
    return write(folder / name, text.replace("epochs = 2", "epochs = 1"))


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("seeds = [1, 1]", "seeds=[1, 1] names 1 more than once"),
        ('split = "kfold"\nseeds = [1, 2, 3]', "a kfold cross-validation runs with one seed"),
    ],
)
def test_classification_protocols_that_repeat_or_drop_runs_are_refused(
    user_files, capsys, protocol, message
):
    task = _task(user_files, classification_task("c", FILES, f"[protocol]\n{protocol}\n"))
    refused(capsys, ["run", str(task), "--out", str(user_files / "runs")], message,
            watch=[user_files], debug=False)  # fmt: skip


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("horizons = [12, 24, 24]", "horizons=[12, 24, 24] names 24 more than once"),
        ("horizons = [12]\nseeds = [2, 2]", "seeds=[2, 2] names 2 more than once"),
    ],
)
def test_forecast_protocols_that_repeat_runs_are_refused(tmp_path, capsys, protocol, message):
    data = f'file = "{etth1_csv(tmp_path, 900)}"\nsplit_rule = "ratio_70_10_20"'
    task = _task(tmp_path, forecast_task("f", data, f"[protocol]\n{protocol}\n"))
    refused(capsys, ["run", str(task), "--out", str(tmp_path / "runs")], message,
            watch=[tmp_path], debug=False)  # fmt: skip


def test_kfold_with_three_split_files_is_refused(user_files, capsys):
    task = _task(user_files, classification_task("c", FILES, '[protocol]\nsplit = "kfold"\n'))
    refused(capsys, ["run", str(task), "--out", str(user_files / "runs")],
            "'kfold' cross-validates one file", "dev, test, train", watch=[user_files],
            debug=False)  # fmt: skip


@pytest.mark.parametrize(
    ("relabel", "message"),
    [
        ({0: 1, 1: 2}, "the labels are {1, 2}, .*class 0 never occurs; renumber them 0..1"),
        ({0: 0, 1: 100000}, "the labels are {0, 100000}, .*class 1 never occurs"),
    ],
)
def test_labels_that_are_not_the_classes_0_to_k_are_refused_before_training(
    user_files, capsys, relabel, message
):
    for split in ("train", "dev", "test"):
        frame = pd.read_csv(user_files / f"{split}.csv")
        frame["label"] = frame["label"].map(relabel)
        frame.to_csv(user_files / f"{split}.csv", index=False)
    task = _task(user_files, classification_task("c", FILES, NO_CNN))
    line = refused(capsys, ["run", str(task), "--out", str(user_files / "runs")], "train.csv",
                   watch=[user_files], debug=False)  # fmt: skip
    assert re.search(message, line), line


def test_a_class_missing_from_a_split_gives_a_null_auroc_with_its_reason(user_files):
    """Item 14: a 3-class task whose test split lacks class 2 stopped with "auroc is nan"."""
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["train"].file)
    for split, rows in (("train", range(0, 60)), ("dev", range(60, 90)), ("test", range(90, 120))):
        part = frame.iloc[list(rows)].copy()
        part["label"] = [i % 3 for i in range(len(part))]
        if split == "test":
            part["label"] = part["label"].clip(upper=1)  # no class 2
        part.to_csv(user_files / f"{split}.csv", index=False)
    probabilities = np.full((4, 3), 1 / 3)
    assert classification_metrics(np.array([0, 1, 0, 1]), probabilities)["auroc"] is None
    task = load_task(_task(user_files, classification_task("three", FILES, NO_CNN)))
    result = run(task, user_files / "runs")
    assert all(row["auroc"] is None for row in result["runs"])
    assert any("misses a class" in note for note in result["notes"])
    json.loads((user_files / "runs" / "three" / "results.json").read_text())


def test_tiny_data_is_refused_in_one_line_not_by_scikit_learn(user_files, capsys):
    """Item 15: folds with fewer records than a class, or a training part of one class."""
    (user_files / "small.csv").write_text(
        (user_files / "test.csv").read_text().splitlines()[0] + "\n"
        + "\n".join((user_files / "test.csv").read_text().splitlines()[1:7]) + "\n"
    )  # fmt: skip
    cv = '[protocol]\nsplit = "kfold"\nfolds = 10\n'
    kfold = _task(user_files, classification_task("k", 'test = "small.csv"', cv), "k.toml")
    refused(capsys, ["run", str(kfold), "--out", str(user_files / "runs")], "small.csv",
            "fewer than folds = 10", watch=[user_files], debug=False)  # fmt: skip
    one = _task(user_files, classification_task("o", FILES + "\nmax_train = 1"), "o.toml")
    refused(capsys, ["run", str(one), "--out", str(user_files / "runs")],
            "a single class", "max_train", watch=[user_files], debug=False)  # fmt: skip


def test_evaluate_scores_a_fold_model_on_its_own_held_out_fold(tmp_path, capsys):
    """Item 12: evaluate scored every sequence of the test-only set, the fold's training
    sequences included."""
    name = "genomic_benchmarks/human_nontata_promoters"
    extra = '[protocol]\nsplit = "kfold"\nfolds = 20\nrun_folds = [1]\n' + NO_CNN
    text = classification_task("cv", f'dataset = "{name}"\nmax_train = 48', extra)
    task = _task(tmp_path, text)
    assert main(["train", "-q", str(task), "--out", str(tmp_path / "runs")]) == 0
    model = tmp_path / "runs" / "cv" / "checkpoints" / "fold1" / "titans" / "model"
    capsys.readouterr()
    assert main(["evaluate", str(model)]) == 0
    scored = json.loads(capsys.readouterr().out)["n"]
    total = len(pd.read_csv(load_manifest(name).splits["test"].file))
    assert abs(scored - total / 20) <= 2  # fold 1 of 20 (stratified), not all of them
