"""Probe (issue 38): the whole-history model with the task file's Titans forecaster as its
window branch, in place of the linear map.

``bench_history.py``'s model forecasts from a linear map of the recent window plus a branch
that reads the memory. On ILI the task file's lookback-36 Titans forecaster beats that linear
window by far on validation, so the table cannot tell whether the memory would add to a strong
window model. This probe swaps the linear map for that forecaster (``tasks/forecast_*.toml``'s
model, channel-independent, at the row's window) and trains, per seed, the same two stages as
the table (the window branch, then the memory's branch on what it leaves, each selected on
validation), with the memory and without it (the window-only ablation: the same forecaster and
MLP, no memory). Stretches of ``--stretch`` patches: the table's 32 give the window's forecaster
4 optimiser steps an epoch on ILI's 676 training weeks. A probe, not a table entrant: run by
hand, its output quoted in the README.

    .venv/bin/python benchmarks/probe_history_titans_window.py tasks/forecast_ili.toml 24 36 0.3
"""

from __future__ import annotations

import dataclasses
import json

import bench_history as bench
from torch import Tensor, nn

from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster
from titans_sci.models.history_forecaster import HistoryForecaster, HistoryForecasterConfig
from titans_sci.tasks.config import ForecastTask, load_task


class TitansWindow(nn.Module):
    """A Titans forecaster as a window map: ``[N, L]`` (normalised windows) -> ``[N, H]``."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.model = TitansForecaster(config)

    def forward(self, window: Tensor) -> Tensor:
        return self.model(window[..., None])[..., 0]


def main() -> None:
    parser = bench.probe_parser(__doc__.splitlines()[0])
    parser.add_argument("--stretch", type=int, default=8, help="patches per stretch")
    args = parser.parse_args()
    task = load_task(args.task)
    assert isinstance(task, ForecastTask), f"{args.task}: not a forecasting task"

    def build(config: HistoryForecasterConfig) -> HistoryForecaster:
        model = HistoryForecaster(config)
        window = dataclasses.replace(
            task.model, lookback=config.lookback, horizon=config.horizon, channels=1
        )
        model.linear = TitansWindow(window)  # type: ignore[assignment]
        return model

    bench.HistoryForecaster = build  # type: ignore[assignment,misc]
    bench.STRETCH_PATCHES = args.stretch
    rows = {}
    for memory in (True, False):
        setting = bench.Setting(memory, args.window, args.dropout)
        rows[f"titans window, {setting.kind}"] = [
            bench.cell(task, args.horizon, setting, seed, 1) for seed in args.seeds
        ]
    stored = json.loads(args.store.read_text())
    prefix = f"{task.data.dataset}|{args.horizon}|"
    reference = [v for k, v in stored.items() if k.startswith(f"{prefix}{bench.LOOKBACK_96}|")]
    rows["the task file's forecaster alone (stored, lookback-96 column)"] = reference
    print(f"{prefix}L{args.window} d{args.dropout:g}, stretch {args.stretch} patches, seeds "
          f"{args.seeds}, mean +- std")  # fmt: skip
    bench.print_probe(rows)


if __name__ == "__main__":
    main()
