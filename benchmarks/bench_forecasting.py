"""Forecasting benchmarks: Titans next to the Titans paper and to GluonTS' own models.

Two parts, each filling ``benchmarks/results/forecasting.json`` (one entry per data set, model
and horizon, with budget, machine, date and wall time) and rebuilding ``forecasting.md`` from
it, so the tables can be filled over several sessions, by several processes at once (e.g. one
per horizon):

1. Long horizon (``--long``): ETTh1, ETTh2, ETTm1, Weather, Exchange (lookback 96, horizons
   96/192/336/720) and ILI (lookback 36, horizons 24/36/48/60); MSE and MAE on the scaled
   data over every stride-1 test window. Titans (the
   task files ``tasks/forecast_*.toml``, LMM and MAG) and GluonTS' PatchTST and DLinear trained on
   the same scaled training rows (each channel a series; GluonTS' own training window sampler;
   the checkpoint with the lowest loss on the validation windows Titans selects on: every
   ``val_stride``-th of the task file, where GluonTS' default is one window per series), then
   asked for every test window.
2. GluonTS protocol (``--m4``): M4 Hourly (414 series, horizon 48): ``TitansEstimator`` against
   GluonTS' DeepAR, PatchTST and DLinear (every default of their estimators but the budget) and
   GluonTS' ``SeasonalNaivePredictor`` (season 24, the reference a trained model should beat);
   ``make_evaluation_predictions`` and ``Evaluator``: MASE, sMAPE, mean weighted quantile loss;
   ``--m4-seeds`` for several seeds (the table gives mean +- std).

3. Electricity prices with covariates (``--epf``, issue 40): the four EPF markets at TimeXer's
   protocol (``tasks/forecast_epf.toml``: 168 hours in, 24 out, 70/10/20, train-fitted scaler,
   MSE/MAE on the scaled price), Titans with no covariates, with the two day-ahead forecasts
   past-only (read over the input window, TimeXer's setting) and known over the horizon (both
   with hour of day and day of week), 3 seeds each, GluonTS' DLinear and PatchTST on the price
   alone, and TimeXer's published table beside them.

GluonTS' torch models need ``gluonts[torch]`` (lightning), which the library does not depend
on: run this from a benchmark environment that has it, e.g.::

    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install torch==2.13.0 \\
        "gluonts[torch]==0.17.0" -e .
    /tmp/bench-venv/bin/python benchmarks/bench_forecasting.py --long ett/ETTh1 --variants lmm
    /tmp/bench-venv/bin/python benchmarks/bench_forecasting.py --m4

Each Titans run is the data set's task file (``titans_sci.tasks``) at one horizon and variant,
run into ``--runs`` (default ``benchmarks/results/runs``), replaced on every run unless
``--resume``. ``--add-seeds --set protocol.seeds=[2]`` trains further seeds (a folder of their
own) and merges them into the stored entry of the same budget, one process per seed at once.
A smoke run of the Titans part (the project's venv is enough for it) that leaves
the committed tables alone::

    .venv/bin/python benchmarks/bench_forecasting.py --long ett/ETTh1 --variants lmm --peers \
        --horizons 96 --set training.epochs=1 --set training.windows_per_epoch=64 \
        --set data.max_eval=64 --runs /tmp/runs --store /tmp/forecasting.json \
        --out /tmp/forecasting.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import describe
from store import save

from titans_sci.data.registry import load_manifest
from titans_sci.data.timeseries import load_dataset, make_splits
from titans_sci.evaluation.forecasting import error_sums, point_errors
from titans_sci.tasks import ForecastTask, load_task, run
from titans_sci.tasks.config import HistoryForecastTask, parse_overrides

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "benchmarks" / "results"
LONG = {
    "ett/ETTh1": "etth1",
    "ett/ETTh2": "etth2",
    "ett/ETTm1": "ettm1",
    "weather": "weather",
    "exchange_rate": "exchange",
    "illness": "ili",
}
"""Data set -> its task file ``tasks/forecast_<stem>.toml``, which gives lookback and horizons
(96 and 96/192/336/720; ILI 36 and 24/36/48/60, the literature's settings)."""
# The Titans paper's Table 3 (neural memory in the Simba framework), MSE / MAE averaged over
# horizons 96/192/336/720 with lookback 96 (inferred; see shared/reference/titans_miras.md 5.6).
PAPER = {
    "ett/ETTh1": (0.420, 0.421),
    "ett/ETTh2": (0.336, 0.382),
    "ett/ETTm1": (0.358, 0.387),
    "weather": (0.231, 0.265),
}
# The same table's baselines (iTransformer's published lookback-96 averages), MSE / MAE: the
# peers as their authors trained them, beside ours as GluonTS trains them.
PUBLISHED = {
    "ett/ETTh1": {"iTransformer": (0.454, 0.447), "RLinear": (0.446, 0.434),
                  "PatchTST": (0.469, 0.454), "DLinear": (0.456, 0.452)},
    "ett/ETTh2": {"iTransformer": (0.383, 0.407), "RLinear": (0.374, 0.398),
                  "PatchTST": (0.387, 0.407), "DLinear": (0.559, 0.515)},
    "ett/ETTm1": {"iTransformer": (0.407, 0.410), "RLinear": (0.414, 0.407),
                  "PatchTST": (0.387, 0.400), "DLinear": (0.403, 0.407)},
    "weather": {"iTransformer": (0.258, 0.278), "RLinear": (0.272, 0.291),
                "PatchTST": (0.259, 0.281), "DLinear": (0.265, 0.317)},
}  # fmt: skip

TITANS_ROWS = [
    f"titans {variant}{mode}{skip}"
    for mode in ("", " mixing")
    for skip in ("", " + skip")
    for variant in ("lmm", "mag")
]
"""The Titans rows, in table order: variant, channel mixing (``--mode channel_mixing``), skip."""
MODE_LABELS = {"channel_independent": "", "channel_mixing": " mixing"}

EPF = ("epf/NP", "epf/PJM", "epf/BE", "epf/FR")
#: What each Titans row of the EPF table reads of the two day-ahead forecasts.
EPF_SETTINGS = {
    "none": "no covariates",
    "past": "covariates over the input",
    "known": "covariates known over the horizon",
    "history": "whole history, covariates known over the horizon",
    "window": "the same without its memory",
    "history-past": "whole history, covariates over the input",
    "window-past": "the same without its memory",
}
#: The settings run with ``tasks/history_epf.toml``, and whether each keeps its memory.
HISTORY_SETTINGS = {"history": True, "window": False, "history-past": True, "window-past": False}
#: TimeXer (NeurIPS 2024) Table 2: MSE / MAE on the scaled price, 168 in, 24 out.
TIMEXER = {
    "epf/NP": {"TimeXer": (0.236, 0.268), "iTransformer": (0.265, 0.300),
               "PatchTST": (0.267, 0.284), "DLinear": (0.309, 0.321)},
    "epf/PJM": {"TimeXer": (0.093, 0.192), "iTransformer": (0.097, 0.197),
                "PatchTST": (0.106, 0.209), "DLinear": (0.108, 0.215)},
    "epf/BE": {"TimeXer": (0.379, 0.243), "iTransformer": (0.394, 0.270),
               "PatchTST": (0.400, 0.262), "DLinear": (0.463, 0.313)},
    "epf/FR": {"TimeXer": (0.385, 0.208), "iTransformer": (0.439, 0.233),
               "PatchTST": (0.411, 0.220), "DLinear": (0.429, 0.260)},
}  # fmt: skip


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


# ----------------------------------------------------------------------------- Titans, long


def long_task(name: str, overrides: dict[str, Any] | None = None) -> ForecastTask:
    """The task file of data set ``name`` (with ``overrides``, as ``titans-sci run --set``):
    Titans' budget and the validation windows every model selects on (an EPF market: its task
    without covariates)."""
    if name in EPF:
        return epf_task(name, "none", overrides)
    return load_task(REPO / "tasks" / f"forecast_{LONG[name]}.toml", overrides)


def epf_task(
    market: str, setting: str, overrides: dict[str, Any] | None = None
) -> ForecastTask | HistoryForecastTask:
    """``tasks/forecast_epf.toml`` on ``market`` with its two day-ahead forecasts read as
    ``setting`` says (:data:`EPF_SETTINGS`; calendar features with either); ``"history"``:
    ``tasks/history_epf.toml``, the whole-history forecaster reading them over the horizon;
    ``"window"``: the same without its memory (``model.memory = false``), its ablation;
    ``"history-past"`` and ``"window-past"``: both reading them over the input window only."""
    covariates = [c for c in load_dataset(market).columns if c != "OT"]
    known = {"data.known_covariates": covariates, "data.past_covariates": []}
    past = {"data.known_covariates": [], "data.past_covariates": covariates}
    reads = {
        "none": {"data.known_covariates": [], "data.past_covariates": [], "data.calendar": []},
        "past": past,
        "known": known,
        "history": known,
        "window": known,
        "history-past": past,
        "window-past": past,
    }[setting]
    if setting in HISTORY_SETTINGS:
        reads = {**reads, "model.memory": HISTORY_SETTINGS[setting]}
    name = f"forecast_{market.replace('/', '_').lower()}_{setting}"
    settings = {"name": name, **(overrides or {}), "data.dataset": market, **reads}
    file = "history_epf.toml" if setting in HISTORY_SETTINGS else "forecast_epf.toml"
    return load_task(REPO / "tasks" / file, settings)


def titans_epf(market: str, setting: str, horizon: int, args: argparse.Namespace) -> dict:
    """Train and test Titans on ``market`` reading its covariates as ``setting`` says, every
    seed of the task file; the last-value baseline comes from the same run."""
    task = epf_task(market, setting, {**parse_overrides(args.set), "protocol.horizons": [horizon]})
    result = run(task, args.runs, resume=args.resume, overwrite=not args.resume)
    if isinstance(task, HistoryForecastTask):
        model, training = task.model, task.training
        budget = (
            f"whole history (tasks/history_epf.toml{'' if model.memory else ', no memory'}): "
            f"window {model.lookback}, patch "
            f"{model.patch_len}, dim {model.backbone.dim}, depth {model.backbone.depth}, "
            f"stretch {training.stretch}, {training.stages}, {training.epochs} epochs max a "
            f"stage (patience {training.patience}), lr {training.lr}, seeds "
            f"{list(task.protocol.seeds)}, covariates past {list(task.data.past_covariates)} "
            f"known {list(task.data.known_covariates)} calendar {list(task.data.calendar)}"
        )
    else:
        budget = titans_budget(task, args)
    return _titans_entries(result, f"{market}|titans {setting}|{horizon}", budget)


def titans_long(name: str, variant: str, horizon: int, args: argparse.Namespace) -> dict:
    """Train and test Titans ``variant`` on ``name`` at one horizon; the last-value baseline
    comes from the same run. With ``--add-seeds`` the run gets a folder of its own seeds and
    its entry joins the stored one's seeds (:func:`merge_seeds`)."""
    mode = MODE_LABELS[args.mode]
    label = f"titans {variant}{mode}" + (" + skip" if args.lookback_skip else "")
    base = long_task(name).name
    run_name = label.replace("titans ", f"{base}_").replace(" + ", "_").replace(" ", "_")
    overrides = {
        **parse_overrides(args.set),
        "protocol.horizons": [horizon],
        "model.backbone.variant": variant,
        "model.lookback_skip": args.lookback_skip,
        "model.mode": args.mode,
    }
    seeds = list(long_task(name, overrides).protocol.seeds)
    suffix = "_seeds" + "-".join(map(str, seeds)) if args.add_seeds else ""
    # the task file's budget, unless --set changes it
    task = long_task(name, {**overrides, "name": f"{run_name}_h{horizon}{suffix}"})
    key = f"{name}|{label}|{horizon}"
    budget = titans_budget(task, args)
    if args.add_seeds:
        check_seeds_join(key, budget, seeds, args.store)
    result = run(task, args.runs, resume=args.resume, overwrite=not args.resume)
    return _titans_entries(result, key, budget)


def _titans_entries(result: dict, key: str, budget: str) -> dict:
    """The store entries of a Titans run at one horizon (``key``: ``<data>|<row>|<horizon>``)
    and of its last-value baseline, the Titans one with each seed's scores."""
    name, _, horizon = key.split("|")
    summary = result["summary"]
    rows = (("titans", key, budget), ("last_value", f"{name}|last value|{horizon}", "no training"))
    entries = {
        row_key: {
            **{m: summary[row]["horizons"][horizon][m]["mean"] for m in ("mse", "mae")},
            "budget": cost,
        }
        for row, row_key, cost in rows
    }
    # The dev score is minus the validation MSE of the epoch each run kept.
    runs = sorted((r for r in result["runs"] if r["model"] == "titans"), key=lambda r: r["seed"])
    entries[key].update(
        val_mse=float(np.mean([-r["dev_score"] for r in runs])),
        seeds={
            str(r["seed"]): {"mse": r["mse"], "mae": r["mae"], "val_mse": -r["dev_score"]}
            for r in runs
        },
    )
    return entries


def titans_budget(task: ForecastTask, args: argparse.Namespace) -> str:
    """The budget line of a Titans entry."""
    model, training, backbone = task.model, task.training, task.model.backbone
    budget = (
        f"{training.epochs} epochs max (patience {training.patience}), "
        f"<= {training.windows_per_epoch or 'all'} windows per epoch, batch "
        f"{training.batch_size}, lr {training.lr}, MSE in {training.loss_units} units, dim "
        f"{backbone.dim}, depth {backbone.depth}, {model.mode}, patch {model.patch_len}/"
        f"{model.stride}, seeds {list(task.protocol.seeds)}"
    )
    if model.lookback_skip:
        budget += ", linear lookback->horizon skip in the head"
    data = task.data
    if data.covariates:
        budget += (f", covariates past {list(data.past_covariates)} known "
                   f"{list(data.known_covariates)} calendar {list(data.calendar)}")  # fmt: skip
    if training.val_stride > 1:
        budget += f", selected on every {training.val_stride}th validation window"
    if task.data.max_eval:
        budget += f", validation and test subsampled to {task.data.max_eval} windows (a smoke run)"
    if args.resume:
        budget += " (resumed from checkpoints: the wall time leaves out earlier training)"
    return budget


_SEEDS = re.compile(r"seeds \[[0-9, ]*\]")


def check_seeds_join(key: str, budget: str, seeds: list[int], store: Path) -> None:
    """Before training: ``--add-seeds`` needs a stored entry of the same budget (seeds aside)
    that does not hold these seeds yet; one clear line otherwise."""
    stored = json.loads(store.read_text()).get(key) if store.exists() else None
    if stored is None or "seeds" not in stored:
        raise SystemExit(f"--add-seeds: {store} has no Titans entry {key!r} with seeds to join")
    if _SEEDS.sub("", stored["budget"]) != _SEEDS.sub("", budget):
        raise SystemExit(
            f"--add-seeds: {store} entry {key!r} has another budget: {stored['budget']!r}, "
            f"this run: {budget!r}"
        )
    held = sorted(set(stored["seeds"]) & {str(s) for s in seeds})
    if held:
        raise SystemExit(f"--add-seeds: {store} entry {key!r} already holds seeds {held}")


def merge_seeds(stored: dict | None, entry: dict) -> dict:
    """The store merge of ``--add-seeds``: a Titans entry joins the stored entry's seeds (per
    seed results kept, MSE, MAE and validation MSE averaged over all seeds, wall times added, the
    budget's seed list the union); other entries (last value) replace the stored one. A stored
    seed without its own validation MSE (older entries) counts with the stored mean."""
    if stored is None or "seeds" not in entry:
        return entry
    if "seeds" not in stored or _SEEDS.sub("", stored["budget"]) != _SEEDS.sub("", entry["budget"]):
        raise ValueError(f"--add-seeds: the stored entry cannot take these seeds: {stored}")
    old = {s: {"val_mse": stored["val_mse"], **r} for s, r in stored["seeds"].items()}
    seeds = {**old, **entry["seeds"]}
    order = sorted(seeds, key=int)
    merged = {
        **entry,
        **{m: float(np.mean([seeds[s][m] for s in order])) for m in ("mse", "mae", "val_mse")},
        "seeds": {s: seeds[s] for s in order},
        "budget": _SEEDS.sub(f"seeds {[int(s) for s in order]}", entry["budget"]),
    }
    if "seconds" in stored and "seconds" in entry:
        merged["seconds"] = stored["seconds"] + entry["seconds"]
    return merged


# ----------------------------------------------------------------------------- GluonTS, long


def _series(values: np.ndarray, start, freq: str) -> list[dict]:
    return [
        {"start": start, "target": values[:, c].astype(np.float32), "item_id": str(c)}
        for c in range(values.shape[1])
    ]


def _every_kth_window(k: int, lookback: int, horizon: int):
    """A GluonTS instance sampler that splits a validation series at every ``k``-th point with
    ``lookback`` steps before and ``horizon`` after it: the windows Titans selects on (GluonTS'
    default, ``ValidationSplitSampler``, takes only the last one)."""
    from gluonts.transform import InstanceSampler

    class EveryKthWindow(InstanceSampler):
        k: int = 1

        def __call__(self, ts: np.ndarray) -> np.ndarray:
            first, last = self._get_bounds(ts)
            return np.arange(first, last + 1, self.k)

    return EveryKthWindow(k=k, min_past=lookback, min_future=horizon)


def gluonts_long(
    name: str, peer: str, horizon: int, args: argparse.Namespace, lookback: int | None = None
) -> dict:
    """Train GluonTS' ``peer`` on the scaled training rows of ``name`` (one series per channel),
    select on the validation windows Titans selects on, and score its mean forecast on every
    test window. ``lookback``: its context (default: the task file's); the validation and test
    windows keep the protocol's origins whatever it is. With a ``lookback`` the entry also
    holds ``val_mse``, the mean forecast's MSE on every validation window (to choose the
    lookback on)."""
    import lightning.pytorch as pl
    from gluonts.dataset.common import ListDataset

    table = load_dataset(name)
    manifest = load_manifest(name)
    freq = manifest.freq
    pl.seed_everything(1, workers=True)
    task = long_task(name)
    if task.data.columns:  # the targets alone (an EPF market's price)
        keep = [table.columns.index(c) for c in task.data.columns]
        table = dataclasses.replace(table, values=table.values[:, keep],
                                    columns=list(task.data.columns))  # fmt: skip
    chosen = lookback is not None
    lookback = lookback or task.model.lookback
    splits = make_splits(table, manifest.split_rule, lookback, horizon)
    scaled = splits.scaler.transform(table.values)
    tr, va = splits.borders.train, splits.borders.val
    start = table.timestamps[0].to_period(freq)
    train = ListDataset(_series(scaled[tr[0] : tr[1]], start, freq), freq=freq)
    val_start = table.timestamps[va[0]].to_period(freq)
    val = ListDataset(_series(scaled[va[0] : va[1]], val_start, freq), freq=freq)
    channels = scaled.shape[1]
    batches = max(1, args.peer_windows * channels // args.peer_batch)
    stride = task.training.val_stride
    sampler = _every_kth_window(stride, lookback, horizon)
    estimator = _estimator(peer, lookback, horizon, freq, args, batches, validation_sampler=sampler)
    budget = (
        f"{args.epochs} epochs of {batches} batches of {args.peer_batch} series windows "
        f"({args.peer_windows} windows x {channels} channels), lowest loss on every "
        f"{'' if stride == 1 else f'{stride}th '}validation window, context {lookback}, seed 1"
    )
    predictor = estimator.train(train, validation_data=val)
    predictor.batch_size = 1024

    def errors(windows) -> dict:
        sums = torch.zeros(3, dtype=torch.float64)
        for x, y in torch.utils.data.DataLoader(windows, batch_size=256):
            entries = [
                {"start": start, "target": x[b, :, c].numpy()}
                for b in range(x.shape[0])
                for c in range(channels)
            ]
            means = np.stack([f.mean for f in predictor.predict(ListDataset(entries, freq=freq))])
            forecast = torch.from_numpy(means).view(x.shape[0], channels, horizon).transpose(1, 2)
            sums += error_sums(forecast.float(), y)
        return point_errors(sums)

    entry = {**errors(splits.test), "budget": budget}
    if chosen:
        entry["val_mse"] = errors(splits.val)["mse"]
    return {f"{name}|{peer}|{horizon}": entry}


def _estimator(
    peer: str,
    context: int | None,
    horizon: int,
    freq: str,
    args: argparse.Namespace,
    batches: int,
    validation_sampler=None,
    **options: Any,
):
    """GluonTS' ``peer`` estimator at the table's budget; ``options`` go to its constructor."""
    trainer = {
        "default_root_dir": tempfile.mkdtemp(prefix="gluonts-"),  # lightning's checkpoints
        "max_epochs": args.epochs,
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "logger": False,
    }
    common = {
        "prediction_length": horizon,
        "batch_size": args.peer_batch,
        "num_batches_per_epoch": batches,
        "trainer_kwargs": trainer,
        "validation_sampler": validation_sampler,
        **options,
    }
    if peer == "patchtst":
        from gluonts.torch.model.patch_tst import PatchTSTEstimator

        return PatchTSTEstimator(context_length=context, patch_len=16, stride=8, **common)
    if peer == "dlinear":
        from gluonts.torch.model.d_linear import DLinearEstimator

        return DLinearEstimator(context_length=context, **common)
    if peer == "deepar":
        from gluonts.torch.model.deepar import DeepAREstimator

        return DeepAREstimator(freq=freq, context_length=context, **common)
    raise ValueError(f"unknown peer {peer!r}")


# ----------------------------------------------------------------------------- EPF, GluonTS


def epf_gluonts(market: str, models: list[str], args: argparse.Namespace):
    """GluonTS' protocol on one EPF market with the day-ahead forecasts as
    ``feat_dynamic_real``: ``TitansEstimator`` and GluonTS' DeepAR (which takes them too)
    trained on the first 70% of the series, selected on the next 10% (their last window),
    then asked for the next 24 hours at every day's midnight-aligned origin of the last 20%;
    ``make_evaluation_predictions`` and ``Evaluator`` (MASE, mean weighted quantile loss,
    sMAPE). Yields ``(key, entry)`` per model and seed."""
    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions

    from titans_sci.data.timeseries import split_borders
    from titans_sci.gluonts import DEFAULT_TRAINING, TitansEstimator

    table = load_dataset(market)
    task = epf_task(market, "known", parse_overrides(args.set))
    lookback, horizon = task.model.lookback, 24
    borders = split_borders(len(table), "ratio_70_10_20", lookback)
    target = table.columns.index("OT")
    price = table.values[:, target].astype(np.float64)
    dynamic = np.delete(table.values, target, axis=1).T.astype(np.float64)
    start = table.timestamps[0].to_period("h")

    def upto(end: int) -> dict:
        """The series up to ``end``, the day-ahead forecasts as far."""
        return {"start": start, "target": price[:end], "feat_dynamic_real": dynamic[:, :end],
                "item_id": f"{market}@{end}"}  # fmt: skip

    train = ListDataset([upto(borders.train[1])], freq="h")
    val = ListDataset([upto(borders.val[1])], freq="h")
    first = borders.test[0] + lookback
    origins = [o for o in range(first, borders.test[1] - horizon + 1) if o % 24 == first % 24]
    test = ListDataset([upto(o + horizon) for o in origins], freq="h")  # the last 24 hidden
    calendar = list(task.data.calendar)
    for model in models:
        for seed in args.m4_seeds:
            began = time.perf_counter()
            if model == "titans lmm":
                training = dataclasses.replace(DEFAULT_TRAINING, epochs=args.epochs, batch_size=32,
                                   patience=3, lr=task.training.lr)  # fmt: skip
                config = dataclasses.replace(task.model, head="student_t")
                predictor = TitansEstimator(horizon, "h", context_length=lookback, model=config,
                                            training=training, batches_per_epoch=args.m4_batches,
                                            seed=seed, num_feat_dynamic_real=len(dynamic),
                                            time_features=calendar).train(train, val)  # fmt: skip
            else:
                import lightning.pytorch as pl

                pl.seed_everything(seed, workers=True)
                peer = _estimator(model, lookback, horizon, "h", args, args.m4_batches,
                                  num_feat_dynamic_real=len(dynamic))  # fmt: skip
                predictor = peer.train(train, val)
            forecasts, targets = make_evaluation_predictions(test, predictor, num_samples=100)
            agg, _ = Evaluator(quantiles=[0.1 * i for i in range(1, 10)], num_workers=None)(
                targets, forecasts
            )
            yield f"{market}-gluonts|{model}|seed{seed}", {
                "MASE": float(agg["MASE"]),
                "mean_wQuantileLoss": float(agg["mean_wQuantileLoss"]),
                "sMAPE": float(agg["sMAPE"]),
                "seconds": time.perf_counter() - began,
                "budget": f"{args.epochs} epochs max of {args.m4_batches} batches of 32, context "
                f"{lookback}, feat_dynamic_real {len(dynamic)}, "
                + (f"time features {calendar}, patience 3 on the validation window"
                   if model == "titans lmm" else "DeepAR's defaults (its own time features and "
                   "lags), lowest validation loss") + f", {len(origins)} daily test origins",
            }  # fmt: skip


def _epf_gluonts_table(store: dict[str, dict]) -> list[str]:
    """Per market and model, mean +- std over seeds of GluonTS' metrics."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for key, entry in store.items():
        name, model, *_ = key.split("|")
        if name.endswith("-gluonts"):
            groups.setdefault((name.removesuffix("-gluonts"), model), []).append(entry)
    if not groups:
        return []
    lines = [
        "### GluonTS' protocol with `feat_dynamic_real`",
        "",
        "`TitansEstimator` and GluonTS' DeepAR, both reading the two day-ahead forecasts as "
        "`feat_dynamic_real`, trained on the first 70% of the series and validated on its next "
        "10%, forecast the 24 hours after every daily origin of the last 20%; "
        "`make_evaluation_predictions` + `Evaluator` (quantiles 0.1..0.9, 100 samples). Mean "
        "+- std over seeds (n).",
        "",
        "| market | model | MASE | mean wQL | sMAPE | seeds |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (market, model), entries in sorted(groups.items()):
        cells = []
        for metric in ("MASE", "mean_wQuantileLoss", "sMAPE"):
            values = [e[metric] for e in entries]
            spread = f" +- {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.3f}{spread}")
        lines.append(f"| {market} | {model} | " + " | ".join(cells) + f" | {len(entries)} |")
    return [*lines, ""]


# ----------------------------------------------------------------------------- M4 Hourly


def m4_hourly(models: list[str], args: argparse.Namespace) -> Iterator[tuple[str, dict]]:
    """GluonTS protocol on M4 Hourly: train on the training parts, forecast the 48 test points,
    score with GluonTS' Evaluator. Yields each model's ``(key, entry)`` as it finishes; the key
    names the budget (``<epochs>x<batches>``), so runs at several budgets stand side by side."""
    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions

    from titans_sci.data.timeseries import read_m4

    manifest = load_manifest("m4/hourly")
    series = read_m4(manifest.splits["train"].file, manifest.splits["test"].file)
    horizon, freq = 48, "h"
    train = ListDataset(
        [{"start": s["start"], "target": s["target"], "item_id": s["item_id"]} for s in series],
        freq=freq,
    )
    test = ListDataset(  # the held-out 48 points appended: make_evaluation_predictions hides them
        [
            {
                "start": s["start"],
                "target": np.concatenate([s["target"], s["test"]]),
                "item_id": s["item_id"],
            }
            for s in series
        ],
        freq=freq,
    )
    for model in models:
        for seed in [1] if model == "seasonal naive" else args.m4_seeds:
            if model.startswith(("deepar", "patchtst", "dlinear")):  # Lightning's peers
                import lightning.pytorch as pl

                pl.seed_everything(seed, workers=True)
            start = time.perf_counter()
            predictor, budget = _m4_predictor(model, seed, train, horizon, freq, args)
            forecasts, targets = make_evaluation_predictions(test, predictor, num_samples=100)
            agg, items = Evaluator(quantiles=[0.1 * i for i in range(1, 10)], num_workers=None)(
                targets, forecasts
            )
            per_series = items.set_index("item_id")["MASE"]
            trained = model != "seasonal naive"
            entry = {
                "mase": float(agg["MASE"]),
                "smape": float(agg["sMAPE"]),
                "mean_wql": float(agg["mean_wQuantileLoss"]),
                "mase_median": float(per_series.median()),
                "mase_worst": [[str(i), float(v)] for i, v in per_series.nlargest(3).items()],
                "series": len(per_series),
                "epochs": args.epochs if trained else 0,
                "batches": _m4_batches(model, series, args) if trained else 0,
                "seed": seed,
                "budget": budget,
                "seconds": time.perf_counter() - start,
            }
            print(model, {k: v for k, v in entry.items() if k != "budget"}, flush=True)
            cost = f"{entry['epochs']}x{entry['batches']}"
            yield f"m4/hourly|{model}|{cost}|seed{seed}", entry


#: Steps per gradient step of the whole-history model on M4 (4 patches of 24): chosen over 768
#: on the validation MASE of the training parts' last 48 steps (m4_history_validation.py, 20
#: epochs, seasonal scaling: 1.16 against 1.98).
M4_HISTORY_STRETCH = 96


def _m4_batches(model: str, series: list[dict], args) -> int:
    """Batches per epoch: ``--m4-batches`` of 32 windows, or for the whole-history model the
    stretches one pass over the longest series takes."""
    if model == "titans history":
        return -(-max(len(s["target"]) for s in series) // M4_HISTORY_STRETCH)
    return args.m4_batches


def _m4_predictor(model: str, seed: int, train, horizon: int, freq: str, args):
    """The trained predictor of ``model`` on M4 Hourly's training parts, and its budget line."""
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    from titans_sci.gluonts import DEFAULT_MODEL, DEFAULT_TRAINING, TitansEstimator
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig

    if model == "seasonal naive":  # the M4 reference: the last day repeated
        return SeasonalNaivePredictor(prediction_length=horizon, season_length=24), (
            "no training; season 24 (the last day repeated)"
        )
    epochs = f"{args.epochs} epochs of {args.m4_batches} batches of 32"
    if model == "titans history":
        # The whole-history forecaster (issue 38): each series streamed whole, the memory
        # writing through the forecast origin; an epoch is one pass over every series (its
        # stretches), the last epoch kept as for the other models here.
        from titans_sci.gluonts import TitansHistoryEstimator
        from titans_sci.models.history_forecaster import HistoryForecasterConfig
        from titans_sci.train import TrainConfig

        memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=16)
        config = HistoryForecasterConfig(
            lookback=args.m4_context, patch_len=24, dropout=0.1,
            backbone=LMMConfig(dim=64, depth=2, memory=memory),
        )  # fmt: skip
        training = TrainConfig(epochs=args.epochs, lr=1e-3, clip_norm=1.0)
        history = TitansHistoryEstimator(horizon, freq, model=config, training=training,
                                         stretch=M4_HISTORY_STRETCH, seed=seed)  # fmt: skip
        budget = (
            f"{args.epochs} epochs of one pass per stage, window then memory (stretches of "
            f"{M4_HISTORY_STRETCH} steps of every series; each series scaled by its seasonal "
            f"error), window {args.m4_context}, patch 24, dim 64, depth 2, seed {seed}"
        )
        return history.train(train), budget
    if model == "titans lmm":
        # The model of the table's Titans rows: the Student-t head on the backbone that was
        # the forecaster's default when they were measured (dim 64, depth 2, memory 4 x 16,
        # chunk 8), not today's larger default.
        memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=8)
        backbone = LMMConfig(dim=64, depth=2, memory=memory)
        estimator = TitansEstimator(
            prediction_length=horizon,
            freq=freq,
            context_length=args.m4_context,
            model=dataclasses.replace(DEFAULT_MODEL, backbone=backbone),
            training=dataclasses.replace(DEFAULT_TRAINING, epochs=args.epochs, batch_size=32),
            batches_per_epoch=args.m4_batches,
            seed=seed,
        )
        return estimator.train(train), f"{epochs}, context {args.m4_context}, seed {seed}"
    import gluonts
    import lightning

    # GluonTS' own recipe: every default of the estimator (context length, scaling, lags,
    # batch 32, lr 1e-3) but the table's epochs and batches per epoch; "<peer>:<scaling>"
    # changes its scaling option alone (PatchTST and DLinear take "mean", "std" or None).
    peer, _, scaling = model.partition(":")
    options: dict[str, Any] = {"batch_size": 32}
    if scaling:
        options["scaling"] = None if scaling == "none" else scaling
    estimator = _estimator(peer, None, horizon, freq, args, args.m4_batches, **options)
    changed = f" but scaling {scaling!r}" if scaling else ""
    budget = (  # a seed reproduces exactly only under the same versions (and CPU: "machine")
        f"{epochs}, GluonTS' defaults{changed} (context {estimator.context_length}), seed {seed}"
        f"; gluonts {gluonts.__version__}, lightning {lightning.__version__}"
    )
    return estimator.train(train), budget


# ----------------------------------------------------------------------------- table


def render(store: dict[str, dict]) -> str:
    lines = [
        "# Forecasting: Titans next to the Titans paper and GluonTS' models",
        "",
        "## Long horizon (lookback 96; ILI 36)",
        "",
        "Test MSE / MAE on the scaled data (scaler fitted on the training rows), every stride-1 "
        "test window, the last partial batch kept. Paper: the Titans paper's Table 3 (neural "
        "memory inside the Simba framework), averaged over the four horizons. Every model keeps "
        "its checkpoint with the lowest loss on the same validation windows (Titans: MSE; "
        "GluonTS' models: their own Student-t negative log-likelihood). Bold: the lowest "
        "average test MSE of a data set. Budgets below.",
        "",
    ]
    models = [*TITANS_ROWS, "patchtst", "dlinear", "last value"]
    long = _long_cells(store)
    for name in LONG:
        shown = [m for m in models if (name, m) in long]
        if not shown:
            continue
        lines += [f"### {name}", "", "| horizon | paper Titans | " + " | ".join(shown) + " |"]
        lines.append("| --- | ---: |" + " ---: |" * len(shown))
        for h in sorted({h for m in shown for h in long[name, m]}):
            cells = []
            for m in shown:
                r = long[name, m].get(h)
                cells.append("-" if r is None else f"{r['mse']:.3f} / {r['mae']:.3f}")
            lines.append(f"| {h} | | " + " | ".join(cells) + " |")
        horizons = sorted(long_task(name).protocol.horizons)
        complete = {
            m: list(long[name, m].values()) for m in shown if sorted(long[name, m]) == horizons
        }
        best = min(complete, key=lambda m: np.mean([e["mse"] for e in complete[m]]), default=None)
        cells = []
        for m in shown:
            cell = _average(complete[m]) if m in complete else "-"
            cells.append(f"**{cell}**" if m == best else cell)
        paper = f"{PAPER[name][0]:.3f} / {PAPER[name][1]:.3f}" if name in PAPER else "-"
        lines += [f"| average | {paper} | " + " | ".join(cells) + " |", ""]
        if name in PUBLISHED:
            published = ", ".join(f"{m} {a:.3f} / {b:.3f}" for m, (a, b) in PUBLISHED[name].items())
            lines += [f"Published averages in the same table of the paper: {published}.", ""]
        else:
            lines += ["Not in the Titans paper's table.", ""]
        lines += _validation_table(name, long)
    lines += _m4_table(store)
    lines += _epf_table(store)
    lines += _epf_gluonts_table(store)
    lines += [
        "## Whole history (issue 38)",
        "",
        "The whole-history forecaster (its memory streams every step before the origin and keeps "
        "writing through validation and test), its ablations (memory frozen at the end of "
        "training, a memory that never writes, the window alone), the lookback-96 Titans row, "
        "and DLinear and PatchTST at the context chosen on validation, on the scaler, horizons "
        "and test origins of the tables above: `forecasting_history.md`, written by "
        "`bench_history.py` from its own store of cells.",
        "",
    ]
    lines += ["## Budgets", ""]
    for key, entry in sorted(store.items(), key=lambda kv: _sort_key(kv[0])):
        wall = f"{entry['seconds']:.0f} s wall; " if "seconds" in entry else ""
        lines.append(f"- {key}: {entry['budget']}; {wall}{entry['machine']}; {entry['date']}")
    return "\n".join(lines) + "\n"


def _average(entries: list[dict]) -> str:
    """``MSE / MAE`` averaged over the horizons' ``entries``; with the same two or more seeds
    at every horizon, ``mean +- std`` over the seeds of each seed's horizon average."""
    seeds = [set(e.get("seeds", {})) for e in entries]
    if len(seeds[0]) < 2 or any(s != seeds[0] for s in seeds):
        mse, mae = (np.mean([e[m] for e in entries]) for m in ("mse", "mae"))
        return f"{mse:.3f} / {mae:.3f}"
    cells = []
    for metric in ("mse", "mae"):
        per_seed = [np.mean([e["seeds"][s][metric] for e in entries]) for s in sorted(seeds[0])]
        cells.append(f"{np.mean(per_seed):.3f} +- {np.std(per_seed, ddof=1):.3f}")
    return " / ".join(cells) + f" ({len(seeds[0])} seeds)"


def _epf_table(store: dict[str, dict]) -> list[str]:
    """The EPF rows: per market, Titans reading the covariates each way (mean +- std over
    seeds), GluonTS' peers and the last value in the same protocol, TimeXer's published
    numbers beside them."""
    cells = {tuple(k.split("|")[:2]): e for k, e in store.items() if k.split("|")[0] in EPF}
    if not cells:
        return []
    columns = [*(f"titans {s}" for s in EPF_SETTINGS), "dlinear", "patchtst", "last value"]
    names = {
        **{f"titans {s}": f"Titans ({label})" for s, label in EPF_SETTINGS.items()},
        "dlinear": "DLinear (GluonTS)",
        "patchtst": "PatchTST (GluonTS)",
    }
    lines = [
        "## Electricity prices with covariates (EPF; issue 40)",
        "",
        "TimeXer's protocol: 168 hours in, 24 out, chronological 70/10/20 split, scaler fitted "
        "on the training rows, test MSE / MAE on the scaled price over every stride-1 test "
        "window (`tasks/forecast_epf.toml`). Titans reads the market's two day-ahead forecasts "
        "not at all, over the input window only (TimeXer's setting), or also over the 24 hours "
        "it forecasts (they are published before the price); with either it reads hour of day "
        "and day of week. The whole-history rows are `tasks/history_epf.toml`: the memory "
        "streams every hour of the price before the origin (writing at test time), and each "
        "forecast reads the day-ahead forecasts over its 168-hour window and its horizon, or "
        "(past) over its window only, TimeXer's setting; each with its ablation beside it (the "
        "same model without a memory: the 168-hour window, the covariates and the MLP alone, "
        "so TimeXer's inputs exactly). The past rows' stretch (steps per gradient step) is "
        "chosen per market and row on the validation MSE among 768, 192 and 96 "
        "(`epf_validation.md`; their budget lines name it); the known rows keep the task "
        "file's 768. "
        "GluonTS' DLinear and PatchTST read the price alone. Mean +- std over "
        "seeds (n). Published: TimeXer (NeurIPS 2024) Table 2, whose models read the "
        "covariates over the input window.",
        "",
        "| market | TimeXer (published) | " + " | ".join(names.get(c, c) for c in columns)
        + " | published PatchTST / DLinear |",
        "| --- | ---: |" + " ---: |" * len(columns) + " --- |",
    ]  # fmt: skip
    for market in EPF:
        row = []
        for column in columns:
            entry = cells.get((market, column))
            row.append("-" if entry is None else _seeded(entry))
        published = TIMEXER[market]
        theirs = " ; ".join(f"{a:.3f} / {b:.3f}" for a, b in (published["PatchTST"],
                                                                published["DLinear"]))  # fmt: skip
        timexer = "{:.3f} / {:.3f}".format(*published["TimeXer"])
        lines.append(f"| {market} | {timexer} | " + " | ".join(row) + f" | {theirs} |")
    return [*lines, ""]


def _seeded(entry: dict) -> str:
    """``MSE / MAE`` of one entry, ``mean +- std (n)`` over its seeds where it has two or
    more."""
    seeds = entry.get("seeds", {})
    if len(seeds) < 2:
        return f"{entry['mse']:.3f} / {entry['mae']:.3f}"
    cells = [
        f"{np.mean([r[m] for r in seeds.values()]):.3f} +- "
        f"{np.std([r[m] for r in seeds.values()], ddof=1):.3f}"
        for m in ("mse", "mae")
    ]
    return " / ".join(cells) + f" ({len(seeds)})"


def _m4_table(store: dict[str, dict]) -> list[str]:
    """The M4 Hourly rows: per model and budget, mean +- std over its seeds (keys
    ``m4/hourly|<model>|<epochs>x<batches>|seed<s>``), seasonal naive first, then by budget
    and MASE; the seasonal-naive check below it."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for key, entry in store.items():
        if key.startswith("m4/hourly|"):
            _, model, cost, *_ = key.split("|")
            groups.setdefault((model, cost), []).append(entry)
    if not groups:
        return []
    lines = [
        "## GluonTS protocol: M4 Hourly (414 series, horizon 48)",
        "",
        "`make_evaluation_predictions` + `Evaluator` (quantiles 0.1..0.9); 100 samples. Mean "
        "+- std over seeds (n). GluonTS' models run with every default of their estimators "
        "(context length, scaling, lags) but the budget; seasonal naive (season 24) is the "
        "reference every trained model should beat. `<peer>:std` is the same estimator with "
        'its `scaling` option set to `"std"` (loc and scale per window, as Titans\' RevIN) '
        # The 126 and 1,779: mean |y| / mean |y[t] - y[t - 24]| of each series' training part
        # in datasets/m4/hourly (read_m4), a property of the data, not of any model.
        "instead of the default mean scaling (scale only, no centring): 126 of the 414 M4 "
        "Hourly series sit at a level (mean |y| of the training part) over 100 times their "
        "in-sample seasonal error (H187: 1,779 times), so on them an error of 1% of the level "
        "is already a MASE above 1, and the mean MASE over the 414 series follows them. Median "
        "MASE: the median over the series, which a few series cannot move; below the table, "
        "each model's three worst series on MASE (first seed) and its mean MASE over the "
        "other series.",
        "",
        "| model | epochs x batches of 32 | n | MASE | median MASE | sMAPE | mean wQuantileLoss |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(rows: list[dict], metric: str) -> str:
        if any(metric not in r for r in rows):  # measured before the metric was stored
            return "-"
        values = [r[metric] for r in rows]
        spread = f" +- {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
        return f"{np.mean(values):.3f}{spread}"

    def order(item: tuple[tuple[str, str], list[dict]]) -> tuple:
        (model, _), rows = item
        return (model != "seasonal naive", -rows[0]["epochs"], np.mean([r["mase"] for r in rows]))

    naive = groups.get(("seasonal naive", "0x0"))
    behind, worst = [], []
    for (model, _), rows in sorted(groups.items(), key=order):
        metrics = " | ".join(cell(rows, m) for m in ("mase", "mase_median", "smape", "mean_wql"))
        budget = f"{rows[0]['epochs']} x {rows[0]['batches']}" if rows[0]["epochs"] else "-"
        lines.append(f"| {model} | {budget} | {len(rows)} | {metrics} |")
        first = min(rows, key=lambda r: r["seed"])
        if "mase_worst" in first:
            named = ", ".join(f"{item} {value:.1f}" for item, value in first["mase_worst"])
            rest = first["mase"] * first["series"] - sum(v for _, v in first["mase_worst"])
            others = first["series"] - len(first["mase_worst"])
            worst.append(f"- {model} ({budget}): {named}; the other {others}: {rest / others:.3f}")
        if naive and model != "seasonal naive":
            worse = [m for m in ("mase", "mean_wql") if np.mean([r[m] for r in rows]) > naive[0][m]]
            if worse:
                behind.append(f"{model} ({budget}: {', '.join(worse)})")
    lines.append("")
    if worst:
        lines += ["Worst series on MASE (first seed) and the mean MASE of the others:", ""]
        lines += [*worst, ""]
    if naive:
        verdict = "none" if not behind else "; ".join(behind)
        lines += [f"Behind seasonal naive on MASE or mean wQL: {verdict}.", ""]
    return lines


def _validation_table(name: str, long: dict[tuple[str, str], dict[int, dict]]) -> list[str]:
    """Titans' validation MSE per horizon (the number each run selected its epoch on, and the
    one to choose between Titans configurations by), where at least two rows have it."""
    shown = [
        m for m in TITANS_ROWS if any("val_mse" in r for r in long.get((name, m), {}).values())
    ]
    if len(shown) < 2:
        return []
    lines = [
        f"Titans validation MSE on {name} (the task file's validation windows):",
        "",
        "| horizon | " + " | ".join(shown) + " |",
        "| --- |" + " ---: |" * len(shown),
    ]
    for h in sorted({h for m in shown for h in long[name, m]}):
        cells = [long[name, m].get(h, {}).get("val_mse") for m in shown]
        lines.append(
            f"| {h} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |"
        )
    return [*lines, ""]


def _long_cells(store: dict[str, dict]) -> dict[tuple[str, str], dict[int, dict]]:
    """``{(data set, model): {horizon: entry}}`` from the long-horizon keys
    ``<data set>|<model>|<horizon>``."""
    cells: dict[tuple[str, str], dict[int, dict]] = {}
    for key, entry in store.items():
        name, model, *rest = key.split("|")
        if name in LONG:
            cells.setdefault((name, model), {})[int(rest[0])] = entry
    return cells


def _sort_key(key: str) -> tuple:
    parts = key.split("|")
    return (*parts[:-1], int(parts[-1])) if parts[0] in LONG else tuple(parts)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (also how ``bench_history.py`` trains the peers the same way)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--long", nargs="*", default=None, help="data sets (default: all four)")
    parser.add_argument("--variants", nargs="*", default=["lmm", "mag"])
    parser.add_argument(
        "--lookback-skip",
        action="store_true",
        help="Titans with the head's linear lookback->horizon path (rows 'titans <variant> + "
        "skip')",
    )
    parser.add_argument(
        "--mode",
        choices=list(MODE_LABELS),
        default="channel_independent",
        help="the forecaster's layout (rows 'titans <variant> mixing' for channel_mixing)",
    )
    parser.add_argument("--peers", nargs="*", default=["patchtst", "dlinear"])
    parser.add_argument(
        "--horizons", nargs="+", type=int, default=None, help="default: the task file's"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="GluonTS models' epochs, and every model's on M4 (Titans' long-horizon budget is "
        "its task file's)",
    )
    parser.add_argument("--peer-windows", type=int, default=8000)
    parser.add_argument("--peer-batch", type=int, default=224)
    parser.add_argument(
        "--add-seeds",
        action="store_true",
        help="Titans runs of other seeds (--set protocol.seeds=[2]) join the stored entry of "
        "the same budget (one process per seed may run at once)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse/continue Titans runs from their checkpoints (default: start them afresh)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the Titans task files, e.g. --set training.epochs=1 (repeatable;"
        " for smoke runs: the table's numbers use the task files' budgets)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=RESULTS / "runs",
        help="where the Titans run folders go (default benchmarks/results/runs)",
    )
    parser.add_argument(
        "--epf", nargs="*", default=None, help="EPF markets (default: all four), issue 40"
    )
    parser.add_argument(
        "--settings", nargs="*", default=list(EPF_SETTINGS), help="the EPF Titans rows to run"
    )
    parser.add_argument(
        "--epf-gluonts",
        nargs="*",
        default=None,
        help="EPF markets for the GluonTS protocol with feat_dynamic_real (default: epf/NP)",
    )
    parser.add_argument("--epf-gluonts-models", nargs="+", default=["titans lmm", "deepar"])
    parser.add_argument("--m4", action="store_true")
    parser.add_argument(
        "--m4-models",
        nargs="+",
        default=["seasonal naive", "titans lmm", "deepar", "patchtst", "dlinear"],
    )
    parser.add_argument("--m4-batches", type=int, default=50)
    parser.add_argument("--m4-context", type=int, default=96, help="Titans' context on M4")
    parser.add_argument("--m4-seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--store", type=Path, default=RESULTS / "forecasting.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "forecasting.md")
    return parser


def _stamp(entries: dict[str, dict], stamp: dict[str, str], seconds: float) -> None:
    """Stamp a job's entries with the machine and date, and each with the job's wall time but
    the last-value baseline's (it comes out of the Titans run and takes no time of its own);
    print each."""
    for key, entry in entries.items():
        entry.update(stamp)
        if "|last value|" not in key:
            entry["seconds"] = seconds
        print(f"{key}: MSE {entry['mse']:.4f} MAE {entry['mae']:.4f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stamp = {"machine": describe(args.threads), "date": today()}
    names = list(LONG) if args.long == [] else (args.long or [])
    for name in names:
        jobs = [(titans_long, v) for v in args.variants] + [(gluonts_long, p) for p in args.peers]
        for horizon in args.horizons or long_task(name).protocol.horizons:
            for job, label in jobs:
                start = time.perf_counter()
                entries = job(name, label, horizon, args)
                _stamp(entries, stamp, time.perf_counter() - start)
                save(entries, args.store, args.out, render, merge_seeds if args.add_seeds else None)
    markets = list(EPF) if args.epf == [] else (args.epf or [])
    for market in markets:
        jobs = [(titans_epf, s) for s in args.settings] + [(gluonts_long, p) for p in args.peers]
        for job, label in jobs:
            start = time.perf_counter()
            entries = job(market, label, 24, args)
            _stamp(entries, stamp, time.perf_counter() - start)
            save(entries, args.store, args.out, render)
    gluonts_markets = ["epf/NP"] if args.epf_gluonts == [] else (args.epf_gluonts or [])
    for market in gluonts_markets:
        for key, entry in epf_gluonts(market, args.epf_gluonts_models, args):
            entry.update(stamp)
            print(f"{key}: MASE {entry['MASE']:.4f} wQL {entry['mean_wQuantileLoss']:.4f}")
            save({key: entry}, args.store, args.out, render)
    if args.m4:
        for key, entry in m4_hourly(args.m4_models, args):
            entry.update(stamp)
            save({key: entry}, args.store, args.out, render)
    if not names and not markets and not gluonts_markets and not args.m4:
        parser.error("nothing to run: give --long [DATASET ...], --epf [MARKET ...] and/or --m4")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
