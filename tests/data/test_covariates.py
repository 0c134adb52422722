"""Covariates on real electricity prices (bundled EPF, Nord Pool): windows that cut each kind
where it stops being known, no look-ahead through a whole forecast, train-only scaling,
GluonTS' calendar features, missing values under the target's rules, bad names in one line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.time_feature import day_of_week, hour_of_day

from tiny_tasks import forecast_task, write
from titans_sci.data.covariates import CovariateColumns
from titans_sci.data.timeseries import load_dataset, make_splits, read_series
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster
from titans_sci.tasks import load_task, run

LOAD, WIND = "Grid load forecast", "Wind power forecast"
L, H = 48, 24


@pytest.fixture(scope="module")
def nord_pool():
    """The first 3,000 hours of Nord Pool: price ``OT``, two day-ahead forecasts."""
    table = load_dataset("epf/NP")
    return replace(table, values=table.values[:3000], timestamps=table.timestamps[:3000])


COVARIATES = CovariateColumns(past=(WIND,), known=(LOAD,), calendar=("hour_of_day", "day_of_week"))


def _splits(table, covariates=COVARIATES):
    return make_splits(table, "ratio_70_10_20", L, H, covariates=covariates)


def test_windows_cut_past_covariates_at_the_origin_and_known_ones_at_the_horizon(nord_pool):
    splits = _splits(nord_pool)
    assert splits.columns == ["OT"]
    start = splits.borders.test[0]
    x, y, past, known = splits.test[5]
    origin = start + 5 + L  # the first forecast row
    values = nord_pool.values
    scaled = lambda rows, col, scaler, k: (values[rows, col] - scaler.mean[k]) / scaler.scale[k]  # noqa: E731
    rows = np.arange(origin - L, origin)
    np.testing.assert_allclose(x[:, 0], scaled(rows, 2, splits.scaler, 0), rtol=1e-5)
    np.testing.assert_allclose(past[:, 0], scaled(rows, 1, splits.covariate_scaler, 0), rtol=1e-5)
    assert past.shape == (L, 1) and known.shape == (L + H, 3)
    ahead = np.arange(origin - L, origin + H)
    np.testing.assert_allclose(known[:, 0], scaled(ahead, 0, splits.covariate_scaler, 1),
                               rtol=1e-5)  # fmt: skip
    stamps = nord_pool.timestamps[ahead]
    np.testing.assert_allclose(known[:, 1], hour_of_day(stamps), rtol=1e-6)
    np.testing.assert_allclose(known[:, 2], day_of_week(stamps), rtol=1e-6)
    np.testing.assert_allclose(y[:, 0], scaled(np.arange(origin, origin + H), 2,
                                               splits.scaler, 0), rtol=1e-5)  # fmt: skip


def test_scalers_are_fitted_on_the_training_rows_only(nord_pool):
    splits = _splits(nord_pool)
    end = splits.borders.train[1]
    train = nord_pool.values[:end]
    np.testing.assert_allclose(splits.scaler.mean, train[:, [2]].mean(axis=0))
    np.testing.assert_allclose(splits.covariate_scaler.mean, train[:, [1, 0]].mean(axis=0),
                               rtol=1e-6)  # fmt: skip


def _model() -> TitansForecaster:
    torch.manual_seed(0)
    memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
    config = ForecasterConfig(lookback=L, horizon=H, channels=1,
                              backbone=LMMConfig(dim=16, depth=1, memory=memory),
                              patch_len=8, stride=8, past_covariates=1, known_covariates=1,
                              calendar=2)  # fmt: skip
    return TitansForecaster(config).eval()


def test_no_forecast_reads_a_past_covariate_or_the_target_at_or_after_its_origin(nord_pool):
    """Rewrite the price and the measured covariate from the origin on: the forecast made at
    the origin is the same. Rewrite the day-ahead forecast over the horizon: it changes."""
    model, index = _model(), 7
    splits = _splits(nord_pool)
    origin = splits.borders.test[0] + index + L
    before = model.predict(*[t[None] for t in _inputs(splits.test[index])])
    changed = nord_pool.values.copy()
    changed[origin:, 2] *= 3.0  # the price at and after the origin
    changed[origin:, 1] += 5000.0  # the measured covariate
    later = _splits(replace(nord_pool, values=changed))
    torch.testing.assert_close(
        model.predict(*[t[None] for t in _inputs(later.test[index])]), before
    )
    ahead = nord_pool.values.copy()
    ahead[origin : origin + H, 0] += 10_000.0  # the day-ahead load forecast for the horizon
    known = _splits(replace(nord_pool, values=ahead))
    assert not torch.allclose(model.predict(*[t[None] for t in _inputs(known.test[index])]),
                              before)  # fmt: skip


def _inputs(item):
    x, _, past, known = item
    return x, past, known


def _csv_with_a_gap(folder, nord_pool) -> str:
    frame = pd.DataFrame(nord_pool.values[:2000], columns=nord_pool.columns)
    frame.insert(0, "date", nord_pool.timestamps[:2000].strftime("%Y-%m-%d %H:%M:%S"))
    frame.loc[100, WIND] = np.nan
    frame.to_csv(folder / "np.csv", index=False)
    return "np.csv"


def test_missing_covariate_values_follow_the_targets_nan_policy(tmp_path, nord_pool):
    name = _csv_with_a_gap(tmp_path, nord_pool)
    with pytest.raises(ValueError, match=rf"column '{WIND}', data row 101 .*missing value"):
        read_series(tmp_path / name, "date")
    table = read_series(tmp_path / name, "date", nan_policy="ffill")
    assert table.column(WIND)[100] == table.column(WIND)[99]


def test_bad_covariate_names_are_refused_in_one_line(tmp_path):
    data = 'dataset = "epf/NP"\ncolumns = ["OT"]\n'
    cases = {
        f'known_covariates = ["{LOAD}", "{LOAD}"]': "named twice",
        'known_covariates = ["OT"]': "both a target",
        'calendar = ["hour_of_week"]': "'hour_of_week' is not one of",
        'past_covariates = ["Solar"]': "no column\\(s\\) \\['Solar'\\]",
    }
    for line, message in cases.items():
        path = write(tmp_path / "t.toml", forecast_task("epf", data + line))
        with pytest.raises(ValueError, match=message) as caught:
            run(load_task(path), tmp_path / "runs")
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch forecaster of the Nord Pool price with both day-ahead forecasts known over
    the horizon and two calendar features: ``(run result, model folder)``."""
    folder = tmp_path_factory.mktemp("epf")
    data = (
        f'dataset = "epf/NP"\ncolumns = ["OT"]\nknown_covariates = ["{LOAD}", "{WIND}"]\n'
        'calendar = ["hour_of_day", "day_of_week"]\nmax_eval = 64'
    )
    extra = "[protocol]\nhorizons = [24]\nseeds = [1]\n"
    path = write(folder / "epf.toml", forecast_task("epf", data, extra, "lookback = 168"))
    task = load_task(path, {"training.windows_per_epoch": 256, "training.epochs": 1})
    result = run(task, folder / "runs")
    return result, folder / "runs" / "epf" / "checkpoints" / "h24_seed1" / "titans" / "model"


def test_a_task_with_covariates_runs_and_its_model_records_them(trained):
    result, folder = trained
    [row] = [r for r in result["runs"] if r["model"] == "titans"]
    assert np.isfinite(row["mse"])
    meta = json.loads((folder / "model.json").read_text())["meta"]
    assert meta["known_covariates"] == [LOAD, WIND]
    assert meta["calendar"] == ["hour_of_day", "day_of_week"]
    assert len(meta["covariate_mean"]) == 2 and meta["columns"] == ["OT"]


def _future_file(folder, rows: slice, horizon_rows: int = 24) -> tuple[str, pd.DataFrame]:
    """Nord Pool's rows ``rows`` as a user CSV, the price left empty on the last
    ``horizon_rows`` (the day-ahead forecasts there are known)."""
    table = load_dataset("epf/NP")
    frame = pd.DataFrame(table.values[rows], columns=table.columns)
    frame.insert(0, "date", table.timestamps[rows].strftime("%Y-%m-%d %H:%M:%S"))
    frame.loc[len(frame) - horizon_rows :, "OT"] = np.nan
    frame.to_csv(folder / "np_future.csv", index=False)
    return "np_future.csv", frame


def test_predict_reads_known_covariates_over_the_horizon_as_the_task_did(trained, tmp_path):
    """The saved model's forecast of a user file (the price empty over the horizon) equals the
    task's forecast at the same origin from its test windows, in the data's units."""
    import titans_sci

    _, folder = trained
    model = titans_sci.load(folder)
    table = load_dataset("epf/NP")
    splits = make_splits(table, "ratio_70_10_20", 168, 24, covariates=CovariateColumns(
        known=(LOAD, WIND), calendar=("hour_of_day", "day_of_week")))  # fmt: skip
    start = splits.borders.test[0]
    x, y, past, known = splits.test[10]
    origin = start + 10 + 168
    name, frame = _future_file(tmp_path, slice(origin - 300, origin + 24))
    forecast = model.predict(tmp_path / name)
    expected = model.model.predict(x[None], past[None], known[None])[0, :, 0].numpy()
    expected = expected * splits.scaler.scale[0] + splits.scaler.mean[0]
    np.testing.assert_allclose(forecast["OT"].to_numpy(), expected, rtol=1e-4, atol=1e-3)
    assert list(forecast["timestamp"]) == list(table.timestamps[origin : origin + 24])


def test_predict_refuses_known_covariates_that_stop_before_the_horizon(trained, tmp_path):
    import titans_sci

    _, folder = trained
    model = titans_sci.load(folder)
    name, frame = _future_file(tmp_path, slice(20_000, 20_300))
    frame.loc[len(frame) - 5 :, WIND] = np.nan
    frame.to_csv(tmp_path / name, index=False)
    message = rf"column '{WIND}' is known over the horizon.*stop at data row 295 of 300"
    with pytest.raises(ValueError, match=message):
        model.predict(tmp_path / name)
    short, _ = _future_file(tmp_path, slice(20_000, 20_300), horizon_rows=10)
    with pytest.raises(ValueError, match=r"data rows 291..314; its values stop at data row 300"):
        model.predict(tmp_path / short)
