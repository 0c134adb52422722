"""Whole-history forecasting with covariates through GluonTS' field names, on real electricity
prices (bundled EPF, Nord Pool): the estimator trains on ``feat_dynamic_real``,
``past_feat_dynamic_real`` and static features, the predictor streams each whole series with
them (and refuses an entry missing one, naming the field), and its forecast is the task path's
stream forecast for the same model and data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.model.predictor import Predictor
from gluonts.time_feature import get_seasonality

from titans_sci.data.covariates import CovariateColumns
from titans_sci.data.timeseries import load_dataset, scaled_columns, split_borders
from titans_sci.gluonts import TitansHistoryEstimator, TitansHistoryPredictor
from titans_sci.gluonts.history import series_scale
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    HistoryForecasterConfig,
    series_covariates,
    stream_forecasts,
)
from titans_sci.train import TrainConfig

LOAD, WIND = "Grid load forecast", "Wind power forecast"
CALENDAR = ("hour_of_day", "day_of_week")
L, H, P = 48, 24, 8
MODEL = HistoryForecasterConfig(
    lookback=L, patch_len=P,
    backbone=LMMConfig(dim=16, depth=1,
                       memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8,
                                                  chunk_size=8)),
)  # fmt: skip


@pytest.fixture(scope="module")
def nord_pool():
    table = load_dataset("epf/NP")
    return replace(table, values=table.values[:3000], timestamps=table.timestamps[:3000])


def _entries(table, stop: int, future: int = 0) -> ListDataset:
    """Two series cut from Nord Pool: the price as target, the day-ahead forecasts as
    ``feat_dynamic_real`` reaching ``future`` steps past it, the wind forecast as
    ``past_feat_dynamic_real``, and static features."""
    start = table.timestamps[0].to_period("h")
    price, covariates = table.values[:, 2], table.values[:, :2].T
    return ListDataset([
        {
            "start": start + offset,
            "target": price[offset:stop],
            "feat_dynamic_real": covariates[:, offset : stop + future],
            "past_feat_dynamic_real": covariates[1:, offset:stop],
            "feat_static_cat": [k],
            "feat_static_real": [float(k)],
            "item_id": f"np{k}",
        }
        for k, offset in enumerate((0, 500))
    ], freq="h")  # fmt: skip


@pytest.fixture(scope="module")
def trained(nord_pool):
    estimator = TitansHistoryEstimator(
        H, "h", model=MODEL, training=TrainConfig(epochs=1, clip_norm=1.0), stretch=16 * P,
        num_feat_dynamic_real=2, num_past_feat_dynamic_real=1, cardinality=[2],
        num_feat_static_real=1, time_features=list(CALENDAR),
    )  # fmt: skip
    return estimator.train(_entries(nord_pool, 2000))


def test_the_predictor_streams_every_kind_and_reloads_to_the_bit(trained, nord_pool, tmp_path):
    test = _entries(nord_pool, 2500, future=H)
    forecasts = list(trained.predict(test))
    assert [f.item_id for f in forecasts] == ["np0", "np1"]
    assert all(np.isfinite(f.samples).all() and f.samples.shape == (1, H) for f in forecasts)
    trained.serialize(tmp_path)
    again = Predictor.deserialize(tmp_path)
    assert isinstance(again, TitansHistoryPredictor) and again.time_features == CALENDAR
    for a, b in zip(forecasts, again.predict(test), strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
    moved = list(test)
    for entry in moved:
        entry["feat_dynamic_real"] = entry["feat_dynamic_real"].copy()
        entry["feat_dynamic_real"][0, -H:] *= 1.5  # the load forecast over the horizon
    assert not np.allclose(next(iter(trained.predict(moved))).samples, forecasts[0].samples)


def test_an_entry_missing_a_field_or_its_future_is_refused_by_name(trained, nord_pool):
    with pytest.raises(ValueError, match=r"series 'np0': feat_dynamic_real has 2500 steps; the "
                                         r"model reads 2524"):  # fmt: skip
        list(trained.predict(_entries(nord_pool, 2500)))
    bare = [{k: v for k, v in e.items() if k != "feat_static_cat"}
            for e in _entries(nord_pool, 2500, future=H)]  # fmt: skip
    with pytest.raises(ValueError, match=r"no 'feat_static_cat' field; the model reads 1 "
                                         r"\(cardinality=1\)"):  # fmt: skip
        list(trained.predict(bare))


def test_the_gluonts_path_forecasts_what_the_task_path_does(nord_pool):
    """One model (random weights) reading both day-ahead forecasts over the horizon and two
    calendar features: the task path streams the series scaled by its training rows (the
    covariates too); the predictor streams the raw entry, the price divided by its seasonal
    error. With the price scaled alike, they forecast the same: the model normalises each
    window of each data covariate by its own statistics, so their scaling does not matter."""
    torch.manual_seed(0)
    model = HistoryForecaster(replace(MODEL, horizon=H, known_covariates=2, calendar=2)).eval()
    with torch.no_grad():
        model.memory_head[-1].weight.normal_(std=0.1)
        model.linear.weight.normal_(std=0.05)
    predictor = TitansHistoryPredictor(model, H, "h", time_features=CALENDAR)
    borders = split_borders(len(nord_pool.values), "ratio_70_10_20", L)
    columns = CovariateColumns(known=(LOAD, WIND), calendar=CALENDAR)
    scaled = scaled_columns(nord_pool, borders.train, columns)
    assert scaled.known is not None
    price = nord_pool.values[:, 2].astype(np.float64)
    start = nord_pool.timestamps[0].to_period("h")
    for origin in (700, 1999, 2500):
        scale = series_scale(price[:origin], np.ones(origin, bool), get_seasonality("h"),
                             "seasonal")  # fmt: skip
        series = torch.from_numpy((price[:origin] / scale).astype(np.float32))[None]
        covariates = series_covariates(None, scaled.known[: origin + H], 1)
        ((_, forecast),) = stream_forecasts(model, series, torch.tensor([origin]),
                                            covariates=covariates)  # fmt: skip
        entry = {"start": start, "target": price[:origin],
                 "feat_dynamic_real": nord_pool.values[: origin + H, :2].T}  # fmt: skip
        [predicted] = predictor.predict(ListDataset([entry], freq="h"))
        np.testing.assert_allclose(predicted.samples[0], forecast[0, 0].numpy() * scale,
                                   rtol=1e-3, atol=1e-3)  # fmt: skip
