"""Whole-history forecasting as a task kind: per horizon and seed, a
:class:`~titans_sci.models.history_forecaster.HistoryForecaster` whose memory streams the whole
series, next to the last-value baseline at the same origins.

Protocol: the long-horizon one of :mod:`.forecasting` (the same chronological split, the
scaler fitted on the training rows, the same validation and test origins: those of every
stride-1 window), with the series read as one stream. Training runs over the training range
in stretches, in order, the memory's state carried (:class:`~titans_sci.history.Stretches`);
the epoch with the lowest validation MSE is kept; the test origins are scored in one streaming
pass with the weights fixed and the memory writing (``mse``, ``mae``), and again with the
memory frozen at the end of the training range (``frozen_mse``, ``frozen_mae``: the same model
without test-time learning).

Covariates (``data.known_covariates``, ``past_covariates``, ``calendar``) are scaled by their
own training rows, as the window task scales them, and read by each forecast over its window
(and, the known ones, over its horizon): see
:meth:`~titans_sci.models.history_forecaster.HistoryForecaster.forecast`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from titans_sci import report
from titans_sci.data.timeseries import Scaler, scaled_columns, split_borders
from titans_sci.history import HistoryScore, Stretches, score_history, training_stages
from titans_sci.models.covariates import Covariates
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    series_covariates,
    stream_forecasts,
)
from titans_sci.tasks.config import HistoryForecastTask
from titans_sci.tasks.forecasting import SeriesKind, task_series
from titans_sci.tasks.kind import TITANS, Unit


@dataclass(frozen=True)
class HistorySplits:
    """A unit's data: the whole scaled series ``[C, T]``, where its training range stops, the
    validation and test origins (cut to at most ``data.max_eval`` each), the scaler and the
    target channels; with covariates, theirs for each channel's stream (``past [C, T, Cp]``,
    ``known [C, T, Ck + Cc]``) and their scaler."""

    series: Tensor
    train_stop: int
    val: Tensor
    test: Tensor
    scaler: Scaler
    columns: list[str]
    covariates: Covariates | None = None
    covariate_scaler: Scaler | None = None


class HistoryForecasting(SeriesKind):
    """The :class:`~titans_sci.tasks.kind.TaskKind` of a :class:`HistoryForecastTask`."""

    task: HistoryForecastTask

    undefined: dict[str, str] = {}

    def __init__(self, task: HistoryForecastTask) -> None:
        p, stretch = task.model.patch_len, task.training.stretch
        if stretch < p or stretch % p:
            raise ValueError(
                f"training.stretch = {stretch} is not a multiple of model.patch_len = {p}: a "
                "stretch is whole patches of the stream"
            )
        self.task = task
        self.table, self.rule, self.file = task_series(task)  # read and checked
        self.protocol = (
            f"chronological {self.rule} split, train-only scaler, the whole history streamed "
            f"(recent window {task.model.lookback}), trained {task.training.stages}, horizons "
            f"{list(task.protocol.horizons)}, "
            f"seeds {list(task.protocol.seeds)}; select on validation MSE, test MSE/MAE on "
            "scaled data at the origins of every stride-1 test window, the memory writing "
            "(mse, mae) and frozen at the end of training (frozen_mse, frozen_mae)"
        )
        self._stretches: Stretches | None = None

    def units(self) -> Iterator[Unit]:
        lookback, limit = self.task.model.lookback, self.task.data.max_eval
        borders = split_borders(len(self.table.values), self.rule, lookback)
        scaled = scaled_columns(self.table, borders.train, self.task.data.covariates)
        assert scaled.scaler is not None  # scaled_columns scales unless told not to
        series = torch.from_numpy(scaled.values.astype(np.float32)).T.contiguous()  # [C, T]
        covariates = series_covariates(scaled.past, scaled.known, len(series))
        for horizon in self.task.protocol.horizons:
            val = torch.arange(borders.val[0] + lookback, borders.val[1] - horizon + 1)
            test = torch.arange(borders.test[0] + lookback, borders.test[1] - horizon + 1)
            data = HistorySplits(
                series, borders.train[1], _at_most(val, limit), _at_most(test, limit),
                scaled.scaler, scaled.columns, covariates, scaled.covariate_scaler,
            )  # fmt: skip
            yield from self.horizon_units(horizon, data)

    def models(self, unit: Unit) -> dict[str, Callable[[], HistoryForecaster]]:
        config = self.unit_model(unit)
        return {TITANS: lambda: HistoryForecaster(config)}

    def stages(self, model: HistoryForecaster) -> list[tuple[str, list]]:
        """``training.stages``: the window path, then the memory's branch; or every
        parameter at once (see :func:`~titans_sci.history.training_stages`)."""
        return training_stages(model, self.task.training.stages)

    def batches(self, unit: Unit, model: HistoryForecaster):
        data: HistorySplits = unit.data
        # One model trains at a time: its loss reads the stretches (and state) made here.
        stretch = self.task.training.stretch
        self._stretches = Stretches(
            model, data.series, data.train_stop, stretch, covariates=data.covariates
        )
        return self._stretches.batches

    def loss(self, model: HistoryForecaster, batch: tuple[int, int]) -> Tensor:
        assert self._stretches is not None and self._stretches.model is model
        return self._stretches.loss(batch)

    def score_dev(self, model: HistoryForecaster, unit: Unit) -> float:
        data: HistorySplits = unit.data
        return -score_history(model, data.series, data.val, covariates=data.covariates).mse

    def evaluate(self, model: HistoryForecaster, unit: Unit) -> tuple[dict[str, Any], None]:
        data: HistorySplits = unit.data
        writes = score_history(model, data.series, data.test, covariates=data.covariates)
        metrics = {"mse": writes.mse, "mae": writes.mae}
        if model.config.memory:  # without a memory there is nothing to freeze
            frozen = score_history(model, data.series, data.test, freeze_at=data.train_stop,
                                   covariates=data.covariates)  # fmt: skip
            metrics.update(frozen_mse=frozen.mse, frozen_mae=frozen.mae)
        return metrics, None

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        horizon = unit.labels["horizon"]
        if not self.runs_last_value(unit):
            return []
        score = _last_value(unit.data.series, unit.data.test, horizon)
        return [{"horizon": horizon, "model": "last_value", "mse": score.mse, "mae": score.mae}]

    def figures(
        self, model: HistoryForecaster, unit: Unit, predictions: None, folder: Path
    ) -> dict[str, Path]:
        """The forecast at the last test origin against the truth with a 95% band (1.96
        standard deviations of the validation errors at each step), and the memory's surprise
        along the whole stream, for the target channel (``OT`` if present, else the last)."""
        data: HistorySplits = unit.data
        model.eval()
        channel = data.columns.index("OT") if "OT" in data.columns else len(data.columns) - 1
        name, horizon = data.columns[channel], model.config.horizon
        steps = torch.arange(horizon)
        errors = torch.cat([
            forecast[channel] - data.series[channel, at[:, None] + steps]
            for at, forecast in stream_forecasts(model, data.series, data.val,
                                                 covariates=data.covariates)
        ])  # fmt: skip
        spread = 1.96 * errors.std(dim=0).numpy()
        origin = int(data.test[-1])
        (_, forecast), = stream_forecasts(model, data.series, data.test[-1:],
                                          covariates=data.covariates)  # fmt: skip
        history = data.series[channel, max(0, origin - 4 * horizon) : origin].numpy()
        truth = data.series[channel, origin : origin + horizon].numpy()
        figures = {
            f"Last test origin, {name} ({unit.folder})": report.forecast_band(
                history, truth, forecast[channel, 0].numpy(), spread, folder / "forecast.png"
            )
        }
        if model.config.memory:
            surprise, _ = model.surprise(data.series[channel : channel + 1, :origin])
            caption = "The memory's surprise along the whole stream (train, validation, test)"
            figures[caption] = report.surprise_trace(
                surprise[0].numpy(), folder / "surprise.png",
                f"surprise per patch of {name} ({model.config.patch_len} steps each)",
            )  # fmt: skip
        return figures


def _at_most(origins: Tensor, limit: int) -> Tensor:
    """At most ``limit`` evenly spaced origins (all of them for 0)."""
    if not limit or len(origins) <= limit:
        return origins
    return origins[np.linspace(0, len(origins) - 1, limit).round().astype(int)]


def _last_value(series: Tensor, origins: Tensor, horizon: int) -> HistoryScore:
    """The last value before each origin repeated over the horizon, scored as the model is."""
    steps = torch.arange(horizon)
    error = series[:, origins - 1, None] - series[:, origins[:, None] + steps]
    return HistoryScore(
        float(error.double().square().mean()), float(error.double().abs().mean()), len(origins)
    )
