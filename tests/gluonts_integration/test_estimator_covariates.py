"""Covariates through GluonTS' field names on real electricity prices (bundled EPF, Nord
Pool): the estimator trains on ``feat_dynamic_real``, ``past_feat_dynamic_real`` and static
features, the predictor reads them (and refuses an entry missing one, naming the field), and
the GluonTS path forecasts what the task path forecasts for the same model and data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.model.predictor import Predictor

from titans_sci.data.covariates import CovariateColumns
from titans_sci.data.timeseries import load_dataset, make_splits
from titans_sci.gluonts import DEFAULT_TRAINING, TitansEstimator, TitansPredictor
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster

LOAD, WIND = "Grid load forecast", "Wind power forecast"
CALENDAR = ("hour_of_day", "day_of_week")
L, H = 72, 24
TINY = LMMConfig(
    dim=16, depth=1, memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=8)
)


@pytest.fixture(scope="module")
def nord_pool():
    table = load_dataset("epf/NP")
    return replace(table, values=table.values[:3000], timestamps=table.timestamps[:3000])


def _entries(table, stop: int, future: int = 0, **fields) -> ListDataset:
    """Two series cut from Nord Pool (the price as target, the day-ahead forecasts as
    ``feat_dynamic_real`` reaching ``future`` steps past the target), each with ``fields``."""
    start = table.timestamps[0].to_period("h")
    price, covariates = table.values[:, 2], table.values[:, :2].T
    entries = [
        {
            "start": start + offset,
            "target": price[offset:stop],
            "feat_dynamic_real": covariates[:, offset : stop + future],
            "past_feat_dynamic_real": covariates[1:, offset:stop],
            "feat_static_cat": [k],
            "feat_static_real": [float(k)],
            "item_id": f"np{k}",
            **fields,
        }
        for k, offset in enumerate((0, 500))
    ]
    return ListDataset(entries, freq="h")


def _estimator(**covariates) -> TitansEstimator:
    model = ForecasterConfig(backbone=TINY, patch_len=8, stride=8, head="student_t")
    training = replace(DEFAULT_TRAINING, epochs=1, batch_size=16)
    return TitansEstimator(H, "h", context_length=L, model=model, training=training,
                           batches_per_epoch=4, num_samples=20, **covariates)  # fmt: skip


def test_the_estimator_trains_and_the_predictor_reads_every_kind(nord_pool, tmp_path):
    estimator = _estimator(num_feat_dynamic_real=2, num_past_feat_dynamic_real=1,
                           cardinality=[2], num_feat_static_real=1,
                           time_features=list(CALENDAR))  # fmt: skip
    predictor = estimator.train(_entries(nord_pool, 2000))
    test = _entries(nord_pool, 2500, future=H)
    forecasts = list(predictor.predict(test))
    assert [f.item_id for f in forecasts] == ["np0", "np1"]
    assert all(np.isfinite(f.samples).all() and f.samples.shape == (20, H) for f in forecasts)
    predictor.serialize(tmp_path)
    again = list(Predictor.deserialize(tmp_path).predict(test))
    for a, b in zip(forecasts, again, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
    # the known covariates over the horizon change the forecast
    moved = list(_entries(nord_pool, 2500, future=H))
    for entry in moved:
        entry["feat_dynamic_real"] = entry["feat_dynamic_real"].copy()
        entry["feat_dynamic_real"][0, -H:] *= 1.5
    assert not np.allclose(next(iter(predictor.predict(moved))).samples, forecasts[0].samples)


def test_an_entry_missing_a_field_or_its_future_is_refused_by_name(nord_pool):
    estimator = _estimator(num_feat_dynamic_real=2, cardinality=[2])
    predictor = estimator.train(_entries(nord_pool, 2000))
    short = _entries(nord_pool, 2500)  # feat_dynamic_real stops with the target
    with pytest.raises(ValueError, match=r"series 'np0': feat_dynamic_real has 2500 steps; the "
                                         r"model reads 2524"):  # fmt: skip
        list(predictor.predict(short))
    bare = [{k: v for k, v in e.items() if k != "feat_static_cat"} for e in
            _entries(nord_pool, 2500, future=H)]  # fmt: skip
    with pytest.raises(ValueError, match=r"no 'feat_static_cat' field; the model reads 1 "
                                         r"\(cardinality=1\)"):  # fmt: skip
        list(predictor.predict(bare))
    with pytest.raises(ValueError, match="no 'feat_dynamic_real' field"):
        estimator.train([{k: v for k, v in e.items() if k != "feat_dynamic_real"}
                         for e in _entries(nord_pool, 2000)])  # fmt: skip


def test_the_gluonts_path_forecasts_what_the_task_path_does(nord_pool):
    """One model (random weights, point head) reading the two day-ahead forecasts over the
    horizon and two calendar features: through the task's scaled windows, then unscaled, and
    through the predictor on the raw series, the forecasts agree. The model normalises each
    window of the target and of each covariate, so the data's scaling does not change them."""
    torch.manual_seed(0)
    config = ForecasterConfig(lookback=L, horizon=H, channels=1, backbone=TINY, patch_len=8,
                              stride=8, head="point", known_covariates=2, calendar=2)  # fmt: skip
    model = TitansForecaster(config).eval()
    covariates = CovariateColumns(known=(LOAD, WIND), calendar=CALENDAR)
    splits = make_splits(nord_pool, "ratio_70_10_20", L, H, covariates=covariates)
    predictor = TitansPredictor(model, H, "h", L, time_features=CALENDAR)
    start = nord_pool.timestamps[0].to_period("h")
    for index in (0, 57, 300):
        x, _, past, known = splits.test[index]
        origin = splits.borders.test[0] + index + L
        expected = model.predict(x[None], past[None], known[None])[0, :, 0].numpy()
        expected = expected * splits.scaler.scale[0] + splits.scaler.mean[0]
        entry = {
            "start": start,
            "target": nord_pool.values[:origin, 2],
            "feat_dynamic_real": nord_pool.values[: origin + H, :2].T,
        }
        [forecast] = predictor.predict(ListDataset([entry], freq="h"))
        np.testing.assert_allclose(forecast.samples[0], expected, rtol=1e-3, atol=1e-3)
