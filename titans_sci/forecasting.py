"""Long-horizon forecasting tasks: one TOML file describes data, model, training and protocol.

A task file (see ``tasks/*.toml``)::

    [task]
    kind = "forecasting"
    name = "etth1"
    dataset = "ett/ETTh1"          # a bundled data set (titans_sci.data.registry)
    # or: file = "my.csv", date_column = "date", split_rule = "ratio_70_10_20"
    columns = []                    # [] = every numeric column
    lookback = 96
    horizons = [96, 192, 336, 720]
    seeds = [1]

    [model]                         # a TitansForecaster
    variant = "lmm"                 # lmm | mac | mag | mal
    mode = "channel_independent"    # or "multivariate"
    dim = 64
    depth = 2
    patch_len = 16
    stride = 8
    dropout = 0.1
    lookback_skip = false           # true: the head also reads the normalised window (linear)
    memory = { preset = "titans", num_heads = 4, head_dim = 16, chunk_size = 4 }

    [training]
    epochs = 10
    batch_size = 32
    lr = 1e-3
    patience = 3                    # early stopping on validation MSE
    max_train_windows = 0           # > 0: a seeded random subset of windows per epoch
    val_stride = 1                  # model selection on every k-th validation window
    loss_units = "data"             # the scaled data's units (the metric's); or "window"

Protocol: chronological splits (ETT 12/4/4 months, others 70/10/20), a scaler fitted on the
training rows only, stride-1 windows with validation and test windows starting ``lookback``
steps before their border; train with MSE (by default in the scaled data's units, those of the
metric; ``loss_units = "window"`` takes each window's own instance-normalised units), keep the
epoch with the lowest validation MSE (on every ``val_stride``-th validation window: stride-1
neighbours share all but one step, so 15-minute data loses little at stride 4), report test MSE
and MAE (scaled data, every window, the last partial batch kept) once per seed and horizon, next
to the last-value baseline on the same windows. Results go to ``<out>/<name>/results.json``
and ``runs.csv``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from titans_sci._results import write_config, write_results
from titans_sci._toml import read_tables
from titans_sci.api import save_model
from titans_sci.data.registry import load_manifest
from titans_sci.data.timeseries import ForecastSplits, load_dataset, make_splits, read_series
from titans_sci.distributed import is_main
from titans_sci.evaluation.forecasting import evaluate_windows, last_value_forecast
from titans_sci.evaluation.protocol import summarize
from titans_sci.models import MODELS, backbone_config
from titans_sci.models.forecaster import LOSS_UNITS, ForecasterConfig, TitansForecaster
from titans_sci.train import TrainConfig, Trainer


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str = "forecasting"
    dataset: str | None = None
    file: str | None = None
    date_column: str = "date"
    split_rule: str | None = None
    columns: list[str] = field(default_factory=list)
    lookback: int = 96
    horizons: list[int] = field(default_factory=lambda: [96, 192, 336, 720])
    seeds: list[int] = field(default_factory=lambda: [1])


@dataclass(frozen=True)
class ModelSpec:
    variant: str = "lmm"
    mode: str = "channel_independent"
    dim: int = 64
    depth: int = 2
    patch_len: int = 16
    stride: int = 8
    head: str = "point"
    dropout: float = 0.1
    lookback_skip: bool = False
    memory: dict[str, Any] = field(
        default_factory=lambda: {"preset": "titans", "num_heads": 4, "head_dim": 16}
    )


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    patience: int = 3
    max_train_windows: int = 0
    val_stride: int = 1
    loss_units: str = "data"


@dataclass(frozen=True)
class ForecastTask:
    task: TaskSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    source: Path | None = None


_TYPES = {
    "task": (TaskSpec, {"name": str, "kind": str, "dataset": str, "file": str,
                        "date_column": str, "split_rule": str, "columns": list, "lookback": int,
                        "horizons": list, "seeds": list}),
    "model": (ModelSpec, {"variant": str, "mode": str, "dim": int, "depth": int,
                          "patch_len": int, "stride": int, "head": str, "dropout": float,
                          "lookback_skip": bool, "memory": dict}),
    "training": (TrainingSpec, {"epochs": int, "batch_size": int, "lr": float, "patience": int,
                                "max_train_windows": int, "val_stride": int,
                                "loss_units": str}),
}  # fmt: skip


def load_task(path: str | Path) -> ForecastTask:
    """Read and check a forecasting task file; errors name the file, table and key."""
    path = Path(path)
    parts = read_tables(path, _TYPES, kind="forecasting")
    task = parts["task"]
    if (task.dataset is None) == (task.file is None):
        raise ValueError(f"{path}: [task] needs exactly one of dataset or file")
    if task.file is not None and task.split_rule is None:
        raise ValueError(f"{path}: [task] file needs split_rule (ratio_70_10_20, ett_hour, ...)")
    bad = [h for h in task.horizons if not isinstance(h, int) or isinstance(h, bool) or h < 1]
    if not task.horizons or bad:
        raise ValueError(f"{path}: [task] horizons = {task.horizons!r}; expected ints >= 1")
    if parts["model"].variant not in MODELS:
        raise ValueError(
            f"{path}: [model] variant = {parts['model'].variant!r}; expected one of "
            f"{sorted(MODELS)}"
        )
    if parts["training"].loss_units not in LOSS_UNITS:
        raise ValueError(
            f"{path}: [training] loss_units = {parts['training'].loss_units!r}; expected one of "
            f"{list(LOSS_UNITS)}"
        )
    stride = parts["training"].val_stride
    if stride < 1:
        raise ValueError(f"{path}: [training] val_stride = {stride!r}; expected an int >= 1")
    return ForecastTask(task, parts["model"], parts["training"], path)


def validation_windows(windows: Dataset, stride: int) -> Dataset:
    """Every ``stride``-th window of ``windows`` (all of them at stride 1), first one included."""
    if stride == 1:
        return windows
    return Subset(windows, range(0, len(windows), stride))


def _table_and_rule(task: ForecastTask):
    spec = task.task
    columns = spec.columns or None
    if spec.dataset is not None:
        manifest = load_manifest(spec.dataset)
        table = load_dataset(spec.dataset)
        if columns:
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise ValueError(f"{spec.dataset}: no column(s) {missing}; has {table.columns}")
            keep = [table.columns.index(c) for c in columns]
            table = type(table)(
                table.source, table.timestamps, table.values[:, keep], list(columns), table.freq
            )
        return table, spec.split_rule or manifest.split_rule
    file = Path(spec.file)
    if not file.is_absolute() and task.source is not None:
        file = task.source.parent / file
    return read_series(file, spec.date_column, columns), spec.split_rule


def build_forecaster(task: ForecastTask, horizon: int, channels: int) -> TitansForecaster:
    """The task's :class:`TitansForecaster` for one horizon."""
    spec = task.model
    memory = {"chunk_size": 4, **spec.memory}
    backbone = backbone_config(spec.variant, memory, dim=spec.dim, depth=spec.depth)
    config = ForecasterConfig(
        lookback=task.task.lookback,
        horizon=horizon,
        channels=channels,
        backbone=backbone,
        mode=spec.mode,
        patch_len=spec.patch_len,
        stride=spec.stride,
        head=spec.head,
        dropout=spec.dropout,
        lookback_skip=spec.lookback_skip,
    )
    return TitansForecaster(config)


def train_and_test(
    task: ForecastTask,
    splits: ForecastSplits,
    horizon: int,
    seed: int,
    directory: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """Train one forecaster (MSE, AdamW), keep the epoch with the lowest validation MSE (early
    stopping with the task's patience), and evaluate the test windows once. With
    ``directory``, checkpoint every epoch there (and with ``resume``, continue from it)."""
    torch.manual_seed(seed)
    cfg = task.training
    model = build_forecaster(task, horizon, len(splits.columns))

    def batches(epoch: int, gen: torch.Generator):
        order = torch.randperm(len(splits.train), generator=gen)
        if cfg.max_train_windows:
            order = order[: cfg.max_train_windows]
        yield from DataLoader(Subset(splits.train, order.tolist()), batch_size=cfg.batch_size)

    def predict(x: torch.Tensor) -> torch.Tensor:
        model.eval()
        return model.predict(x)

    val = validation_windows(splits.val, cfg.val_stride)
    config = TrainConfig(cfg.epochs, cfg.lr, patience=cfg.patience)
    trainer = Trainer(model, config, seed, directory, progress)
    result = trainer.fit(
        batches,
        loss=lambda batch: model.loss(*batch, units=cfg.loss_units),
        score_dev=lambda: -evaluate_windows(predict, val)["mse"],
        resume=resume,
    )
    metrics = {
        **evaluate_windows(predict, splits.test),
        "val_mse": -max(result.dev_scores),
        "best_epoch": float(result.best_epoch),
        "epochs_run": float(len(result.dev_scores)),
    }
    if directory is not None:
        meta = {
            "task": task.task.name,
            "dataset": task.task.dataset,
            "columns": list(splits.columns),
            "date_column": task.task.date_column,
            "scaler_mean": splits.scaler.mean.tolist(),
            "scaler_scale": splits.scaler.scale.tolist(),
            "seed": seed,
            **metrics,
        }
        save_model(directory / "model", model, meta)
    return metrics


def run_task(
    path: str | Path, out_dir: str | Path = "runs", resume: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Run a forecasting task file; write ``<out_dir>/<name>/results.json`` and ``runs.csv``.
    Every training run checkpoints under ``<out_dir>/<name>/checkpoints/``; ``resume``
    continues an interrupted task from there and reaches the numbers of an uninterrupted one."""
    return run(load_task(path), out_dir, resume, progress)


def run(
    task: ForecastTask, out_dir: str | Path = "runs", resume: bool = False, progress: bool = False
) -> dict[str, Any]:
    """:func:`run_task` for a task built in code."""
    checkpoints = Path(out_dir) / task.task.name / "checkpoints"
    write_config(checkpoints.parent, task)
    table, rule = _table_and_rule(task)
    runs: list[dict[str, Any]] = []
    first_splits = None
    for horizon in task.task.horizons:
        splits = make_splits(table, rule, task.task.lookback, horizon)
        first_splits = first_splits or splits
        naive = evaluate_windows(lambda x, h=horizon: last_value_forecast(x, h), splits.test)
        runs.append({"horizon": horizon, "model": "last_value", "seed": 0, **naive})
        for seed in task.task.seeds:
            place = checkpoints / f"h{horizon}_seed{seed}"
            metrics = train_and_test(task, splits, horizon, seed, place, resume, progress)
            runs.append({"horizon": horizon, "model": "titans", "seed": seed, **metrics})
    summary: dict[str, dict[str, Any]] = {}
    for model in dict.fromkeys(r["model"] for r in runs):
        per_horizon = {}
        for h in task.task.horizons:
            mine = [r for r in runs if (r["model"], r["horizon"]) == (model, h)]
            per_horizon[str(h)] = summarize([{"mse": r["mse"], "mae": r["mae"]} for r in mine])
        means = {
            m: float(np.mean([s[m]["mean"] for s in per_horizon.values()])) for m in ("mse", "mae")
        }
        summary[model] = {"horizons": per_horizon, "average": means}
    result = {
        "task": asdict(task.task),
        "model": asdict(task.model),
        "training": asdict(task.training),
        "split_rule": rule,
        "columns": list(table.columns),
        "runs": runs,
        "summary": summary,
    }
    if is_main():
        write_report(Path(out_dir) / task.task.name, result, first_splits)
    write_results(Path(out_dir) / task.task.name, result, runs)
    return result


def write_report(directory: Path, result: dict[str, Any], splits: ForecastSplits) -> Path:
    """``report.md`` with learning curves and, for the first model (first horizon and seed),
    the last test window's forecast against the truth with a 95% band (1.96 standard
    deviations of the validation errors at each step) and the memory's surprise along it."""
    from titans_sci import report
    from titans_sci.api import load

    figures = {}
    curves = report.learning_curves(directory / "checkpoints", directory / "learning_curves.png")
    if curves is not None:
        figures["Learning curves"] = curves
    models = sorted((directory / "checkpoints").glob("*/model"))
    if models:
        model = load(models[0]).model
        channel = splits.columns.index("OT") if "OT" in splits.columns else len(splits.columns) - 1
        errors = [
            model.predict(x)[..., channel] - y[..., channel]
            for x, y in DataLoader(splits.val, batch_size=256)
        ]
        spread = 1.96 * torch.cat(errors).std(dim=0).numpy()
        x, y = splits.test[len(splits.test) - 1]
        forecast = model.predict(x[None])[0, :, channel].numpy()
        name = splits.columns[channel]
        figures[f"Last test window, {name} ({models[0].parent.name})"] = report.forecast_band(
            x[:, channel].numpy(), y[:, channel].numpy(), forecast, spread,
            directory / "forecast.png",
        )  # fmt: skip
        trace = model.surprise(x[None])[0].numpy()
        trace = trace[min(channel, trace.shape[0] - 1)]
        figures["The memory's surprise along the last test window"] = report.surprise_trace(
            trace, directory / "surprise.png", f"surprise per patch of {name}"
        )
    return report.write_report(
        directory, result["task"]["name"], format_summary(result).splitlines(), figures
    )


def format_summary(result: dict[str, Any]) -> str:
    """Per model: MSE/MAE per horizon and their average."""
    lines = [f"{result['task']['name']}: test MSE / MAE on scaled data (mean over seeds)"]
    for model, summary in result["summary"].items():
        cells = ", ".join(
            f"H={h} {s['mse']['mean']:.4f}/{s['mae']['mean']:.4f}"
            for h, s in summary["horizons"].items()
        )
        avg = summary["average"]
        lines.append(f"  {model:>10}: {cells}; average {avg['mse']:.4f}/{avg['mae']:.4f}")
    return "\n".join(lines)
