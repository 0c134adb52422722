"""Whole-history forecasting (issue 38): the HistoryForecaster on the long-horizon protocol.

For each data set's task file (``tasks/forecast_*.toml``: data set, split rule, lookback and
horizons), the same scaler (fitted on the training rows) and the same test origins as the
lookback table (every stride-1 test window's origin), train a HistoryForecaster per horizon,
seed and dropout (streamed over the training range, the memory carried; the epoch kept on
validation MSE), then score the test origins in one streaming pass:

- ``writes``: the memory keeps writing through validation and test (test-time learning);
- ``frozen``: the same model with its memory frozen at the end of the training range;
- ``never writes``: at the memory model's chosen setting, the same model trained and scored
  with its memory never writing (the ablation of the memory itself: what is left is the
  stream's running statistics read through the rest of the backbone).

The window and dropout (and the peers' context) are chosen per data set on the mean validation
MSE over seeds, never on test: over the whole grid at the task's first horizon, and carried
over to the longer ones, where only the chosen setting is trained (:func:`grid`: a sixth of
the memory model's grid, a third of a peer's). Each cell (data set, horizon, setting, seed) is
stored as it finishes in ``forecasting_history.json`` and the table
``forecasting_history.md`` is rebuilt; a cell already stored is skipped (the run resumes).

    .venv/bin/python benchmarks/bench_history.py --tasks tasks/forecast_etth1.toml --threads 1
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from machine import describe
from store import save

from titans_sci.data.timeseries import Scaler, split_borders
from titans_sci.history import fit_history, score_history
from titans_sci.layers import memory_writes
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.history_forecaster import HistoryForecaster, HistoryForecasterConfig
from titans_sci.tasks.config import ForecastTask, load_task
from titans_sci.tasks.forecasting import task_series
from titans_sci.train import TrainConfig, TrainResult
from titans_sci.version import code_version

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = [f"tasks/forecast_{n}.toml" for n in ("etth1", "etth2", "ettm1", "weather", "exchange",
                                             "ili")]  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """What is chosen on validation (``window``, ``dropout``) and the ablations: ``memory``
    (False: the window alone) and ``writes`` (False: the memory never writes, in training or
    after, so what the stream adds is its running statistics read through the backbone's
    projections, convolution and MLPs, not anything the memory learns)."""

    memory: bool
    window: int
    dropout: float
    writes: bool = True

    @property
    def kind(self) -> str:
        if not self.memory:
            return "window only"
        return "memory" if self.writes else NEVER_WRITES

    @property
    def key(self) -> str:
        return f"{self.kind}|L{self.window}|d{self.dropout:g}"


#: The entrants beside the whole-history model, in the table's order.
NEVER_WRITES = "never writes"
LOOKBACK_96 = "titans lookback 96"
PEERS = ("dlinear", "patchtst")
#: What ``--entrants`` picks from: the memory model, its window-only and never-writes
#: ablations, the lookback-96 Titans forecaster and the GluonTS peers.
ENTRANTS = ("memory", "window", "never", "lookback96", "peers")

#: The budget, fixed before any run: the backbone, the stretch and the training.
DIM, DEPTH, HEADS, HEAD_DIM, CHUNK = 64, 2, 4, 16, 16
STRETCH_PATCHES = 32
TRAINING = TrainConfig(epochs=40, lr=1e-3, weight_decay=0.01, clip_norm=1.0, patience=5)
#: The window's linear map after the first training stage, per (data set, horizon, window,
#: seed), for the cells after the first of this process that train it (see :func:`cell`).
FIRST_STAGES: dict[tuple[str | None, int, int, int], dict[str, torch.Tensor]] = {}


def windows_for(lookback: int) -> list[int]:
    """The windows ``L`` to choose from on validation, for the history model and the peers'
    contexts alike: 96, 336 and 720 steps, or for a short protocol lookback (weekly ILI, 36) that
    lookback, a year and two years (52 and 104 weeks: the season a 36-week window cannot see)."""
    return [96, 336, 720] if lookback >= 96 else sorted({lookback, 52, 104})


def patch_len(lookback: int) -> int:
    """Steps per stream token: 16, or lookback / 6 for short lookbacks (ILI: 6)."""
    return 16 if lookback >= 96 else max(1, lookback // 6)


@dataclass(frozen=True)
class Split:
    """One data set's protocol at one horizon: the whole scaled series ``[C, T]`` (the scaler
    fitted on the training rows), where training stops, and the validation and test origins
    (every stride-1 window's, as in the lookback table)."""

    series: torch.Tensor
    stop: int
    val: torch.Tensor
    test: torch.Tensor


def split_for(task: ForecastTask, horizon: int) -> Split:
    """The protocol of ``task`` (its data set, split rule and lookback, which places the
    origins) at ``horizon``."""
    table, rule, _ = task_series(task)
    lookback = task.model.lookback
    borders = split_borders(len(table.values), rule, lookback)
    start, stop = borders.train
    scaler = Scaler().fit(table.values[start:stop])
    series = torch.from_numpy(scaler.transform(table.values).astype(np.float32)).T.contiguous()
    val = torch.arange(borders.val[0] + lookback, borders.val[1] - horizon + 1)
    test = torch.arange(borders.test[0] + lookback, borders.test[1] - horizon + 1)
    return Split(series, stop, val, test)


@dataclass
class Trained:
    """A model trained by :func:`trained`, its split, its training result and seconds."""

    model: HistoryForecaster
    split: Split
    result: TrainResult
    seconds: float


def trained(task: ForecastTask, horizon: int, setting: Setting, seed: int, threads: int) -> Trained:
    """Train one model of the table (its memory writing or not, as ``setting`` says): streamed
    over the training range, the epoch of each stage kept on validation MSE."""
    split = split_for(task, horizon)
    p = patch_len(task.model.lookback)
    memory = MemoryConfig.preset("titans", num_heads=HEADS, head_dim=HEAD_DIM, chunk_size=CHUNK)
    config = HistoryForecasterConfig(
        horizon=horizon, channels=split.series.shape[0], lookback=setting.window, patch_len=p,
        backbone=LMMConfig(dim=DIM, depth=DEPTH, memory=memory), dropout=setting.dropout,
        memory=setting.memory,
    )  # fmt: skip
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = HistoryForecaster(config)
    # The first stage trains the window's linear map alone, from an initialisation that
    # depends on the seed alone: every setting of one window and seed trains it alike, so it
    # is trained once and shared (FIRST_STAGES).
    shared = (task.data.dataset, horizon, setting.window, seed)
    if shared in FIRST_STAGES:
        model.linear.load_state_dict(FIRST_STAGES[shared])
    began = time.perf_counter()
    with memory_writes(model, setting.writes):
        first = int(shared in FIRST_STAGES)  # 1: start at the second stage
        result = fit_history(model, split.series, split.stop, split.val, TRAINING, seed,
                             stretch=STRETCH_PATCHES * p, first=first)  # fmt: skip
    if shared not in FIRST_STAGES:
        FIRST_STAGES[shared] = copy.deepcopy(model.linear.state_dict())
        # the map as the first stage left it: the second does not train it
    return Trained(model, split, result, time.perf_counter() - began)


def cell(task: ForecastTask, horizon: int, setting: Setting, seed: int, threads: int) -> dict:
    """Train and score one model: validation MSE, test MSE/MAE writing and frozen (the frozen
    scores only with a memory)."""
    run = trained(task, horizon, setting, seed, threads)
    model, split, result = run.model, run.split, run.result
    with memory_writes(model, setting.writes):
        writes = score_history(model, split.series, split.test)
    frozen = None
    if setting.memory and setting.writes:
        frozen = score_history(model, split.series, split.test, freeze_at=split.stop)
    p = model.config.patch_len
    return {
        "val_mse": -result.dev_scores[result.best_epoch],
        "test_mse": writes.mse, "test_mae": writes.mae,
        "frozen_mse": frozen and frozen.mse, "frozen_mae": frozen and frozen.mae,
        "origins": writes.origins, "epochs": len(result.dev_scores),
        "best_epoch": result.best_epoch + 1, "seconds": run.seconds,
        "budget": f"window {setting.window}, "
                  f"{'' if setting.writes else 'the memory never writing, '}"
                  f"stages window then memory (the first shared by the settings of one window "
                  f"and seed), dim {DIM}, depth {DEPTH}, patch {p}, stretch "
                  f"{STRETCH_PATCHES * p} steps, "
                  f"<= {TRAINING.epochs} epochs (patience {TRAINING.patience}), AdamW lr "
                  f"{TRAINING.lr}, wd {TRAINING.weight_decay}, clip {TRAINING.clip_norm}, "
                  f"{threads} thread(s)",
        "machine": describe(threads), "date": datetime.date.today().isoformat(),
        "code": code_version(),
    }  # fmt: skip


def lookback96_cell(path: str, horizon: int, seed: int, threads: int) -> dict:
    """The task file's lookback-96 Titans forecaster (``forecast_*.toml``) on one horizon and
    seed, run by the task system into a temporary folder: its validation MSE (the dev score it
    was selected on) and test MSE / MAE on the same origins."""
    import tempfile

    from titans_sci.tasks import run

    torch.set_num_threads(threads)
    overrides = {"protocol.horizons": [horizon], "protocol.seeds": [seed],
                 "baselines.last_value": False}  # fmt: skip
    task = load_task(path, overrides)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = run(task, folder)
    (row,) = result["runs"]
    return {
        "val_mse": -row["dev_score"], "test_mse": row["mse"], "test_mae": row["mae"],
        "frozen_mse": None, "frozen_mae": None, "origins": None, "epochs": row["epochs_run"],
        "best_epoch": row["best_epoch"], "seconds": time.perf_counter() - began,
        "budget": f"{path} as it stands (lookback {task.model.lookback}), seed {seed}",
        "machine": describe(threads), "date": datetime.date.today().isoformat(),
        "code": code_version(),
    }  # fmt: skip


def peer_cell(task: ForecastTask, peer: str, horizon: int, window: int, args) -> dict:
    """GluonTS' ``peer`` at context ``window`` on the same origins, as ``forecasting.md``'s peers
    are trained (``bench_forecasting.gluonts_long``; seed 1), with its validation MSE."""
    from bench_forecasting import build_parser, gluonts_long

    options = build_parser().parse_args(["--epochs", str(args.peer_epochs),
                                         "--threads", str(args.threads)])  # fmt: skip
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    name = task.data.dataset
    assert name is not None, "peers run on the bundled data sets"
    (entry,) = gluonts_long(name, peer, horizon, options, lookback=window).values()
    return {
        "val_mse": entry["val_mse"], "test_mse": entry["mse"], "test_mae": entry["mae"],
        "frozen_mse": None, "frozen_mae": None, "origins": None, "epochs": args.peer_epochs,
        "best_epoch": None, "seconds": time.perf_counter() - began,
        "budget": f"{peer}: {entry['budget']}", "machine": describe(args.threads),
        "date": datetime.date.today().isoformat(), "code": code_version(),
    }  # fmt: skip


def _chosen(store_path: Path, prefix: str, kind: str) -> tuple[int, float] | None:
    """``(window, dropout)`` of ``kind``'s stored cells under ``prefix`` (``"<data
    set>|<horizon>|"``) with the lowest mean validation MSE over seeds, or None if none."""
    store = json.loads(store_path.read_text()) if store_path.exists() else {}
    scores: dict[tuple[int, float], list[float]] = {}
    for key, entry in store.items():
        if key.startswith(f"{prefix}{kind}|"):
            window, dropout = key.split("|")[3:5]
            scores.setdefault((int(window[1:]), float(dropout[1:])), []).append(entry["val_mse"])
    if not scores:
        return None
    return min(scores, key=lambda s: statistics.mean(scores[s]))


def _chosen_memory_setting(store_path: Path, prefix: str) -> Setting | None:
    """The memory model's setting chosen on validation among the stored cells under
    ``prefix``, or None if there are none."""
    chosen = _chosen(store_path, prefix, "memory")
    return None if chosen is None else Setting(True, *chosen)


def grid(
    store_path: Path, name: str, horizon: int, first: int, kind: str, full: list[tuple[int, float]]
) -> list[tuple[int, float]]:
    """The ``(window, dropout)`` settings to train for ``kind`` at ``horizon``: the ``full``
    grid at the task's first horizon ``first``; past it, the setting chosen there on validation
    alone (the choice carried over, to save compute), or the full grid if ``first`` has no
    stored cells of ``kind``."""
    chosen = None if horizon == first else _chosen(store_path, f"{name}|{first}|", kind)
    return full if chosen is None else [chosen]


def probe_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the probes that retrain one row's setting (``probe_history_*.py``):
    the task file, horizon, window and dropout, the seeds and the store they compare with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("task")
    parser.add_argument("horizon", type=int)
    parser.add_argument("window", type=int)
    parser.add_argument("dropout", type=float)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--store", type=Path, default=RESULTS / "forecasting_history.json")
    return parser


def print_probe(rows: dict[str, list[dict]]) -> None:
    """A probe's rows of cells: validation and test MSE, mean +- std over the cells."""
    for name, cells in rows.items():
        for field in ("val_mse", "test_mse"):
            values = [c[field] for c in cells]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"  {name} (n={len(cells)}) {field}: {statistics.mean(values):.4f} +- "
                  f"{spread:.4f}", flush=True)  # fmt: skip


def render(store: dict[str, dict]) -> str:
    """The whole-history table: per data set and horizon, the setting chosen on validation
    (mean over seeds) of the model with its memory and of the window-only ablation, with their
    test MSE / MAE (mean +- std over seeds)."""
    lines = [
        "# Whole-history forecasting (issue 38)",
        "",
        "Written by `benchmarks/bench_history.py`. HistoryForecaster: a Titans memory streams "
        "every step before the origin (patches, running normalisation, the state carried over "
        "train, validation and test in order) beside a linear map and an MLP of the last `L` "
        "steps; trained in two stages, the window's linear map first, then the memory's branch "
        "(each with its epochs, patience and selection on validation). The first stage (the map "
        "alone, nothing streamed) takes its stretches in a random order and is trained once per "
        "window and seed, shared by every setting and ablation of that window and seed; the "
        "cells trained before (that stage in time order, one per cell): "
        "`forecasting_history_in_order_2026-12-07.md`. The first design, trained "
        "jointly: `forecasting_history_joint_2026-12-06.md`. Same scaler, horizons and test "
        "origins as the lookback table in `forecasting.md` (every stride-1 test window's origin)."
        " `writes`: the memory keeps writing through validation and test; `frozen`: the same "
        "model, its memory frozen at the end of the training range; `never writes`: the same "
        "model at the memory's chosen setting, trained and scored with its memory never "
        "writing (what is left is the stream's running statistics read through the backbone's "
        "projections, convolution and MLPs: the ablation of the memory itself); `window only`: "
        "the same model"
        " without a memory, trained in the same stages (the linear map, then the MLP alone), its "
        "own setting chosen on validation; "
        "`titans lookback 96`: the task"
        " file's lookback-96 Titans forecaster (`forecast_*.toml`, today's best row) trained in "
        "this run; DLinear and PatchTST: GluonTS' models trained as in `forecasting.md`, their "
        "context chosen from 96/336/720 (ILI: 36/52/104 weeks) on validation MSE (seed 1). The "
        "window `L` (from the same set) and the dropout are chosen per row on mean validation "
        "MSE over seeds, never on test; the never-writes ablation is shown at the memory "
        "model's chosen setting. Past a data set's first horizon (96; ILI 24) each entrant is "
        "trained at the setting chosen at the first horizon alone (the choice carried over, to "
        "save compute), unless a row's cells say otherwise. Mean +- std over seeds; budgets "
        "below.",
        "",
        "| data set | horizon | chosen (memory) | seeds | val MSE | test MSE / MAE writes | "
        "test MSE / MAE frozen | never writes | window only (chosen) | titans lookback 96 "
        "(ILI 36) | dlinear (chosen) | patchtst (chosen) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[str, int], dict[str, dict[str, list[dict]]]] = {}
    for key, entry in store.items():
        name, horizon, kind, window, dropout, _ = key.split("|")
        setting = f"{window} {dropout}"
        group = groups.setdefault((name, int(horizon)), {}).setdefault(kind, {})
        group.setdefault(setting, []).append(entry)

    def chosen(by_setting: dict[str, list[dict]] | None) -> tuple[str, list[dict]]:
        if not by_setting:
            return "-", []
        return min(by_setting.items(), key=lambda kv: statistics.mean(e["val_mse"] for e in kv[1]))

    def stat(entries: list[dict], field: str) -> str:
        values = [e[field] for e in entries if e.get(field) is not None]
        if not values:
            return "-"
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} +- {spread:.3f}"

    def other(kinds: dict[str, dict[str, list[dict]]], kind: str, at: str) -> str:
        """``kind``'s test scores at its setting chosen on validation (the never-writes
        ablation: at the memory model's setting ``at``, or none)."""
        if kind == NEVER_WRITES:
            setting, entries = at, kinds.get(kind, {}).get(at, [])
        else:
            setting, entries = chosen(kinds.get(kind))
        if not entries:
            return "-"
        where = "" if kind in (LOOKBACK_96, NEVER_WRITES) else f" ({setting.split()[0]})"
        if kind in PEERS and len(kinds[kind]) < 3:  # a peer's window not yet run at every length
            tried = sorted((s.split()[0] for s in kinds[kind]), key=lambda w: int(w[1:]))
            where = f" ({setting.split()[0]}, of {'/'.join(tried)} so far)"
        return f"{stat(entries, 'test_mse')} / {stat(entries, 'test_mae')}{where}"

    for (name, horizon), kinds in sorted(groups.items()):
        setting, entries = chosen(kinds.get("memory"))
        lines.append(
            f"| {name} | {horizon} | {setting} | {len(entries)} | {stat(entries, 'val_mse')} | "
            f"{stat(entries, 'test_mse')} / {stat(entries, 'test_mae')} | "
            f"{stat(entries, 'frozen_mse')} / {stat(entries, 'frozen_mae')} | "
            + " | ".join(
                other(kinds, k, setting) for k in (NEVER_WRITES, "window only", LOOKBACK_96, *PEERS)
            )
            + " |"
        )
    lines += ["", "## Cells", ""]
    for key, entry in sorted(store.items()):
        lines.append(
            f"- {key}: val {entry['val_mse']:.4f}, best epoch {entry['best_epoch']} of "
            f"{entry['epochs']}, {entry['seconds']:.0f} s; {entry['budget']}; {entry['machine']}; "
            f"{entry['date']}; code {entry['code']}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--horizons", nargs="+", type=int, help="default: the task file's")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--dropouts", nargs="+", type=float, default=[0.1, 0.3])
    parser.add_argument(
        "--windows", nargs="+", type=int, help="default: 96, 336, 720 (ILI: 36, 52, 104)"
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        default=["dlinear", "patchtst"],
        help="GluonTS' peers, each at every window (needs lightning)",
    )
    parser.add_argument("--peer-epochs", type=int, default=30)
    parser.add_argument("--lookback96-seeds", type=int, nargs="*", default=[1])
    parser.add_argument(
        "--entrants",
        nargs="+",
        choices=ENTRANTS,
        default=list(ENTRANTS),
        help="which entrants to run (default: all; e.g. the peers alone, which do not depend on "
        "the history model's code)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    store_path = args.out / "forecasting_history.json"
    run = set(args.entrants)

    def fill(key: str, measure: Callable[[], dict]) -> None:
        """Measure the cell ``key`` unless the store holds it, then store it and redo the
        table (so an interrupted run resumes where it stopped)."""
        if store_path.exists() and key in json.loads(store_path.read_text()):
            return
        entry = measure()
        save({key: entry}, store_path, args.out / "forecasting_history.md", render)
        print(f"{key}: val {entry['val_mse']:.4f}, test {entry['test_mse']:.4f} "
              f"({entry['seconds']:.0f} s)", flush=True)  # fmt: skip

    for path in args.tasks:
        task = load_task(path)
        assert isinstance(task, ForecastTask), f"{path}: not a forecasting task"
        name = task.data.dataset or path
        lookback = task.model.lookback
        windows = args.windows or windows_for(lookback)
        first = task.protocol.horizons[0]
        for horizon in args.horizons or task.protocol.horizons:
            settings = partial(grid, store_path, name, horizon, first)
            for memory, kind in ((True, "memory"), (False, "window")):
                if kind not in run:
                    continue
                # Without a memory the dropout has nothing to act on: one value.
                dropouts = args.dropouts if memory else args.dropouts[:1]
                full = [(w, d) for w in windows for d in dropouts]
                for window, dropout in settings("memory" if memory else "window only", full):
                    setting = Setting(memory, window, dropout)
                    for seed in args.seeds:
                        measure = partial(cell, task, horizon, setting, seed, args.threads)
                        fill(f"{name}|{horizon}|{setting.key}|{seed}", measure)
            chosen = _chosen_memory_setting(store_path, f"{name}|{horizon}|")
            for seed in args.seeds if chosen and "never" in run else []:
                setting = Setting(True, chosen.window, chosen.dropout, writes=False)
                measure = partial(cell, task, horizon, setting, seed, args.threads)
                fill(f"{name}|{horizon}|{setting.key}|{seed}", measure)
            for seed in args.lookback96_seeds if "lookback96" in run else []:
                measure = partial(lookback96_cell, path, horizon, seed, args.threads)
                fill(f"{name}|{horizon}|{LOOKBACK_96}|L{lookback}|d0|{seed}", measure)
            for peer in args.peers if "peers" in run else []:
                for window, _ in settings(peer, [(w, 0.0) for w in windows]):
                    measure = partial(peer_cell, task, peer, horizon, window, args)
                    fill(f"{name}|{horizon}|{peer}|L{window}|d0|1", measure)


if __name__ == "__main__":
    main()
