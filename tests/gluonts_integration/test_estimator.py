"""TitansEstimator / TitansPredictor (GluonTS core API) on real data: M4 Hourly and ETTh1;
missing values masked out of the loss; checkpoints and exact resume through the Trainer."""

from __future__ import annotations

import json
import math
from dataclasses import replace
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
from titans_sci.gluonts import (
    DEFAULT_MODEL,
    DEFAULT_TRAINING,
    TitansEstimator,
    TitansPredictor,
)
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster
from titans_sci.train import CHECKPOINT

ROOT = Path(__file__).resolve().parents[2]
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


def _estimator(
    head: str = "student_t",
    quantiles: tuple[float, ...] | None = None,
    epochs: int = 2,
    batch_size: int = 16,
    lr: float = 1e-3,
    patience: int | None = None,
    dropout: float = 0.0,
    **settings,
) -> TitansEstimator:
    model = ForecasterConfig(backbone=TINY, head=head, dropout=dropout)
    if quantiles is not None:
        model = replace(model, quantiles=quantiles)
    training = replace(
        DEFAULT_TRAINING, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience
    )
    settings = {"prediction_length": H, "freq": "h", "batches_per_epoch": 10, **settings}
    return TitansEstimator(model=model, training=training, **settings)


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
    """At prediction, a series shorter than the context is left-padded with its first value;
    missing input values are filled with the last observed value (leading ones with the
    first)."""
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

    Measured on CPU (one thread), seeds 0-9, windows drawn from the Trainer's generator: the
    mean training NLL fell from 1.66-1.72 (first epoch) to 1.47-1.51 (last epoch), a drop of
    0.17-0.25 (seed 0: 1.697 -> 1.496). The alternative check, MASE on the 48 held-out points,
    was not robust at this budget: 0.42-0.86 (seed 0: 0.59) against 0.743 for a constant
    forecast (the mean of the last 192 points) and 0.435 for the naive last value, so three of
    ten seeds did not beat the constant; it is not asserted.
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


# ------------------------------------------------------------------ settings, gaps and resume


def test_the_settings_are_the_project_configs(m4):
    estimator = TitansEstimator(prediction_length=24, freq="h")
    assert estimator.model_config == replace(DEFAULT_MODEL, lookback=96, horizon=24, channels=1)
    assert estimator.model_config.head == "student_t"
    assert estimator.training == DEFAULT_TRAINING and estimator.training.clip_norm == 1.0
    # The estimator decides the window and the channels; everything else is the config's.
    mine = ForecasterConfig(lookback=500, horizon=3, channels=7, head="quantile", backbone=TINY)
    estimator = TitansEstimator(prediction_length=24, freq="h", context_length=48, model=mine)
    assert estimator.model_config == replace(mine, lookback=48, horizon=24, channels=1)
    with pytest.raises(TypeError, match="epochs"):  # the old flags are gone: configs carry them
        TitansEstimator(prediction_length=24, freq="h", epochs=3)
    with pytest.raises(TypeError, match="expected a TrainConfig"):
        TitansEstimator(prediction_length=24, freq="h", training={"epochs": 3})
    with pytest.raises(ValueError, match="resume=True needs the directory"):
        TitansEstimator(prediction_length=24, freq="h", resume=True)
    train, _ = m4
    with pytest.raises(ValueError, match="patience=2 needs validation_data"):
        _estimator(patience=2).train(train)
    start = pd.Period("2020-01-01 00:00", freq="h")
    unobserved = np.arange(300, dtype=np.float32)
    unobserved[-H:] = np.nan
    with pytest.raises(ValueError, match="validation data has no observed value in its series'"):
        _estimator().train(train, [{"item_id": "v", "start": start, "target": unobserved}])


def _with_gaps(target: np.ndarray, leading: int = 0) -> np.ndarray:
    """``target`` with runs of NaN: ``leading`` at the start, two inside, three at the end."""
    gappy = np.array(target, dtype=np.float32)
    gappy[:leading] = np.nan
    n = len(gappy)
    gappy[n // 3 : n // 3 + 40] = np.nan
    gappy[2 * n // 3 : 2 * n // 3 + 7] = np.nan
    gappy[-3:] = np.nan
    return gappy


def test_missing_target_steps_are_masked_out_of_the_loss(m4):
    """The estimator's batches carry the observed mask of the raw series; its loss does not
    depend on the values at missing target steps (NaN or anything else, bit for bit), while
    treating the forward-filled values as data (the estimator before masks) gives another."""
    train, _ = m4
    entry = next(iter(train))
    raw = _with_gaps(entry["target"], leading=2)
    estimator = _estimator(batch_size=8, batches_per_epoch=20)
    series = estimator._series([{**entry, "target": raw}], "training")
    values, observed = series.values[0], series.observed[0]
    kept = raw[2:]  # from the first observed value on
    assert len(values) == len(observed) == len(kept)  # longer than a window: no padding
    np.testing.assert_array_equal(observed, np.isfinite(kept))
    np.testing.assert_array_equal(values[observed], kept[observed])
    n = len(raw)
    np.testing.assert_array_equal(values[n // 3 - 2 : n // 3 + 38], kept[n // 3 - 3])  # ffill

    torch.manual_seed(0)
    model = TitansForecaster(estimator.model_config)
    batches = list(estimator._batches(series, torch.Generator().manual_seed(0)))
    gappy = [b for b in batches if not b[2].all()]
    assert len(gappy) >= 3
    for x, y, mask, total, *covariates in gappy[:3]:
        assert torch.isfinite(x).all() and torch.isfinite(y).all()
        assert int(total[0]) == int(mask.sum()) < mask.numel()
        results = []
        for garbage in (None, float("nan"), 1e6):
            target = y if garbage is None else torch.where(mask, y, torch.full_like(y, garbage))
            model.zero_grad()
            loss = estimator._loss(model, (x, target, mask, total, *covariates))
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        (loss, grads), *others = results
        for other_loss, other_grads in others:
            assert torch.equal(other_loss, loss)
            assert all(torch.equal(a, b) for a, b in zip(other_grads, grads, strict=True))
        with torch.no_grad():
            assert float(model.loss(x, y)) != pytest.approx(float(loss), rel=1e-4)


def test_a_series_with_gaps_trains_on_observed_values_only(m4, monkeypatch):
    """End to end: training on series with gaps gives finite weights and forecasts; writing
    garbage into every missing target step of every batch changes no weight (bit for bit);
    training on the forward-filled series as if observed (the estimator before masks) does."""
    train, test = m4
    entries = list(train)[:3]
    gappy = [{**e, "target": _with_gaps(e["target"])} for e in entries]
    filled = [
        {**e, "target": pd.Series(g["target"]).ffill().to_numpy()}
        for e, g in zip(entries, gappy, strict=True)
    ]
    settings = dict(epochs=2, batches_per_epoch=4, batch_size=8)

    predictor = _estimator(**settings).train(gappy)
    state = predictor.model.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())
    assert all(math.isfinite(r["train_loss"]) for r in predictor.history)
    for forecast in predictor.predict(gappy):
        assert np.isfinite(forecast.samples).all()

    as_data = _estimator(**settings).train(filled).model.state_dict()
    assert not all(torch.equal(state[k], as_data[k]) for k in state)

    tensors = TitansEstimator._tensors

    def garbage_at_missing_steps(self, values, observed, covariates):
        x, y, mask, total, *rest = tensors(self, values, observed, covariates)
        return x, torch.where(mask, y, torch.full_like(y, 1e6)), mask, total, *rest

    monkeypatch.setattr(TitansEstimator, "_tensors", garbage_at_missing_steps)
    again = _estimator(**settings).train(gappy).model.state_dict()
    for name, value in state.items():
        assert torch.equal(again[name], value), name


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_equals_an_uninterrupted_run(m4, tmp_path, monkeypatch):
    """Checkpoints through the Trainer: a run stopped in its third epoch and resumed by a new
    estimator ends with the uninterrupted run's weights, history and forecasts, bit for bit
    (validation, patience and dropout in play); another run's checkpoint is refused."""
    train, test = m4
    train, test = list(train)[:6], list(test)[:6]
    settings = dict(epochs=4, batches_per_epoch=3, batch_size=8, patience=2, dropout=0.1)
    whole = _estimator(**settings).train(train, validation_data=train)

    batches, calls = TitansEstimator._batches, []

    def interrupted(self, series, generator):
        calls.append(None)
        for i, batch in enumerate(batches(self, series, generator)):
            if len(calls) == 3 and i == 1:
                raise Interrupt
            yield batch

    monkeypatch.setattr(TitansEstimator, "_batches", interrupted)
    with pytest.raises(Interrupt):
        _estimator(directory=tmp_path, **settings).train(train, validation_data=train)
    monkeypatch.undo()
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["epochs_done"] == 2

    torch.manual_seed(123)  # whatever state the new process is in
    resumed = _estimator(directory=tmp_path, resume=True, **settings).train(train, train)
    assert resumed.history == whole.history
    expected = whole.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    for a, b in zip(whole.predict(test), resumed.predict(test), strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)

    other = [{**e, "target": e["target"][:-1]} for e in train]
    with pytest.raises(ValueError, match=r"cannot resume.*data.training"):
        _estimator(directory=tmp_path, resume=True, **settings).train(other, train)
    with pytest.raises(ValueError, match=r"cannot resume.*training.lr"):
        _estimator(directory=tmp_path, resume=True, **{**settings, "lr": 0.01}).train(train, train)


FIXTURE = ROOT / "tests" / "fixtures" / "gluonts_predictor_2026-12-06"


def test_a_predictor_serialized_before_the_model_folder_still_loads_and_forecasts_the_same():
    """The fixture was serialized by the code of 85463d3 (three files beside GluonTS' config),
    with its forecasts of three M4 series; it loads and forecasts them again. The stored
    forecasts were made on another CPU, whose float32 kernels may round an ulp or two apart
    (an Intel Xeon differs from the AMD EPYC that wrote them by 1e-7 relative), so they are
    compared to 1e-6; a changed weight or setting moves them far more."""
    loaded = Predictor.deserialize(FIXTURE)
    assert type(loaded) is TitansPredictor
    expected = json.loads((FIXTURE / "expected_forecasts.json").read_text())
    series = read_m4(M4_HOURLY / "Hourly-train.csv.gz", M4_HOURLY / "Hourly-test.csv.gz")[:3]
    data = ListDataset([{"start": s["start"], "target": s["target"][: expected["length"]]}
                        for s in series], freq="h")  # fmt: skip
    for forecast, samples in zip(loaded.predict(data), expected["samples"], strict=True):
        np.testing.assert_allclose(forecast.samples, np.array(samples, dtype=np.float32),
                                   rtol=1e-6, atol=0)  # fmt: skip


def test_a_predictor_is_serialized_as_a_checked_model_folder(tmp_path):
    import shutil

    shutil.copytree(FIXTURE, tmp_path / "old")
    (tmp_path / "new").mkdir()
    Predictor.deserialize(tmp_path / "old").serialize(tmp_path / "new")
    model_json = json.loads((tmp_path / "new" / "model" / "model.json").read_text())
    assert model_json["kind"] == "forecaster" and "weights_sha256" in model_json
    assert model_json["meta"]["predictor"]["context_length"] == 96
    gluonts_json = json.loads((tmp_path / "new" / "gluonts-config.json").read_text())
    assert gluonts_json["type"] == "titans_sci.gluonts.predictor.TitansPredictor"
    expected = json.loads((FIXTURE / "expected_forecasts.json").read_text())
    series = read_m4(M4_HOURLY / "Hourly-train.csv.gz", M4_HOURLY / "Hourly-test.csv.gz")[:3]
    data = ListDataset([{"start": s["start"], "target": s["target"][: expected["length"]]}
                        for s in series], freq="h")  # fmt: skip
    reloaded = Predictor.deserialize(tmp_path / "new")
    old = Predictor.deserialize(tmp_path / "old")
    # on one machine, the re-serialized predictor forecasts as the old one to the bit
    for a, b in zip(reloaded.predict(data), old.predict(data), strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
    weights = tmp_path / "new" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="do not match the checksum"):
        Predictor.deserialize(tmp_path / "new")
