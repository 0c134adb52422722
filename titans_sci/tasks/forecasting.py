"""Long-horizon forecasting as a task kind: a Titans forecaster per horizon and seed, next to
the last-value baseline on the same windows.

Protocol: chronological splits (ETT 12/4/4 months, others 70/10/20), a scaler fitted on the
training rows only, stride-1 windows with validation and test windows starting ``lookback``
steps before their border; train with MSE (by default in the scaled data's units, those of the
metric; ``loss_units = "window"`` takes each window's own instance-normalised units), keep the
epoch with the lowest validation MSE (on every ``val_stride``-th validation window: stride-1
neighbours share all but one step), report test MSE and MAE (scaled data, every window, the
last partial batch kept) once per seed and horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from titans_sci import report
from titans_sci.data.registry import load_manifest
from titans_sci.data.timeseries import (
    Scaler,
    TimeSeriesTable,
    WindowDataset,
    load_dataset,
    make_splits,
    read_series,
)
from titans_sci.evaluation.forecasting import evaluate_windows, last_value_forecast
from titans_sci.evaluation.protocol import summarize
from titans_sci.models.forecaster import TitansForecaster
from titans_sci.tasks.config import ForecastTask, HistoryForecastTask
from titans_sci.tasks.kind import TITANS, Unit

Windows = WindowDataset | Subset
"""A split's windows, or evenly spaced ones of them (:func:`every_kth`, :func:`at_most`)."""


@dataclass(frozen=True)
class HorizonSplits:
    """A unit's data: the splits of its horizon (see
    :func:`~titans_sci.data.timeseries.make_splits`), validation and test cut to at most
    ``data.max_eval`` windows each, the scaler fitted on the training rows, the target
    channels, and the covariates' scaler (``None`` without covariates)."""

    train: WindowDataset
    val: Windows
    test: Windows
    scaler: Scaler
    columns: list[str]
    covariate_scaler: Scaler | None = None


def every_kth(windows: Windows, stride: int) -> Windows:
    """Every ``stride``-th window of ``windows`` (all of them at stride 1), the first one
    included."""
    return windows if stride == 1 else Subset(windows, range(0, len(windows), stride))


def at_most(windows: Windows, limit: int) -> Windows:
    """At most ``limit`` evenly spaced windows of ``windows`` (all of them for 0)."""
    if not limit or len(windows) <= limit:
        return windows
    return Subset(windows, np.linspace(0, len(windows) - 1, limit).round().astype(int).tolist())


class SeriesKind:
    """What the forecasting kinds share: the series file they read, and a summary of rows per
    model, horizon and seed (:func:`summarize_horizons`)."""

    task: SeriesTask
    table: TimeSeriesTable
    file: Path

    def data_files(self) -> dict[str, Path]:
        return {"series": self.file}

    def horizon_units(self, horizon: int, data: Any) -> Iterator[Unit]:
        """The units of one horizon: one per seed, all on ``data``."""
        for seed in self.task.protocol.seeds:
            yield Unit({"horizon": horizon, "seed": seed}, seed, data)

    def model_meta(self, unit: Unit) -> dict[str, Any]:
        """The columns and scalers of the unit's data (a ``.scaler``, ``.columns`` and, where
        it has one, ``.covariate_scaler``)."""
        covariates = getattr(unit.data, "covariate_scaler", None)
        return series_meta(self.task, self.table, unit.data.scaler, unit.data.columns, covariates)

    def runs_last_value(self, unit: Unit) -> bool:
        """Whether the last-value baseline runs on ``unit``: once per horizon (it has no
        seed), when the task asks for it."""
        return self.task.baselines.last_value and unit.seed == self.task.protocol.seeds[0]

    def unit_model(self, unit: Unit) -> Any:
        """The task's model config with the unit's horizon, target channels and covariates."""
        data = self.task.data
        return replace(
            self.task.model,
            horizon=unit.labels["horizon"],
            channels=len(self.table.columns) - len(data.covariates.columns),
            past_covariates=len(data.past_covariates),
            known_covariates=len(data.known_covariates),
            calendar=len(data.calendar),
        )

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return summarize_horizons(rows, self.task.protocol.horizons)

    def format_summary(self, result: dict[str, Any]) -> str:
        return format_horizons(result)


class Forecasting(SeriesKind):
    """The :class:`~titans_sci.tasks.runner.TaskKind` of a :class:`ForecastTask`."""

    task: ForecastTask

    undefined: dict[str, str] = {}

    def __init__(self, task: ForecastTask) -> None:
        self.task = task
        self.table, self.rule, self.file = task_series(task)
        self.protocol = (
            f"chronological {self.rule} split, train-only scaler, lookback "
            f"{task.model.lookback}, horizons {list(task.protocol.horizons)}, seeds "
            f"{list(task.protocol.seeds)}; select on validation MSE, test MSE/MAE on scaled data"
        )

    def units(self) -> Iterator[Unit]:
        lookback, limit = self.task.model.lookback, self.task.data.max_eval
        covariates = self.task.data.covariates
        for horizon in self.task.protocol.horizons:
            splits = make_splits(self.table, self.rule, lookback, horizon, covariates=covariates)
            assert splits.scaler is not None  # make_splits scales unless told not to
            data = HorizonSplits(
                splits.train,
                at_most(splits.val, limit),
                at_most(splits.test, limit),
                splits.scaler,
                splits.columns,
                splits.covariate_scaler,
            )
            yield from self.horizon_units(horizon, data)

    def models(self, unit: Unit) -> dict[str, Callable[[], TitansForecaster]]:
        config = self.unit_model(unit)
        return {TITANS: lambda: TitansForecaster(config)}

    def batches(self, unit: Unit, model: nn.Module):
        train = unit.data.train
        training = self.task.training

        def batches(epoch: int, generator: torch.Generator):
            order = torch.randperm(len(train), generator=generator)
            if training.windows_per_epoch:
                order = order[: training.windows_per_epoch]
            yield from DataLoader(Subset(train, order.tolist()), batch_size=training.batch_size)

        return batches

    def loss(self, model: TitansForecaster, batch: tuple[Tensor, ...]) -> Tensor:
        x, y, *covariates = batch  # (past, known) when the task has covariates
        return model.loss(x, y, self.task.training.loss_units, None, *covariates)

    def score_dev(self, model: TitansForecaster, unit: Unit) -> float:
        val = every_kth(unit.data.val, self.task.training.val_stride)
        return -_errors(model, val)["mse"]

    def evaluate(self, model: TitansForecaster, unit: Unit) -> tuple[dict[str, Any], None]:
        return _errors(model, unit.data.test), None

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        horizon = unit.labels["horizon"]
        if not self.runs_last_value(unit):
            return []

        def naive(x: Tensor, *covariates: Tensor) -> Tensor:
            return last_value_forecast(x, horizon)

        return [
            {"horizon": horizon, "model": "last_value", **evaluate_windows(naive, unit.data.test)}
        ]

    def figures(
        self, model: TitansForecaster, unit: Unit, predictions: None, folder: Path
    ) -> dict[str, Path]:
        """The last test window's forecast against the truth with a 95% band (1.96 standard
        deviations of the validation errors at each step), and the memory's surprise along
        it, for the target channel (``OT`` if present, else the last)."""
        splits: HorizonSplits = unit.data
        model.eval()
        columns = list(splits.columns)
        channel = columns.index("OT") if "OT" in columns else len(columns) - 1
        errors = [
            model.predict(x, *covariates)[..., channel] - y[..., channel]
            for x, y, *covariates in DataLoader(splits.val, batch_size=256)
        ]
        spread = 1.96 * torch.cat(errors).std(dim=0).numpy()
        x, y, *last = splits.test[len(splits.test) - 1]
        covariates = [c[None] for c in last]
        forecast = model.predict(x[None], *covariates)[0, :, channel].numpy()
        name = columns[channel]
        trace = model.surprise(x[None], *covariates)[0].numpy()
        trace = trace[min(channel, trace.shape[0] - 1)]
        return {
            f"Last test window, {name} ({unit.folder})": report.forecast_band(
                x[:, channel].numpy(), y[:, channel].numpy(), forecast, spread,
                folder / "forecast.png",
            ),
            "The memory's surprise along the last test window": report.surprise_trace(
                trace, folder / "surprise.png", f"surprise per patch of {name}"
            ),
        }  # fmt: skip


def _errors(model: TitansForecaster, windows: Dataset) -> dict[str, float]:
    model.eval()
    return evaluate_windows(model.predict, windows)


SeriesTask = ForecastTask | HistoryForecastTask
"""A task that forecasts a series: its ``data`` is a ``SeriesData``, its model has a
``lookback``, its protocol ``horizons``."""

#: The metrics of a forecasting row, in the order the summary shows them.
METRICS = ("mse", "mae", "frozen_mse", "frozen_mae")


def task_series(task: SeriesTask) -> tuple[TimeSeriesTable, str, Path]:
    """The task's series (its columns only), its split rule and the file it came from, checked
    long enough for every horizon's splits (refused before a run folder is touched)."""
    table, rule, file = _read_task_series(task)
    for horizon in task.protocol.horizons:
        make_splits(table, rule, task.model.lookback, horizon, scale=False,
                    covariates=task.data.covariates)  # fmt: skip
    return table, rule, file


def series_meta(
    task: SeriesTask,
    table: TimeSeriesTable,
    scaler: Scaler,
    columns: list[str],
    covariate_scaler: Scaler | None = None,
) -> dict[str, Any]:
    """What a saved forecaster needs to read a new series as it was trained: its target
    columns and their scaler, and the covariates it reads (``past_covariates``,
    ``known_covariates``, ``calendar``) with theirs."""
    data = task.data
    meta = {
        "dataset": data.dataset,
        "columns": list(columns),
        "date_column": data.date_column,
        "freq": table.freq,
        "read": data.read.to_dict(),
        "scaler_mean": scaler.mean.tolist(),
        "scaler_scale": scaler.scale.tolist(),
    }
    if data.covariates:
        meta.update(
            past_covariates=list(data.past_covariates),
            known_covariates=list(data.known_covariates),
            calendar=list(data.calendar),
        )
    if covariate_scaler is not None:
        meta.update(
            covariate_mean=covariate_scaler.mean.tolist(),
            covariate_scale=covariate_scaler.scale.tolist(),
        )
    return meta


def summarize_horizons(rows: list[dict[str, Any]], horizons: Sequence[int]) -> dict[str, Any]:
    """Per model, per horizon the mean and spread over seeds of each metric its rows have
    (:data:`METRICS`), and their averages over the horizons."""
    summary: dict[str, Any] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        per_horizon = {}
        for h in horizons:
            mine = [r for r in rows if (r["model"], r["horizon"]) == (model, h)]
            metrics = [m for m in METRICS if all(m in r for r in mine)]
            per_horizon[str(h)] = summarize([{m: r[m] for m in metrics} for r in mine])
        average = {
            m: float(np.mean([s[m]["mean"] for s in per_horizon.values()]))
            for m in METRICS
            if all(m in s for s in per_horizon.values())
        }
        summary[model] = {"horizons": per_horizon, "average": average}
    return summary


def format_horizons(result: dict[str, Any]) -> str:
    """The summary in a few lines: per model, each horizon's MSE/MAE and their average (and the
    frozen memory's, where there is one)."""
    lines = [f"{result['task']['name']}: test MSE / MAE on scaled data (mean over seeds)"]
    for model, summary in result["summary"].items():
        for prefix, label in (("", model), ("frozen_", f"{model} (frozen memory)")):
            mse, mae = f"{prefix}mse", f"{prefix}mae"
            if mse not in summary["average"]:
                continue
            cells = ", ".join(
                f"H={h} {s[mse]['mean']:.4f}/{s[mae]['mean']:.4f}"
                for h, s in summary["horizons"].items()
            )
            avg = summary["average"]
            lines.append(f"  {label:>10}: {cells}; average {avg[mse]:.4f}/{avg[mae]:.4f}")
    return "\n".join(lines)


def _read_task_series(task: SeriesTask) -> tuple[TimeSeriesTable, str, Path]:
    """The task's series (its columns only), its split rule and the file it came from."""
    data = task.data
    columns = [*data.columns, *data.covariates.columns] if data.columns else None
    if data.dataset is None:
        # SeriesData: a file when there is no dataset, and a file comes with its split rule
        assert data.file is not None and data.split_rule is not None
        file = Path(data.file)
        table = read_series(file, data.date_column, columns, **data.read.kwargs())
        return table, data.split_rule, file
    manifest = load_manifest(data.dataset)
    table = load_dataset(data.dataset)
    if columns:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"{data.dataset}: no column(s) {missing}; has {table.columns}")
        keep = [table.columns.index(c) for c in columns]
        table = replace(table, values=table.values[:, keep], columns=columns)
    file = next(iter(manifest.splits.values())).file
    rule = data.split_rule or manifest.split_rule
    assert rule is not None  # load_manifest requires it of every time-series data set
    return table, rule, Path(file)
