"""Whole-history forecasting with covariates through every door, on real prices (bundled EPF,
Nord Pool; the shipped ``tasks/history_epf.toml`` at a tiny budget): the run, the saved model's
``predict`` on a user file whose future rows carry the day-ahead forecasts (the task's stream
forecast at the same origin), ``titans-sci predict``, ``evaluate`` (the run's test MSE), and the
refusal of known covariates that stop before the horizon."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from tiny_tasks import TINY_BACKBONE
from titans_sci import load
from titans_sci.api import WholeHistoryForecaster
from titans_sci.cli import main
from titans_sci.data.timeseries import load_dataset
from titans_sci.evaluation.saved import evaluate_saved
from titans_sci.history import score_history
from titans_sci.models.history_forecaster import series_covariates, stream_forecasts
from titans_sci.tasks import load_task, run
from titans_sci.tasks.history_forecasting import HistoryForecasting

LOAD, WIND = "Grid load forecast", "Wind power forecast"
SMALL = {
    "training.epochs": 1,
    "protocol.seeds": [1],
    **TINY_BACKBONE,
}


@pytest.fixture(scope="module")
def epf_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    task = load_task("tasks/history_epf.toml", SMALL)
    result = run(task, folder)
    return task, result, folder / task.name / "checkpoints" / "h24_seed1" / "titans" / "model"


def _user_file(folder, rows: int, known_rows: int = 24) -> pd.DataFrame:
    """Nord Pool's first ``rows`` hours and the next ``known_rows`` with the price empty (the
    day-ahead forecasts there are published), as a user's CSV."""
    table = load_dataset("epf/NP")
    frame = pd.DataFrame(table.values[: rows + known_rows], columns=table.columns)
    frame.insert(0, "date", table.timestamps[: rows + known_rows].strftime("%Y-%m-%d %H:%M"))
    frame.loc[rows:, "OT"] = np.nan
    frame.to_csv(folder / "np.csv", index=False)
    return frame


def test_the_run_trains_and_its_model_records_the_covariates(epf_run):
    _, result, folder = epf_run
    (titans,) = [r for r in result["runs"] if r["model"] == "titans"]
    (naive,) = [r for r in result["runs"] if r["model"] == "last_value"]
    assert np.isfinite(titans["mse"]) and titans["mse"] < naive["mse"]
    meta = json.loads((folder / "model.json").read_text())["meta"]
    assert meta["known_covariates"] == [LOAD, WIND] and meta["columns"] == ["OT"]
    assert meta["calendar"] == ["hour_of_day", "day_of_week"]


def test_predict_streams_the_file_with_its_covariates_as_the_task_streams_the_series(
    epf_run, tmp_path
):
    task, _, folder = epf_run
    model = load(folder)
    assert isinstance(model, WholeHistoryForecaster)
    rows = 30_001  # in the test range
    _user_file(tmp_path, rows)
    predicted = model.predict(tmp_path / "np.csv")
    # The bundled series' first rows, scaled as the saved model scales, streamed in the same
    # pieces: the same forecast.
    table = load_dataset("epf/NP")
    price = table.values[:rows, [table.columns.index("OT")]].astype(np.float64)
    series = torch.from_numpy(((price - model.mean) / model.scale).astype(np.float32)).T
    past, known = model.covariate_columns(
        replace(table, values=table.values[: rows + 24], timestamps=table.timestamps[: rows + 24])
    )
    covariates = series_covariates(past[:rows], known, 1)
    ((_, forecast),) = stream_forecasts(model.model, series.contiguous(), torch.tensor([rows]),
                                        covariates=covariates)  # fmt: skip
    expected = forecast[0, 0].numpy() * model.scale[0] + model.mean[0]
    np.testing.assert_allclose(predicted["OT"].to_numpy(), expected, rtol=1e-6)
    # The task's own inputs (the whole series, read in other pieces): equal up to the rounding
    # of other float reductions, which the memory carries over 30,000 steps.
    data = next(HistoryForecasting(task).units()).data
    ((_, forecast),) = stream_forecasts(model.model, data.series, torch.tensor([rows]),
                                        covariates=data.covariates)  # fmt: skip
    expected = forecast[0, 0].numpy() * model.scale[0] + model.mean[0]
    np.testing.assert_allclose(predicted["OT"].to_numpy(), expected, rtol=3e-3)
    assert list(predicted["timestamp"]) == list(table.timestamps[rows : rows + 24])
    out = tmp_path / "forecast.csv"
    assert main(["predict", str(folder), str(tmp_path / "np.csv"), "-o", str(out), "-q"]) == 0
    np.testing.assert_allclose(pd.read_csv(out)["OT"].to_numpy(), predicted["OT"].to_numpy(),
                               rtol=1e-6)  # fmt: skip


def test_evaluate_streams_the_bundled_series_with_its_covariates_as_the_run(epf_run):
    task, result, folder = epf_run
    (titans,) = [r for r in result["runs"] if r["model"] == "titans"]
    model = load(folder)
    data = next(HistoryForecasting(task).units()).data
    same = score_history(model.model, data.series, data.test, covariates=data.covariates)
    assert same.mse == titans["mse"]  # the saved model on the run's inputs: the run's score
    scores = evaluate_saved(model)
    # The saved model scales as the run did (float64), so the stream is the same computation.
    assert scores["mse"] == titans["mse"]


def test_known_covariates_that_stop_before_the_horizon_are_refused(epf_run, tmp_path):
    _, _, folder = epf_run
    _user_file(tmp_path, 2000, known_rows=10)
    message = rf"column '{LOAD}' is known over the horizon.*data rows 2001..2024; its values stop"
    with pytest.raises(ValueError, match=message):
        load(folder).predict(tmp_path / "np.csv")
