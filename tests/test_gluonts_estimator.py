"""TitansEstimator / TitansPredictor (GluonTS core API) on real data: M4 Hourly and ETTh1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.evaluation import Evaluator, make_evaluation_predictions
from gluonts.model.forecast import QuantileForecast, SampleForecast
from gluonts.model.predictor import Predictor

from titans_sci.data.timeseries import read_m4
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.gluonts_estimator import TitansEstimator, TitansPredictor

ROOT = Path(__file__).resolve().parents[1]
M4_HOURLY = ROOT / "datasets" / "m4" / "hourly"
ETTH1 = ROOT / "datasets" / "ett" / "ETTh1" / "ETTh1.csv.gz"
H = 48
TINY = LMMConfig(
    dim=16, depth=1, memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=8)
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is fastest, and more threads on a busy machine
    oversubscribe it (the module took ~90 s with two threads next to other jobs, ~10 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _estimator(**overrides) -> TitansEstimator:
    settings = dict(
        prediction_length=H, freq="h", backbone=TINY, epochs=2, batches_per_epoch=10, batch_size=16
    )
    return TitansEstimator(**{**settings, **overrides})


def _evaluate(test, predictor, num_samples=50):
    forecasts, series = make_evaluation_predictions(test, predictor, num_samples=num_samples)
    forecasts, series = list(forecasts), list(series)
    metrics, _ = Evaluator(quantiles=(0.1, 0.5, 0.9), num_workers=0)(series, forecasts)
    return forecasts, series, metrics


@pytest.fixture(scope="module")
def m4():
    """The first 20 M4 Hourly series: (training data, training + test horizon)."""
    series = read_m4(M4_HOURLY / "Hourly-train.csv.gz", M4_HOURLY / "Hourly-test.csv.gz")[:20]
    train = ListDataset(
        [{"item_id": s["item_id"], "start": s["start"], "target": s["target"]} for s in series],
        freq="h",
    )
    test = ListDataset(
        [
            {
                "item_id": s["item_id"],
                "start": s["start"],
                "target": np.concatenate([s["target"], s["test"]]),
            }
            for s in series
        ],
        freq="h",
    )
    return train, test


@pytest.fixture(scope="module")
def predictor(m4) -> TitansPredictor:
    train, _ = m4
    return _estimator().train(train, validation_data=train)


def test_m4_hourly_backtest(m4, predictor):
    train, test = m4
    forecasts, series, metrics = _evaluate(test, predictor)
    assert len(forecasts) == len(series) == 20
    for forecast, truth, entry in zip(forecasts, series, train, strict=True):
        assert isinstance(forecast, SampleForecast)
        assert forecast.item_id == entry["item_id"]
        assert forecast.samples.shape == (50, H)
        assert np.isfinite(forecast.samples).all()
        # The forecast starts right after the last training observation, on the test horizon.
        assert forecast.start_date == entry["start"] + len(entry["target"])
        assert forecast.start_date == truth.index[-H]
        assert forecast.index.equals(truth.index[-H:])
    for name in ("MASE", "sMAPE", "mean_wQuantileLoss"):
        assert math.isfinite(metrics[name]), name
    assert metrics["MASE"] < 10 and metrics["sMAPE"] < 1  # sane scale, not a learning claim


def test_validation_keeps_the_best_epoch(m4, predictor):
    train, _ = m4
    history = predictor.history
    assert [r["epoch"] for r in history] == [0, 1]
    assert all(math.isfinite(r["train_loss"]) for r in history)
    windows = np.stack([entry["target"][-(4 * H + H) :] for entry in train])
    windows = torch.from_numpy(windows)[..., None]
    with torch.no_grad():
        kept = float(predictor.model.loss(windows[:, : 4 * H], windows[:, 4 * H :]))
    assert kept == pytest.approx(min(r["validation_loss"] for r in history), rel=1e-5)


@pytest.mark.parametrize("head", ["point", "quantile", "student_t"])
def test_every_head_gives_valid_forecasts(m4, head):
    train, test = m4
    estimator = _estimator(head=head, quantiles=(0.9, 0.1, 0.5), epochs=1, batches_per_epoch=3)
    forecasts, _, metrics = _evaluate(list(test)[:5], estimator.train(list(train)[:5]), 7)
    assert math.isfinite(metrics["MASE"]) and math.isfinite(metrics["mean_wQuantileLoss"])
    for forecast in forecasts:
        assert forecast.prediction_length == H
        if head == "quantile":
            assert isinstance(forecast, QuantileForecast)
            assert forecast.forecast_keys == ["0.1", "0.5", "0.9"]  # sorted, as the head's
            q = forecast.forecast_array
            assert q.shape == (3, H) and np.isfinite(q).all()
            assert (np.diff(q, axis=0) >= 0).all()
        else:
            assert isinstance(forecast, SampleForecast)
            samples = forecast.samples
            assert samples.shape == ((1, H) if head == "point" else (7, H))
            assert np.isfinite(samples).all()
            if head == "student_t":
                assert (samples.std(axis=0) > 0).all()


def test_serialize_round_trip(m4, predictor, tmp_path):
    _, test = m4
    predictor.serialize(tmp_path)
    assert (tmp_path / "gluonts-config.json").exists()
    for loaded in (Predictor.deserialize(tmp_path), TitansPredictor.deserialize(tmp_path)):
        assert type(loaded) is TitansPredictor
        assert loaded.model.config == predictor.model.config
        for name in ("prediction_length", "freq", "context_length", "num_samples", "seed"):
            assert getattr(loaded, name) == getattr(predictor, name), name
        before = list(predictor.predict(test))
        after = list(loaded.predict(test))
        assert len(before) == len(after) == 20
        for a, b in zip(before, after, strict=True):
            assert a.start_date == b.start_date and a.item_id == b.item_id
            np.testing.assert_array_equal(a.samples, b.samples)


def test_quantile_predictor_round_trip(m4, tmp_path):
    train, test = m4
    estimator = _estimator(head="quantile", quantiles=(0.25, 0.75), epochs=1, batches_per_epoch=2)
    predictor = estimator.train(list(train)[:3])
    predictor.serialize(tmp_path)
    loaded = Predictor.deserialize(tmp_path)
    for a, b in zip(predictor.predict(test), loaded.predict(test), strict=True):
        assert a.forecast_keys == b.forecast_keys == ["0.25", "0.75"]
        np.testing.assert_array_equal(a.forecast_array, b.forecast_array)


def test_short_and_gappy_series_are_padded_and_filled(predictor):
    """A series shorter than the context is left-padded with its first value; NaNs are filled
    with the last observed value (leading ones with the first)."""
    start = pd.Period("2020-01-01 00:00", freq="h")
    short = (100 + 10 * np.random.default_rng(0).standard_normal(60)).astype(np.float32)
    pad = predictor.context_length - len(short)
    padded = np.concatenate([np.full(pad, short[0], np.float32), short])
    gappy = short.copy()
    gappy[[0, 1, 20, 21, 59]] = np.nan
    filled = gappy.copy()
    filled[[0, 1]], filled[[20, 21]], filled[59] = short[2], short[19], short[58]

    def forecast(target, begin=start):
        entry = {"item_id": "x", "start": begin, "target": target}
        return next(iter(predictor.predict([entry])))  # each call draws the same samples

    a, b = forecast(short), forecast(padded, start - pad)
    assert a.start_date == b.start_date == start + 60
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(forecast(gappy).samples, forecast(filled).samples)
    assert not np.array_equal(forecast(filled).samples, a.samples)
    # The short series trains too: its one window is left-padded.
    entry = {"item_id": "short", "start": start, "target": short}
    assert len(_estimator(epochs=1, batches_per_epoch=1).train([entry]).history) == 1


def test_etth1_training_loss_decreases():
    """ETTh1 OT (hourly, 17372 points after holding out the last 48), Student-t head,
    4 epochs x 25 batches of 32 windows of 192 + 48 steps, lr 3e-3 (~2 s on one core).

    Measured on CPU, seeds 0-9: the mean training NLL fell from 1.67-1.75 (first epoch) to
    1.46-1.53 (last epoch), a drop of 0.17-0.29 (seed 0: 1.749 -> 1.460). The alternative check,
    MASE on the 48 held-out points, was not robust at this budget: 0.40-0.77 (seed 0: 0.47)
    against 0.743 for a constant forecast (the mean of the last 192 points) and 0.435 for the
    naive last value, so two of ten seeds did not beat the constant; it is not asserted.
    """
    frame = pd.read_csv(ETTH1, usecols=["date", "OT"])
    start = pd.Period(frame["date"].iloc[0], freq="h")
    ot = frame["OT"].to_numpy(np.float32)
    train = ListDataset([{"item_id": "OT", "start": start, "target": ot[:-H]}], freq="h")
    estimator = _estimator(epochs=4, batches_per_epoch=25, batch_size=32, lr=3e-3)
    predictor = estimator.train(train)
    losses = [r["train_loss"] for r in predictor.history]
    assert losses[-1] < losses[0] - 0.1, losses
    full = ListDataset([{"item_id": "OT", "start": start, "target": ot}], freq="h")
    forecasts, _, metrics = _evaluate(full, predictor)
    assert forecasts[0].start_date == start + len(ot) - H
    assert math.isfinite(metrics["MASE"])


def test_bad_input_names_the_item(m4, predictor):
    start = pd.Period("2020-01-01 00:00", freq="h")
    good = np.arange(300, dtype=np.float32)
    daily = ListDataset([{"item_id": "daily", "start": "2020-01-01", "target": good}], freq="D")
    with pytest.raises(ValueError, match=r"series 'daily' has frequency 'D'.*'h'"):
        _estimator().train(daily)
    with pytest.raises(ValueError, match=r"series 'daily' has frequency 'D'"):
        list(predictor.predict(daily))
    plain = [{"item_id": "p", "start": "2020-01-01", "freq": "15min", "target": good}]
    with pytest.raises(ValueError, match=r"series 'p' has frequency '15min'"):
        list(predictor.predict(plain))
    cases = {
        "empty": ([], r"series 'empty' is empty or has no finite value"),
        "nan": ([np.nan] * 100, r"series 'nan' is empty or has no finite value"),
        "short": (
            np.ones(H),
            r"series 'short' has 48 values; training and validation series need at least 49",
        ),
        "wide": (np.ones((2, 100)), r"series 'wide': target has shape \(2, 100\)"),
    }
    for item, (target, message) in cases.items():
        data = [
            {"item_id": "ok", "start": start, "target": good},
            {"item_id": item, "start": start, "target": target},
        ]
        with pytest.raises(ValueError, match=message):
            _estimator().train(data)
        if item != "short":  # prediction needs a single observation
            with pytest.raises(ValueError, match=message):
                list(predictor.predict(data))
    with pytest.raises(ValueError, match=r"series #0 \(no item_id\) is empty"):
        list(predictor.predict([{"start": start, "target": []}]))
    with pytest.raises(ValueError, match="patch_len=16 is longer than lookback=8"):
        TitansEstimator(prediction_length=2, freq="h", context_length=8)
    with pytest.raises(ValueError, match="'fortnightly' is not a pandas frequency"):
        TitansEstimator(prediction_length=2, freq="fortnightly")
