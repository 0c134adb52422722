"""The whole-history GluonTS pair on M4 Hourly: trains on whole series of several lengths,
forecasts through make_evaluation_predictions, reads only the past, serializes as a model
folder and reloads to the bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gluonts.dataset.common import ListDataset
from gluonts.evaluation import Evaluator, make_evaluation_predictions
from gluonts.model.predictor import Predictor

from titans_sci.data.timeseries import load_m4
from titans_sci.gluonts import TitansHistoryEstimator, TitansHistoryPredictor
from titans_sci.gluonts.history import series_scale
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.history_forecaster import HistoryForecasterConfig
from titans_sci.train import TrainConfig

H = 48
MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=8)
BACKBONE = LMMConfig(dim=16, depth=1, memory=MEMORY)
MODEL = HistoryForecasterConfig(lookback=96, patch_len=24, backbone=BACKBONE)


def _data(series, cut: int) -> ListDataset:
    entries = [
        {
            "item_id": s["item_id"],
            "start": s["start"],
            "target": s["target"][: len(s["target"]) - cut],
        }
        for s in series
    ]
    return ListDataset(entries, freq="h")


@pytest.fixture(scope="module")
def trained():
    every = load_m4("m4/hourly")
    shortest = min(len(s["target"]) for s in every)
    short = [s for s in every if len(s["target"]) == shortest][:6]
    series = short + [s for s in every if len(s["target"]) > shortest][:6]  # several lengths
    estimator = TitansHistoryEstimator(
        H, "h", model=MODEL, training=TrainConfig(epochs=3, lr=3e-3, clip_norm=1.0), seed=1
    )
    return series, estimator.train(_data(series, 2 * H), _data(series, H))


def test_it_backtests_through_gluonts_and_reads_only_the_past(trained):
    series, predictor = trained
    assert isinstance(predictor, TitansHistoryPredictor)
    forecasts, targets = make_evaluation_predictions(_data(series, 0), predictor)
    forecasts = list(forecasts)
    metrics, _ = Evaluator()(targets, forecasts)
    assert np.isfinite(metrics["MASE"]) and metrics["MASE"] > 0
    # The held-out steps do not reach the forecasts: changing them changes nothing.
    changed = [{**s, "target": np.concatenate([s["target"][:-H], s["target"][-H:] * 5])}
               for s in series]  # fmt: skip
    again, _ = make_evaluation_predictions(_data(changed, 0), predictor)
    for a, b in zip(forecasts, again, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        assert a.samples.shape == (1, H)


def test_it_serializes_as_a_model_folder_and_reloads_to_the_bit(trained, tmp_path: Path):
    series, predictor = trained
    predictor.serialize(tmp_path)
    assert json.loads((tmp_path / "model" / "model.json").read_text())["kind"] == (
        "history_forecaster"
    )
    loaded = Predictor.deserialize(tmp_path)
    data = _data(series, H)
    for a, b in zip(predictor.predict(data), loaded.predict(data), strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        assert a.start_date == b.start_date


def test_a_series_is_scaled_by_its_seasonal_error_with_fallbacks():
    every = np.ones(6, dtype=bool)
    ramp = np.array([0.0, 1.0, 4.0, 9.0, 16.0, 25.0])  # differences 2 apart: 4, 8, 12, 16
    assert series_scale(ramp, every, 2, "seasonal") == pytest.approx(10.0)
    assert series_scale(ramp, every, 2, "mean") == pytest.approx(55 / 6)
    gap = ramp.copy()
    gap[3] = np.nan  # the pairs with a missing end are left out: 4 and 12 remain
    assert series_scale(gap, np.isfinite(gap), 2, "seasonal") == pytest.approx(8.0)
    assert series_scale(ramp[:2], every[:2], 24, "seasonal") == 1.0  # shorter than a season: lag 1
    periodic = np.array([3.0, -1.0, 3.0, -1.0])  # no seasonal error: the mean absolute value
    assert series_scale(periodic, every[:4], 2, "seasonal") == pytest.approx(2.0)
    assert series_scale(np.zeros(4), every[:4], 2, "seasonal") == 1.0
    with pytest.raises(ValueError, match="scaling='std'"):
        TitansHistoryEstimator(H, "h", scaling="std")


def test_a_predictor_saved_before_scaling_existed_reloads_with_its_mean_scaling(
    trained, tmp_path: Path
):
    series, predictor = trained
    assert predictor.scaling == "seasonal"
    predictor.serialize(tmp_path)
    path = tmp_path / "model" / "model.json"
    saved = json.loads(path.read_text())
    del saved["meta"]["predictor"]["scaling"]
    path.write_text(json.dumps(saved))
    loaded = Predictor.deserialize(tmp_path)
    assert loaded.scaling == "mean"
    mean = TitansHistoryPredictor(predictor.model, H, "h", scaling="mean")
    data = _data(series, H)
    for a, b, c in zip(loaded.predict(data), mean.predict(data), predictor.predict(data),
                       strict=True):  # fmt: skip
        np.testing.assert_array_equal(a.samples, b.samples)
        assert not np.array_equal(a.samples, c.samples)
