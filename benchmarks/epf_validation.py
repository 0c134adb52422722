"""Choosing the whole-history EPF models' stretch (steps of the stream per gradient step) on the
validation range alone: each market, setting (``bench_forecasting.EPF_SETTINGS``, the
``tasks/history_epf.toml`` ones) and stretch trained at every seed of the task file, and the
validation MSE the trainer selects its epochs on (the task's ``dev_score``, its negative),
averaged over the seeds. The test range is read by the runs (the task runs end with it) but
never printed or stored here.

    .venv/bin/python benchmarks/epf_validation.py --markets epf/NP epf/FR \\
        --settings window-past --stretches 768 192 96 --runs runs/epf_validation
    .venv/bin/python benchmarks/epf_validation.py --settings window-past --stretches 192 \\
        --set model.backbone.dim=128          # a further point of the grid: any task key

Writes ``results/epf_validation.json`` and ``.md`` (one row per market, setting, stretch and
further settings).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from bench_forecasting import EPF, HISTORY_SETTINGS, epf_task
from machine import describe
from store import save

from titans_sci.tasks import run
from titans_sci.tasks.config import parse_overrides

RESULTS = Path(__file__).resolve().parent / "results"


def render(store: dict[str, dict]) -> str:
    lines = [
        "# EPF whole-history models: the stretch chosen on validation (issue 40)",
        "",
        "`benchmarks/epf_validation.py`: `tasks/history_epf.toml` on each market and setting "
        "at each stretch (steps of the stream per gradient step), every seed; the validation "
        "MSE each run selects its epochs on (scaled price, mean +- std over the seeds). No "
        "test figure is read here.",
        "",
        "| market | setting | stretch | further settings | validation MSE | seeds |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for key in sorted(store, key=lambda k: (*k.split("|")[:2], -int(k.split("|")[2]), k)):
        e = store[key]
        further = ", ".join(f"{k} = {v}" for k, v in e.get("overrides", {}).items()) or "-"
        lines.append(f"| {e['market']} | {e['setting']} | {e['stretch']} | {further} | "
                     f"{np.mean(e['validation']):.5f} +- {np.std(e['validation']):.5f} | "
                     f"{len(e['validation'])} |")  # fmt: skip
    lines += ["", "## Budgets", ""]
    lines += [f"- {k}: {store[k]['budget']}" for k in sorted(store)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", nargs="+", default=list(EPF), choices=EPF)
    parser.add_argument("--settings", nargs="+", default=["window-past"],
                        choices=list(HISTORY_SETTINGS))  # fmt: skip
    parser.add_argument("--stretches", nargs="+", type=int, default=[768, 192, 96])
    parser.add_argument("--runs", type=Path, default=Path("runs/epf_validation"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further task key for every run (part of each row's key)",
    )
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    further = "".join(f"_{k.rsplit('.', 1)[-1]}{v}" for k, v in overrides.items())
    torch.set_num_threads(1)
    for market in args.markets:
        for setting in args.settings:
            for stretch in args.stretches:
                started = time.time()
                name = f"epf_validation_{market.replace('/', '_')}_{setting}_{stretch}{further}"
                settings = {**overrides, "training.stretch": stretch, "name": name}
                task = epf_task(market, setting, settings)
                result = run(task, args.runs, resume=True, progress=False)
                validation = [-r["dev_score"] for r in result["runs"] if r["model"] == "titans"]
                entry = {
                    "market": market, "setting": setting, "stretch": stretch,
                    "overrides": overrides, "validation": validation,
                    "budget": f"{name}: seeds {list(task.protocol.seeds)}, "
                    f"{time.time() - started:.0f} s wall (reused where done); "
                    f"{describe(1)}",
                }  # fmt: skip
                key = "|".join(
                    [market, setting, str(stretch), *(f"{k}={v}" for k, v in overrides.items())]
                )
                save({key: entry}, args.out / "epf_validation.json",
                     args.out / "epf_validation.md", render)  # fmt: skip
                score = f"validation MSE {np.mean(validation):.5f}"
                print(market, setting, stretch, overrides, score, flush=True)


if __name__ == "__main__":
    main()
