"""Choosing the whole-history GluonTS model's settings on M4 Hourly without its test set: train
on each series' training part less its last 48 steps, forecast those 48 steps, and score them
with GluonTS' Evaluator (MASE, sMAPE). Used to choose the scaling (seasonal error or mean
absolute value) and the stretch for ``bench_forecasting.py --m4 --m4-models "titans history"``.

    .venv/bin/python benchmarks/m4_history_validation.py EPOCHS STRETCH WINDOW MEMORY [SCALING]

e.g. ``200 96 96 0 mean`` (MEMORY 0: the window-only model). Prints one line.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_forecasting import load_manifest
from gluonts.dataset.common import ListDataset
from gluonts.evaluation import Evaluator, make_evaluation_predictions

from titans_sci.data.timeseries import read_m4
from titans_sci.gluonts import TitansHistoryEstimator
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.history_forecaster import HistoryForecasterConfig
from titans_sci.train import TrainConfig

HORIZON = 48


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("epochs", type=int)
    parser.add_argument("stretch", type=int)
    parser.add_argument("window", type=int)
    parser.add_argument("memory", type=int, choices=[0, 1])
    parser.add_argument("scaling", nargs="?", default="seasonal")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = load_manifest("m4/hourly")
    series = read_m4(manifest.splits["train"].file, manifest.splits["test"].file)

    def data(cut: int) -> ListDataset:
        return ListDataset(
            [{"start": s["start"], "target": s["target"][: len(s["target"]) - cut],
              "item_id": s["item_id"]} for s in series],
            freq="h",
        )  # fmt: skip

    memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=16)
    config = HistoryForecasterConfig(
        lookback=args.window, patch_len=24, dropout=0.1, memory=bool(args.memory),
        backbone=LMMConfig(dim=64, depth=2, memory=memory),
    )  # fmt: skip
    began = time.perf_counter()
    estimator = TitansHistoryEstimator(
        HORIZON, "h", model=config, stretch=args.stretch, seed=1, scaling=args.scaling,
        training=TrainConfig(epochs=args.epochs, lr=args.lr, clip_norm=1.0),
    )  # fmt: skip
    predictor = estimator.train(data(HORIZON))
    forecasts, targets = make_evaluation_predictions(data(0), predictor, num_samples=1)
    agg, items = Evaluator(quantiles=[0.5], num_workers=None)(targets, forecasts)
    print(
        f"{vars(args)}: validation MASE {agg['MASE']:.3f} (median {items['MASE'].median():.3f}), "
        f"sMAPE {agg['sMAPE']:.3f}, {time.perf_counter() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
