"""Data-parallel training under torchrun (gloo, two CPU processes) equals one process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    '''
    """Train a small MLP on real ETTh1 rows; the result is saved by process 0."""
    import sys
    import torch
    from torch import nn
    from titans_sci import distributed
    from titans_sci.data.timeseries import load_dataset
    from titans_sci.train import TrainConfig, Trainer

    import os
    import time

    out, epochs, stop_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pause = float(os.environ.get("PAUSE_PER_BATCH", "0"))
    distributed.init_from_env()
    with open(f"{out}/pid{distributed.rank()}", "w") as f:
        f.write(str(os.getpid()))
    values = torch.from_numpy(load_dataset("ett/ETTh1").values[:1000]).float()
    values = (values - values.mean(0)) / values.std(0)
    x, y = values[:, :6], values[:, 6:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 1))

    def batches(epoch, gen):
        for i, idx in enumerate(torch.randperm(800, generator=gen).split(50)):
            if epoch == stop_after and i == 2:
                raise SystemExit(3)  # an interruption after the previous epoch's checkpoint
            time.sleep(pause)
            yield x[idx], y[idx]

    def loss(batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    def score():
        with torch.no_grad():
            return -nn.functional.mse_loss(model(x[800:]), y[800:]).item()

    config = TrainConfig(epochs=epochs, lr=3e-3, clip_norm=1.0)
    # the caller decides who writes (the task runner: process 0)
    trainer = Trainer(model, config, seed=1, directory=out, writes=distributed.is_main())
    result = trainer.fit(batches, loss, score, resume=True)
    if distributed.is_main():
        torch.save({"state": model.state_dict(), "scores": result.dev_scores}, out + "/final.pt")
    '''
)


def _command(tmp_path, name: str, nproc: int, epochs: int, stop_after: int = -1) -> list[str]:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    prefix = [sys.executable]
    if nproc > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*prefix, str(script), str(out), str(epochs), str(stop_after)]


ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def _run(tmp_path, name: str, nproc: int, epochs: int, stop_after: int = -1) -> int:
    command = _command(tmp_path, name, nproc, epochs, stop_after)
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300).returncode


def _final(tmp_path, name: str) -> dict:
    return torch.load(tmp_path / name / "final.pt", weights_only=False)


def test_two_processes_match_one_and_resume_anywhere(tmp_path):
    """Two gloo processes (each half of every batch of 50, gradients all-reduced) reach the
    parameters of one process with the whole batch, within 1e-5 after 3 epochs of 16 steps;
    only process 0 writes (one log line per epoch); a 2-process checkpoint resumes in one
    process to the same result."""
    assert _run(tmp_path, "one", 1, 3) == 0
    assert _run(tmp_path, "two", 2, 3) == 0
    one, two = _final(tmp_path, "one"), _final(tmp_path, "two")
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, rtol=1e-5, atol=1e-5)
    assert two["scores"] == pytest.approx(one["scores"], rel=1e-5)
    log = (tmp_path / "two" / "train.log").read_text().splitlines()
    assert [line.split(":")[0] for line in log] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]

    assert _run(tmp_path, "moved", 2, 3, stop_after=1) != 0  # interrupted in epoch 2
    assert not (tmp_path / "moved" / "final.pt").exists()
    assert _run(tmp_path, "moved", 1, 3) == 0  # resumed by one process
    moved = _final(tmp_path, "moved")
    for key, value in one["state"].items():
        torch.testing.assert_close(moved["state"][key], value, rtol=1e-5, atol=1e-5)


def test_a_killed_worker_stops_the_job_with_a_resumable_checkpoint(tmp_path):
    """SIGKILL one of two workers once the first checkpoint is on disk: torchrun stops the job
    (non-zero exit, a message naming the failed worker) well within a minute, not a hang, and
    the checkpoint resumes in one process to the result of an uninterrupted run."""
    import os
    import signal
    import time

    command = _command(tmp_path, "killed", 2, 3)
    env = {**ENV, "PAUSE_PER_BATCH": "0.05"}
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint, victim = tmp_path / "killed" / "checkpoint.pt", tmp_path / "killed" / "pid1"
    deadline = time.time() + 120
    while not (checkpoint.exists() and victim.exists()) and time.time() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "no checkpoint within 120 s"
    os.kill(int(victim.read_text()), signal.SIGKILL)
    start = time.time()
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0 and time.time() - start < 60
    assert b"Signals.SIGKILL" in err or b"SIGKILL" in err or b"failed" in err.lower()
    assert not (tmp_path / "killed" / "final.pt").exists()
    assert _run(tmp_path, "killed", 1, 3) == 0
    assert _run(tmp_path, "whole", 1, 3) == 0
    resumed, whole = _final(tmp_path, "killed"), _final(tmp_path, "whole")
    for key, value in whole["state"].items():
        torch.testing.assert_close(resumed["state"][key], value, rtol=1e-5, atol=1e-5)


def test_a_task_runs_data_parallel_through_the_cli(tmp_path):
    """``torchrun -m titans_sci.cli run TASK`` with two processes: one run folder written by
    process 0 (one line per epoch in each log, the results and the report), numbers within
    float rounding of one process's."""
    import json

    from tiny_tasks import classification_task, gue_csv

    for split, rows in (("train", 64), ("dev", 32), ("test", 32)):
        gue_csv(tmp_path, split, rows)
    data = 'train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"'
    text = classification_task("ddp", data, "[baselines]\ncnn = false\nkmer_lr = false\n")
    (tmp_path / "task.toml").write_text(text)
    cli = ["-m", "titans_sci.cli", "run", "-q", str(tmp_path / "task.toml")]
    runs = {}
    for nproc in (1, 2):
        out = tmp_path / f"out{nproc}"
        prefix = [sys.executable]
        if nproc > 1:
            prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        done = subprocess.run(
            [*prefix, *cli, "--out", str(out)], env=ENV, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        folder = out / "ddp"
        runs[nproc] = json.loads((folder / "results.json").read_text())["runs"][0]
        log = (folder / "checkpoints/seed1/titans/train.log").read_text().splitlines()
        assert [line.split(":")[0] for line in log] == ["epoch 1/2", "epoch 2/2"]
        assert (folder / "report.md").exists() and not list(folder.rglob("*.tmp"))
    assert runs[2]["dev_score"] == pytest.approx(runs[1]["dev_score"], abs=0.05)
    assert runs[2]["best_epoch"] == runs[1]["best_epoch"]
