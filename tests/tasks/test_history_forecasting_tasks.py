"""Whole-history forecasting as a task on real data (ETTh1): the protocol's origins, the frozen
ablation beside the writing memory, and the saved model through load, predict and evaluate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tiny_tasks import TINY_BACKBONE
from titans_sci import load
from titans_sci.api import WholeHistoryForecaster
from titans_sci.data.timeseries import load_dataset, make_splits
from titans_sci.evaluation.saved import evaluate_saved
from titans_sci.models.history_forecaster import stream_forecasts
from titans_sci.tasks import load_task, run
from titans_sci.tasks.history_forecasting import HistoryForecasting

SMALL = {
    "training.epochs": 2,
    "protocol.horizons": [24],
    "protocol.seeds": [1],
    **TINY_BACKBONE,
}


@pytest.fixture(scope="module")
def history_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    task = load_task("tasks/history_etth1.toml", SMALL)
    return task, run(task, folder), folder / task.name


def test_the_test_origins_are_those_of_the_lookback_protocol(history_run):
    task, _, _ = history_run
    unit = next(HistoryForecasting(task).units())
    windows = make_splits(load_dataset("ett/ETTh1"), "ett_hour", 96, 24).test
    first, _ = windows.locate(0)
    assert len(unit.data.test) == len(windows)
    # Window i reads rows [i, i + 96) of the test slice; its origin is the next row.
    assert int(unit.data.test[0]) == 12 * 30 * 24 + 4 * 30 * 24 - 96 + first + 96
    x, y = windows[len(windows) - 1]
    origin = int(unit.data.test[-1])
    torch.testing.assert_close(unit.data.series[:, origin - 96 : origin].T, x)
    torch.testing.assert_close(unit.data.series[:, origin : origin + 24].T, y)


def test_the_run_reports_the_writing_and_the_frozen_memory(history_run):
    _, result, folder = history_run
    (titans,) = [r for r in result["runs"] if r["model"] == "titans"]
    assert {"mse", "mae", "frozen_mse", "frozen_mae"} <= set(titans)
    assert titans["mse"] != titans["frozen_mse"]
    (naive,) = [r for r in result["runs"] if r["model"] == "last_value"]
    assert titans["mse"] < naive["mse"]
    summary = result["summary"]["titans"]["average"]
    assert set(summary) == {"mse", "mae", "frozen_mse", "frozen_mae"}
    assert "memory's surprise along the whole stream" in (folder / "report.md").read_text()


def test_a_window_only_run_reports_no_frozen_memory(tmp_path):
    """``model.memory = false``: nothing to freeze, so no frozen metrics, and the run and its
    report complete."""
    task = load_task("tasks/history_etth1.toml", {**SMALL, "model.memory": False})
    result = run(task, tmp_path)
    (titans,) = [r for r in result["runs"] if r["model"] == "titans"]
    assert {"mse", "mae"} <= set(titans) and "frozen_mse" not in titans
    assert set(result["summary"]["titans"]["average"]) == {"mse", "mae"}
    assert (tmp_path / task.name / "report.md").exists()


def test_the_saved_model_predicts_from_the_whole_file_and_evaluates_as_the_run(
    history_run, tmp_path
):
    """``load`` gives a WholeHistoryForecaster; its forecast after the first N rows of a file
    is the run's forecast at origin N (the stream reads the same rows); ``evaluate`` on the
    bundled data set gives the run's test MSE."""
    _, result, folder = history_run
    model = load(folder / "checkpoints" / "h24_seed1" / "titans" / "model")
    assert isinstance(model, WholeHistoryForecaster)
    table = load_dataset("ett/ETTh1")
    rows = 3001
    frame = pd.DataFrame(table.values[:rows], columns=table.columns)
    frame.insert(0, "date", table.timestamps[:rows])
    frame.to_csv(tmp_path / "head.csv", index=False)
    predicted = model.predict(tmp_path / "head.csv")
    assert len(predicted) == 24 and str(predicted["timestamp"].iloc[0]) == str(
        table.timestamps[rows]
    )
    scaled = (table.values.astype(np.float64) - model.mean) / model.scale
    series = torch.from_numpy(scaled.astype(np.float32)).T.contiguous()
    ((_, forecast),) = stream_forecasts(model.model, series, torch.tensor([rows]))
    expected = forecast[:, 0].T.numpy() * model.scale + model.mean
    np.testing.assert_allclose(predicted[model.columns].to_numpy(), expected, rtol=1e-5)
    (titans,) = [r for r in result["runs"] if r["model"] == "titans"]
    scores = evaluate_saved(model)
    # The saved model scales as the run did (float64): the same computation, the same score.
    assert scores["mse"] == titans["mse"]
    assert model.surprise(tmp_path / "head.csv").shape[:2] == (7, rows // 16)


def test_a_stretch_of_part_of_a_patch_is_refused_before_anything_runs(tmp_path):
    task = load_task("tasks/history_etth1.toml", {"training.stretch": 100})
    with pytest.raises(ValueError, match=r"training.stretch = 100 is not a multiple of model"):
        run(task, tmp_path)
    assert not (tmp_path / task.name).exists()
