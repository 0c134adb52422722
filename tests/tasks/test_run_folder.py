"""Run folders that never lose or mix results: fingerprints, stale folders, locks, strict JSON."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tiny_tasks import classification_task, gue_csv, user_classification_task, write
from titans_sci.cli import main
from titans_sci.tasks import load_task, run
from titans_sci.tasks.run_folder import RunFolder, write_csv, write_json


def _strict(path):
    """The JSON document at ``path``, refusing NaN and Infinity as Python's json does not."""

    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def user_task(tmp_path):
    """A tiny classification task on real GUE sequences in user files."""
    return user_classification_task(tmp_path, "user", (64, 24, 24), "[baselines]\ncnn = false\n")


def test_a_folder_with_an_earlier_run_is_refused_unless_resumed_or_overwritten(user_task, tmp_path):
    out = tmp_path / "runs"
    first = run(load_task(user_task), out)
    with pytest.raises(ValueError, match=r"runs/user: holds an earlier run \(.*--resume"):
        run(load_task(user_task), out)
    mine = out / "user" / "notes.txt"  # a user's file beside the run: never the run's to remove
    mine.write_text("my notes")
    stale = out / "user" / "report.md"
    stale.write_text("from another run")
    again = run(load_task(user_task), out, overwrite=True)
    assert mine.read_text() == "my notes"
    assert stale.read_text() != "from another run"  # the run's own files were replaced
    assert again["runs"] == first["runs"]
    left = [
        out / "user/checkpoints/seed1/titans/checkpoint.pt.4242.tmp",
        out / "user/surprise.png.4242.tmp",
    ]
    for file in left:  # what a killed run leaves half-written
        file.write_bytes(b"half")
    resumed = run(load_task(user_task), out, resume=True)  # finished: nothing trained again
    assert resumed["runs"] == first["runs"]
    assert not any(file.exists() for file in left)


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"training.batch_size": 16}, "task.training.batch_size: 32 before, 16 now"),
        ({"training.lr": 0.01}, "task.training.lr: 0.001 before, 0.01 now"),
        ({"model.backbone.dim": 8}, "task.model.backbone.dim: 16 before, 8 now"),
        ({"protocol.seeds": [2]}, r"task.protocol.seeds\[0\]: 1 before, 2 now"),
    ],
)
def test_resume_refuses_another_config_and_names_the_difference(
    user_task, tmp_path, change, difference
):
    out = tmp_path / "runs"
    run(load_task(user_task), out)
    with pytest.raises(
        ValueError, match=f"cannot resume, the folder holds another run .*{difference}"
    ):
        run(load_task(user_task, change), out, resume=True)


def test_resume_refuses_changed_data_in_the_folder_and_in_each_checkpoint(user_task, tmp_path):
    out = tmp_path / "runs"
    run(load_task(user_task), out)
    train = tmp_path / "train.csv"
    rows = train.read_text().splitlines()
    train.write_text("\n".join([rows[0], *reversed(rows[1:])]) + "\n")  # same records, new order
    with pytest.raises(
        ValueError, match=r"data.train.sha256: \"[0-9a-f]+\" before, \"[0-9a-f]+\" now"
    ):
        run(load_task(user_task), out, resume=True)
    (out / "user" / "run.json").unlink()  # the checkpoints still know
    with pytest.raises(ValueError, match=r"not a titans-sci run's \(no run.json\)"):
        run(load_task(user_task), out, resume=True)
    folder = out / "user" / "checkpoints" / "seed1" / "titans"
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier
    from titans_sci.train import Trainer

    task = load_task(user_task)
    model = DNAClassifier(ClassifierConfig(task.model.backbone))
    with pytest.raises(
        ValueError, match="checkpoint.pt: cannot resume, this checkpoint is of another run"
    ):
        Trainer(model, task.training, 1, folder, fingerprint={"data": "other"}).fit(
            lambda e, g: [], lambda b: torch.zeros(()), lambda: 0.0, resume=True
        )


def test_a_second_run_on_the_same_folder_stops_at_once(tmp_path):
    with RunFolder(tmp_path / "x", {"a": 1}):
        start = time.time()
        with pytest.raises(ValueError, match=r"another run is using this folder \(process \d+\)"):
            RunFolder(tmp_path / "x", {"a": 1}, resume=True).__enter__()
        assert time.time() - start < 1
    with RunFolder(tmp_path / "x", {"a": 1}, resume=True):  # released: free again
        pass


def test_a_concurrent_cli_run_stops_with_one_line(user_task, tmp_path, capsys):
    out = tmp_path / "runs"
    slow = write(tmp_path / "slow.toml", user_task.read_text().replace("epochs = 1", "epochs = 50"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "titans_sci.cli", "run", "-q", "--out", str(out), str(slow)]
    proc = subprocess.Popen(command, env=env)
    try:
        lock = out / "user" / ".lock"
        deadline = time.time() + 60
        while not (lock.exists() and lock.read_text().strip() == str(proc.pid)):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert main(["run", "-q", "--resume", "--out", str(out), str(user_task)]) == 2
        err = capsys.readouterr().err
        assert f"another run is using this folder (process {proc.pid})" in err
        assert err.count("\n") == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_json_and_csv_are_strict_and_name_what_was_not_finite(tmp_path):
    write_json(tmp_path / "r.json", {"runs": [{"mse": math.nan}, {"mse": 1.0, "x": math.inf}]})
    data = _strict(tmp_path / "r.json")
    assert data["runs"] == [{"mse": None}, {"mse": 1.0, "x": None}]
    assert data["notes"] == ["not finite, written as null: runs[0].mse, runs[1].x"]
    write_csv(tmp_path / "r.csv", [{"a": math.nan, "b": 1}, {"a": None, "c": 2.5}])
    assert (tmp_path / "r.csv").read_text().splitlines() == ["a,b,c", ",1,", ",,2.5"]


def test_a_one_class_test_set_writes_null_auroc_with_the_reason(tmp_path):
    gue_csv(tmp_path, "train", 64)
    gue_csv(tmp_path, "dev", 24)
    import pandas as pd

    frame = pd.read_csv(tmp_path / "dev.csv")
    frame[frame["label"] == 1].to_csv(tmp_path / "one.csv", index=False)
    data = 'train = "train.csv"\ndev = "dev.csv"\ntest = "one.csv"'
    task = write(
        tmp_path / "t.toml", classification_task("one", data, "[baselines]\ncnn = false\n")
    )
    result = run(load_task(task), tmp_path / "runs")
    saved = _strict(tmp_path / "runs" / "one" / "results.json")
    assert [r["auroc"] for r in saved["runs"]] == [None, None]
    assert saved["summary"]["titans"]["auroc"]["mean"] is None
    assert any("auroc" in note and "single class" in note for note in saved["notes"])
    assert result["summary"]["titans"]["accuracy"]["mean"] is not None


def test_results_are_written_before_the_report_can_fail(user_task, tmp_path, monkeypatch):
    from titans_sci import report

    def broken(*args, **kwargs):
        raise RuntimeError("the report failed")

    monkeypatch.setattr(report, "surprise_trace", broken)
    with pytest.raises(RuntimeError, match="the report failed"):
        run(load_task(user_task), tmp_path / "runs")
    folder = tmp_path / "runs" / "user"
    assert _strict(folder / "results.json")["runs"]
    assert (folder / "runs.csv").exists() and not (folder / "report.md").exists()
