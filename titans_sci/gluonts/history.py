"""GluonTS' door to whole-history forecasting: :class:`TitansHistoryEstimator` trains a
:class:`~titans_sci.models.history_forecaster.HistoryForecaster` on whole series and returns a
:class:`TitansHistoryPredictor`, whose forecast of an entry reads its whole target (the memory
streams it from the first value), so ``make_evaluation_predictions`` and the ``Evaluator`` work
unchanged.

Conventions (those of :mod:`titans_sci.gluonts` where not said):

- **Scale.** Each series is divided by a scale of its observed target (of the part the model is
  given: no look-ahead) and its forecasts multiplied back, so series of any scale weigh alike.
  ``scaling = "seasonal"`` (the default): the mean absolute difference between steps one season
  apart (the frequency's season, GluonTS' ``get_seasonality``), the denominator of MASE, so the
  training loss weighs each series' errors as MASE will. On M4 Hourly, where 126 of 414 series
  sit at a level over 100 times their seasonal error, this took a window-only model's
  validation MASE from 1.66 to 0.97 (``benchmarks/m4_history_validation.py 200 96 96 0``).
  ``"mean"``: the mean absolute value (predictors saved before ``scaling`` existed).
- **Batches of streams.** Series of different lengths are streamed side by side, left-padded
  to the longest with their first value; the padding is never a target, and missing values are
  never targets (they are forward-filled for the input).
- **Forecasts** are point forecasts: one sample path per entry (MASE, sMAPE and MSE are
  meaningful; quantile losses reduce to the absolute error).
- **Covariates** come from GluonTS' fields, as :class:`~titans_sci.gluonts.TitansEstimator`
  reads them: ``feat_dynamic_real`` over the target (and, to predict, the
  ``prediction_length`` steps after it), ``past_feat_dynamic_real`` over the target,
  ``feat_static_cat`` and ``feat_static_real``, and calendar features of each step's period
  (``time_features``). Each forecast reads them over its window and horizon (see
  :meth:`~titans_sci.models.history_forecaster.HistoryForecaster.forecast`); they are not
  scaled (the model normalises each window's data covariates by their own statistics).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gluonts.model.estimator import Estimator
from gluonts.model.forecast import Forecast, SampleForecast
from gluonts.model.predictor import Predictor
from gluonts.time_feature import get_seasonality
from pandas.tseries.frequencies import to_offset
from torch import Tensor

from titans_sci.data.timeseries import left_pad
from titans_sci.history import Stretches, fit_stages
from titans_sci.modelfolder import load_module, save_model
from titans_sci.models.covariates import Covariates
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    HistoryForecasterConfig,
    stream_forecasts,
)
from titans_sci.train import TrainConfig

from .entries import (
    covariate_counts,
    entry_covariates,
    item_name,
    observed_target,
    start_period,
    target_for_input,
)

__all__ = ["TitansHistoryEstimator", "TitansHistoryPredictor"]

_MODEL_FOLDER = "model"


@dataclass(frozen=True)
class Streams:
    """Series side by side: ``values [B', T]`` (scaled, forward-filled, left-padded with their
    first value), ``counts [B', T]`` (observed and not padding: the steps that may be targets),
    ``scale [B']``, ``lengths [B']`` (each series' own length) and their covariates (None for
    a model without any; ``past [B', T, Cp]``, ``known [B', T + ahead, Ck + Cc]``, left-padded
    as the values are, and the static features)."""

    values: Tensor
    counts: Tensor
    scale: Tensor
    lengths: list[int]
    covariates: Covariates | None = None


#: How :func:`streams` scales each series (see the module docstring).
SCALINGS = ("seasonal", "mean")


def _checked(scaling: str) -> str:
    if scaling not in SCALINGS:
        raise ValueError(f"scaling={scaling!r}; expected one of {SCALINGS}")
    return scaling


def series_scale(values: np.ndarray, observed: np.ndarray, season: int, scaling: str) -> float:
    """The scale of one series (``values [T]`` with its observed mask ``[T]``): for
    ``"seasonal"`` the mean absolute difference of observed values ``season`` steps apart (one
    step apart where no such pair exists), falling back to ``"mean"``, the mean absolute
    observed value, where that is 0; 1 for a series of zeros."""
    if _checked(scaling) == "seasonal":
        for lag in (season, 1):
            both = observed[lag:] & observed[:-lag]
            if both.any():
                error = float(np.abs(values[lag:] - values[:-lag])[both].mean())
                if error > 0:
                    return error
                break
    mean = float(np.abs(values[observed]).mean())
    return mean if mean > 0 else 1.0


def streams(
    entries: list[dict[str, Any]],
    freq: str,
    first: int = 0,
    scaling: str = "seasonal",
    model: HistoryForecasterConfig | None = None,
    time_features: Sequence[str] = (),
    ahead: int = 0,
) -> Streams:
    """The streams of ``entries`` (checked; their positions numbered from ``first``), each
    divided by its :func:`series_scale`; with the covariates ``model`` reads (its counts, and
    the calendar features ``time_features``), the known ones ``ahead`` steps past the target."""
    season = get_seasonality(freq)
    targets, masks, scales, extras = [], [], [], []
    reads = model is not None and bool(
        model.past_covariates or model.known_width or model.has_static
    )
    for index, entry in enumerate(entries, start=first):
        start = start_period(entry, index, freq)
        values, observed = observed_target(entry, index)
        targets.append(target_for_input(values, observed))
        masks.append(observed)
        scales.append(series_scale(values, observed, season, scaling))
        if reads:
            assert model is not None
            extras.append(entry_covariates(model, tuple(time_features), entry, index, start,
                                           len(values), len(values) + ahead))  # fmt: skip
    longest = max(len(t) for t in targets)
    scale = np.array(scales, dtype=np.float32)
    values = np.stack([left_pad(t, longest) for t in targets]) / scale[:, None]
    counts = np.stack([left_pad(m, longest, fill=False) for m in masks])
    covariates = None
    if extras:
        past, known, static_cat, static_real = zip(*extras, strict=True)
        covariates = Covariates(
            torch.from_numpy(np.stack([left_pad(c, longest) for c in past])),
            torch.from_numpy(np.stack([left_pad(c, longest + ahead) for c in known])),
            torch.from_numpy(np.stack(static_cat).astype(np.int64)),
            torch.from_numpy(np.stack(static_real).astype(np.float32)),
        )
    return Streams(
        torch.from_numpy(values), torch.from_numpy(counts), torch.from_numpy(scale),
        [len(t) for t in targets], covariates,
    )  # fmt: skip


class TitansHistoryEstimator(Estimator):
    """Trains a univariate :class:`HistoryForecaster` on whole GluonTS series.

    Args:
        prediction_length: forecast horizon ``H``.
        freq: the data's pandas frequency; every entry must match it.
        model: the forecaster (its ``horizon`` and ``channels`` are set to
            ``prediction_length`` and 1); None: the defaults with ``lookback = 4 * H``.
        training: epochs, lr, weight decay, clipping, patience (``batch_size`` is not used: a
            batch is one stretch of every series); None: :class:`TrainConfig` with gradients
            clipped to norm 1.
        stretch: steps of the streams per gradient step (a multiple of the model's
            ``patch_len``; None: 32 patches).
        stages: ``"window_then_memory"`` (the window path, then the memory's branch, each
            with ``training``'s epochs) or ``"joint"`` (see
            :func:`~titans_sci.history.training_stages`).
        scaling: how each series is scaled, ``"seasonal"`` or ``"mean"`` (see the module
            docstring).
        seed, device, directory, resume: as :class:`~titans_sci.gluonts.TitansEstimator`'s.
        num_feat_dynamic_real, num_past_feat_dynamic_real, cardinality,
        num_feat_static_real, time_features: the covariates, as
            :class:`~titans_sci.gluonts.TitansEstimator` takes them (GluonTS' names).

    ``train(training_data, validation_data=None)``: with validation data, the epoch with the
    lowest MSE (scaled) over each validation series' last ``H`` steps is kept, each forecast
    streaming the series before them; without, the last epoch (and no patience).
    """

    def __init__(
        self,
        prediction_length: int,
        freq: str,
        model: HistoryForecasterConfig | None = None,
        training: TrainConfig | None = None,
        stretch: int | None = None,
        stages: str = "window_then_memory",
        scaling: str = "seasonal",
        seed: int = 0,
        device: str | torch.device = "cpu",
        directory: str | os.PathLike[str] | None = None,
        resume: bool = False,
        num_feat_dynamic_real: int = 0,
        num_past_feat_dynamic_real: int = 0,
        cardinality: Sequence[int] = (),
        num_feat_static_real: int = 0,
        time_features: Sequence[str] = (),
    ) -> None:
        super().__init__(lead_time=0)
        if not isinstance(prediction_length, int) or prediction_length < 1:
            raise ValueError(f"prediction_length={prediction_length!r}; expected an int >= 1")
        try:
            to_offset(freq)
        except ValueError as error:
            raise ValueError(f"freq={freq!r} is not a pandas frequency") from error
        if model is None:
            model = HistoryForecasterConfig(lookback=4 * prediction_length)
        counts = covariate_counts(num_feat_dynamic_real, num_past_feat_dynamic_real, cardinality,
                                  num_feat_static_real, time_features)  # fmt: skip
        self.model_config = replace(model, horizon=prediction_length, channels=1, **counts)
        self.time_features = tuple(time_features)
        self.training = training or TrainConfig(clip_norm=1.0)
        self.stretch = stretch or 32 * self.model_config.patch_len
        self.stages = stages
        self.scaling = _checked(scaling)
        self.prediction_length, self.freq, self.seed = prediction_length, freq, seed
        self.device = torch.device(device)
        self.directory, self.resume = directory, resume

    def train(
        self,
        training_data: Iterable[dict[str, Any]],
        validation_data: Iterable[dict[str, Any]] | None = None,
    ) -> TitansHistoryPredictor:
        if validation_data is None and self.training.patience is not None:
            raise ValueError(f"training.patience={self.training.patience} needs validation_data")

        def read(data: Iterable[dict[str, Any]]) -> Streams:
            return streams(list(data), self.freq, 0, self.scaling, self.model_config,
                           self.time_features)  # fmt: skip

        train = read(training_data)
        val = None if validation_data is None else read(validation_data)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = HistoryForecaster(self.model_config).to(self.device)
            series, counts = train.values.to(self.device), train.counts.to(self.device)
            stretches = Stretches(model, series, series.shape[1], self.stretch, counts,
                                  _on(train.covariates, self.device))  # fmt: skip
            fingerprint = {"config": self.model_config.to_dict(), "stretch": self.stretch}
            calls = itertools.count()

            def score_dev() -> float:
                if val is None:  # keep each stage's last epoch
                    return float(next(calls))
                return -_last_horizon_mse(model, val, self.prediction_length)

            fit_stages(model, stretches, self.training, self.seed, score_dev, self.stages,
                       self.directory, fingerprint, resume=self.resume)  # fmt: skip
        return TitansHistoryPredictor(
            model.eval(), self.prediction_length, self.freq, scaling=self.scaling,
            time_features=self.time_features,
        )  # fmt: skip


def _on(covariates: Covariates | None, device: torch.device) -> Covariates | None:
    if covariates is None:
        return None
    return Covariates(*(None if c is None else c.to(device) for c in covariates))


@torch.no_grad()
def _last_horizon_mse(model: HistoryForecaster, val: Streams, horizon: int) -> float:
    """MSE (scaled) over each series' last ``horizon`` observed steps, forecast from the
    stream of everything before them."""
    model.eval()
    end = val.values.shape[1]
    origin = torch.tensor([end - horizon])
    ((_, forecast),) = stream_forecasts(model, val.values, origin, covariates=val.covariates)
    error = forecast[:, 0] - val.values[:, end - horizon :]
    weight = val.counts[:, end - horizon :].float()
    model.train()
    return float((error.square() * weight).sum() / weight.sum().clamp_min(1))


class TitansHistoryPredictor(Predictor):
    """Forecasts the ``prediction_length`` steps after each entry's target, streaming all of it
    (``batch_size`` entries side by side)."""

    def __init__(
        self,
        model: HistoryForecaster,
        prediction_length: int,
        freq: str,
        batch_size: int = 64,
        scaling: str = "seasonal",
        time_features: Sequence[str] = (),
    ) -> None:
        super().__init__(prediction_length=prediction_length, lead_time=0)
        if model.config.horizon != prediction_length or model.config.channels != 1:
            raise ValueError(
                f"the model forecasts {model.config.horizon} steps of {model.config.channels} "
                f"channel(s); expected {prediction_length} steps of one"
            )
        self.model, self.freq, self.batch_size = model.eval(), freq, batch_size
        self.scaling = _checked(scaling)
        self.time_features = tuple(time_features)
        if len(self.time_features) != model.config.calendar:
            raise ValueError(
                f"the model reads {model.config.calendar} calendar feature(s); time_features "
                f"names {list(self.time_features)}"
            )

    def predict(self, dataset: Iterable[dict[str, Any]], **kwargs: Any) -> Iterator[Forecast]:
        entries = list(dataset)
        for first in range(0, len(entries), self.batch_size):
            batch = entries[first : first + self.batch_size]
            yield from self._forecast(batch, first)

    @torch.no_grad()
    def _forecast(self, batch: list[dict[str, Any]], first: int) -> Iterator[Forecast]:
        data = streams(batch, self.freq, first, self.scaling, self.model.config,
                       self.time_features, ahead=self.prediction_length)  # fmt: skip
        origin = torch.tensor([data.values.shape[1]])
        ((_, forecast),) = stream_forecasts(self.model, data.values, origin,
                                            covariates=data.covariates)  # fmt: skip
        points = (forecast[:, 0] * data.scale[:, None]).numpy()  # [B', H]
        for row, entry in enumerate(batch):
            if not np.isfinite(points[row]).all():
                name = item_name(entry, first + row)
                raise FloatingPointError(f"series {name}: the forecast is not finite")
            start = start_period(entry, first + row, self.freq) + data.lengths[row]
            yield SampleForecast(points[row][None], start_date=start,
                                 item_id=entry.get("item_id"))  # fmt: skip

    def serialize(self, path: Path) -> None:
        """GluonTS' config and the forecaster as a model folder in ``path/model``."""
        path = Path(path)
        super().serialize(path)
        meta = {
            "columns": ["target"], "scaler_mean": [0.0], "scaler_scale": [1.0],
            "freq": self.freq,
            "predictor": {"prediction_length": self.prediction_length, "freq": self.freq,
                          "batch_size": self.batch_size, "scaling": self.scaling,
                          "time_features": list(self.time_features)},
        }  # fmt: skip
        save_model(path / _MODEL_FOLDER, self.model, meta)

    @classmethod
    def deserialize(cls, path: Path, **kwargs: Any) -> TitansHistoryPredictor:
        model, meta = load_module(Path(path) / _MODEL_FOLDER)
        if not isinstance(model, HistoryForecaster) or not isinstance(meta.get("predictor"), dict):
            raise ValueError(f"{Path(path) / _MODEL_FOLDER}: not a TitansHistoryPredictor's model")
        # Predictors saved before ``scaling`` existed scaled by the mean absolute value.
        return cls(model, **{"scaling": "mean", **meta["predictor"]})
