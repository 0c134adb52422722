"""Probe (issue 38): where the whole-history model's validation gain comes from.

The memory's tokens are each patch normalised by the stream's running mean and standard
deviation, joined by that running mean and log standard deviation (the level). This probe
trains the model of ``bench_history.py`` at a row's chosen setting twice per seed, as it is and
with those two level inputs set to zero (the normalised patches still read), and prints their
validation and test MSE beside the stored window-only cells. A probe, not a table entrant: run
by hand, its output quoted in the README.

    .venv/bin/python benchmarks/probe_history_levels.py tasks/forecast_etth1.toml 96 336 0.3
"""

from __future__ import annotations

import json

import bench_history as bench
from torch import Tensor

from titans_sci.models.history_forecaster import HistoryForecaster, HistoryState
from titans_sci.tasks.config import load_task

LEVELLED = HistoryForecaster._tokens


def without_levels(self: HistoryForecaster, patches: Tensor, state: HistoryState):
    """``HistoryForecaster._tokens`` with the running mean and log std (the last two inputs)
    zeroed."""
    tokens, sums = LEVELLED(self, patches, state)
    tokens = tokens.clone()
    tokens[..., -2:] = 0
    return tokens, sums


def main() -> None:
    args = bench.probe_parser(__doc__.splitlines()[0]).parse_args()
    task = load_task(args.task)
    setting = bench.Setting(True, args.window, args.dropout)
    stored = json.loads(args.store.read_text())
    rows = {"with the level": [bench.cell(task, args.horizon, setting, s, 1) for s in args.seeds]}
    HistoryForecaster._tokens = without_levels  # type: ignore[method-assign]
    rows["without the level"] = [bench.cell(task, args.horizon, setting, s, 1) for s in args.seeds]
    prefix = f"{task.data.dataset}|{args.horizon}|"
    window = [f"{prefix}window only|L{args.window}|d0.1|{s}" for s in args.seeds]
    rows["window only (stored)"] = [stored[key] for key in window if key in stored]
    print(f"{prefix}L{args.window} d{args.dropout:g}, seeds {args.seeds}, mean +- std")
    bench.print_probe(rows)


if __name__ == "__main__":
    main()
