"""What whole-history forecasting costs next to the lookback-96 forecaster (issue 38), on ETTh1.

Each model runs in its own process (so its peak RSS is its own), one thread, the same horizon:

- ``lookback 96``: ``tasks/forecast_etth1.toml``'s TitansForecaster; one pass over its training
  windows (every training origin once), batches of 32, then the test windows scored.
- ``whole history``: ``tasks/history_etth1.toml``'s HistoryForecaster; one epoch (one pass over
  the training stream: every training origin once), then every test origin scored in one
  streaming pass with the memory writing.

Reported: training origins per second (each origin a forecast of ``H`` steps of every channel
trained on), peak RSS, and scoring time per test origin. Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_history_cost.py --out benchmarks/results/history_cost_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from machine import describe

from titans_sci.tasks import load_task
from titans_sci.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def measure(model: str, horizon: int) -> dict:
    """One model's costs, in this process."""
    torch.set_num_threads(1)
    torch.manual_seed(1)
    if model == "lookback 96":
        from titans_sci.tasks.forecasting import Forecasting

        task = load_task(ROOT / "tasks" / "forecast_etth1.toml",
                         {"protocol.horizons": [horizon], "training.windows_per_epoch": 0,
                          "training.epochs": 1})  # fmt: skip
        kind = Forecasting(task)
    else:
        from titans_sci.tasks.history_forecasting import HistoryForecasting

        task = load_task(ROOT / "tasks" / "history_etth1.toml",
                         {"protocol.horizons": [horizon], "training.epochs": 1})  # fmt: skip
        kind = HistoryForecasting(task)  # type: ignore[assignment]
    unit = next(kind.units())
    net = kind.models(unit)["titans"]()
    trainer = Trainer(net, task.training, 1)
    began = time.perf_counter()
    trainer.fit(kind.batches(unit, net), lambda b: kind.loss(net, b), lambda: 0.0)
    train_seconds = time.perf_counter() - began
    if model == "lookback 96":
        origins = len(unit.data.train)
        tests = len(unit.data.test)
    else:
        stop, p, h = unit.data.train_stop, task.model.patch_len, horizon
        origins = len(range(p, stop - h + 1))  # every origin with features and a whole horizon
        tests = len(unit.data.test)
    began = time.perf_counter()
    kind.evaluate(net, unit)
    score_seconds = time.perf_counter() - began
    return {
        "model": model,
        "horizon": horizon,
        "train_origins": origins,
        "train_seconds": train_seconds,
        "origins_per_second": origins / train_seconds,
        "test_origins": tests,
        "score_seconds": score_seconds,
        "ms_per_test_origin": 1000 * score_seconds / tests,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure one model
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.horizon)))
        return
    rows = []
    for model in ("lookback 96", "whole history"):
        out = subprocess.run(
            [sys.executable, __file__, "--one", model, "--horizon", str(args.horizon)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base, mine = rows
    lines = [
        "# Whole-history forecasting: cost next to the lookback-96 forecaster (ETTh1)",
        "",
        f"`benchmarks/bench_history_cost.py --horizon {args.horizon}`; {describe(1)}; "
        f"{datetime.date.today().isoformat()}. One process per model, one thread, nothing else "
        "running. The task files' models (`forecast_etth1.toml`, `history_etth1.toml`); one "
        "epoch each, every training origin once; then the test origins scored.",
        "",
        "| model | training origins | origins/s | peak RSS (MiB) | test origins | ms per test "
        "origin |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['train_origins']} | {row['origins_per_second']:.0f} | "
            f"{row['peak_rss_mib']:.0f} | {row['test_origins']} | "
            f"{row['ms_per_test_origin']:.3f} |"
        )
    lines += [
        "",
        f"Whole history / lookback 96: training origins/s "
        f"{mine['origins_per_second'] / base['origins_per_second']:.2f}x, peak RSS "
        f"{mine['peak_rss_mib'] / base['peak_rss_mib']:.2f}x, time per test origin "
        f"{mine['ms_per_test_origin'] / base['ms_per_test_origin']:.2f}x.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
