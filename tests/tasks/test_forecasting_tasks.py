"""Forecasting tasks: the long-horizon protocol end to end on real data, the CLI, resume."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tiny_tasks import etth1_csv, forecast_task, write
from titans_sci.cli import main
from titans_sci.data.timeseries import load_dataset, make_splits
from titans_sci.evaluation.forecasting import evaluate_windows, last_value_forecast
from titans_sci.tasks import load_task, run
from titans_sci.tasks.forecasting import Forecasting, at_most, every_kth
from titans_sci.tasks.kind import Unit
from titans_sci.train import Trainer


def _user(folder, rows=1500, columns='columns = ["HUFL", "OT"]') -> str:
    return f'file = "{etth1_csv(folder, rows)}"\nsplit_rule = "ratio_70_10_20"\n{columns}'


def test_tiny_training_beats_the_last_value_on_validation(tmp_path):
    """ETTh1, lookback 96, horizon 24, channel-independent LMM (dim 16, one block) trained for
    3 epochs of 512 windows: its validation MSE (scaled data, every validation window) is below
    the last-value forecast's (measured 0.47 against 1.26 at seed 1)."""
    text = forecast_task("etth1", 'dataset = "ett/ETTh1"', model="lookback = 96")
    task = load_task(write(tmp_path / "t.toml", text),
                     {"training.epochs": 3, "training.windows_per_epoch": 512,
                      "training.patience": 3, "protocol.horizons": [24]})  # fmt: skip
    kind = Forecasting(task)
    unit = next(kind.units())
    torch.manual_seed(1)
    model = kind.models(unit)["titans"]()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trained = Trainer(model, task.training, 1).fit(
            kind.batches(unit, model),
            lambda b: kind.loss(model, b),
            lambda: kind.score_dev(model, unit),
        )
    finally:
        torch.set_num_threads(threads)
    naive = evaluate_windows(lambda x: last_value_forecast(x, 24), unit.data.val)["mse"]
    val_mse = -max(trained.dev_scores)
    print(f"validation MSE {val_mse:.3f}, last value {naive:.3f}")
    assert val_mse < 0.9 * naive


def test_user_csv_task_end_to_end(tmp_path):
    extra = "[protocol]\nhorizons = [12, 24]\nseeds = [1, 2]\n"
    path = write(tmp_path / "task.toml", forecast_task("user", _user(tmp_path), extra))
    result = run(load_task(path), tmp_path / "runs")
    assert len(result["runs"]) == 2 * (2 + 1)  # per horizon: two seeds + the last value
    titans = result["summary"]["titans"]
    assert set(titans["horizons"]) == {"12", "24"}
    assert titans["horizons"]["12"]["mse"]["n"] == 2
    saved = json.loads((tmp_path / "runs" / "user" / "results.json").read_text())
    assert saved["summary"] == result["summary"]
    assert (tmp_path / "runs" / "user" / "runs.csv").read_text().startswith("horizon,seed,model")
    model = json.loads(
        (tmp_path / "runs/user/checkpoints/h24_seed2/titans/model/model.json").read_text()
    )
    assert model["meta"]["columns"] == ["HUFL", "OT"] and model["config"]["horizon"] == 24


def test_validation_and_test_subsets_take_evenly_spaced_windows():
    splits = make_splits(load_dataset("ett/ETTm1"), "ett_minute", 96, 96)
    assert every_kth(splits.val, 1) is splits.val
    every_fourth = every_kth(splits.val, 4)
    assert len(every_fourth) == -(-len(splits.val) // 4)  # ceil: a partial last group counts
    for i in (0, 1, len(every_fourth) - 1):
        x, y = every_fourth[i]
        expected_x, expected_y = splits.val[4 * i]
        assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
    few = at_most(splits.test, 5)
    assert len(few) == 5 and few.indices[0] == 0 and few.indices[-1] == len(splits.test) - 1
    assert at_most(splits.test, 0) is splits.test


def test_lookback_skip_reaches_the_forecaster(tmp_path):
    text = forecast_task("x", 'dataset = "ett/ETTh1"', model="lookback = 48\nlookback_skip = true")
    kind = Forecasting(load_task(write(tmp_path / "t.toml", text)))
    unit = Unit({"horizon": 24, "seed": 1}, 1, None)
    assert kind.models(unit)["titans"]().config.lookback_skip is True
    assert kind.models(unit)["titans"]().config.channels == 7


def test_a_horizon_longer_than_the_test_slice_is_named(tmp_path):
    extra = "[protocol]\nhorizons = [100]\n"
    path = write(tmp_path / "long.toml", forecast_task("long", _user(tmp_path, 400), extra))
    with pytest.raises(ValueError, match="horizon 100"):
        run(load_task(path), tmp_path / "runs")
    assert not (tmp_path / "runs" / "long" / "results.json").exists()


def test_cli_runs_a_forecasting_task(tmp_path, capsys):
    extra = "[protocol]\nhorizons = [12]\n"
    data = _user(tmp_path, 800, 'columns = ["OT"]')
    task = write(tmp_path / "cli.toml", forecast_task("cli", data, extra))
    assert main(["run", "-q", str(task), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "last_value" in out and "titans" in out and "H=12" in out


def test_a_killed_run_resumes_to_the_same_numbers(tmp_path):
    """``titans-sci run TASK`` killed (SIGKILL) once its first checkpoint is on disk, then run
    again with ``--resume``, reports exactly the numbers of an uninterrupted run; the killed
    run leaves no results.json that could pass for a finished one."""
    import signal
    import subprocess
    import sys
    import time

    extra = "[protocol]\nhorizons = [12, 24]\n"
    text = forecast_task("NAME", _user(tmp_path), extra).replace("epochs = 2", "epochs = 4")
    write(tmp_path / "whole.toml", text.replace("NAME", "whole"))
    write(tmp_path / "killed.toml", text.replace("NAME", "killed"))
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "titans_sci.cli", "run", "--quiet", "--out", str(out)]
    # The same torch thread count as this process: float reductions split over threads round
    # differently, and the two halves of the killed run must be the same computation.
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    proc = subprocess.Popen([*command, str(tmp_path / "killed.toml")], env=env)
    first = out / "killed" / "checkpoints" / "h12_seed1" / "titans" / "checkpoint.pt"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists()
    assert not (out / "killed" / "results.json").exists(), "the run finished before the kill"
    resume = ["run", "--quiet", "--resume", "--out", str(out), str(tmp_path / "killed.toml")]
    assert main(resume) == 0
    assert main(["run", "--quiet", "--out", str(out), str(tmp_path / "whole.toml")]) == 0
    killed = json.loads((out / "killed" / "results.json").read_text())
    whole = json.loads((out / "whole" / "results.json").read_text())
    assert killed["summary"] == whole["summary"]
    assert [r["mse"] for r in killed["runs"]] == [r["mse"] for r in whole["runs"]]
