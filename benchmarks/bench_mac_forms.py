"""MAC's two blocks on multi-query associative recall: the paper's against the first form.

``form="paper"`` writes the memory with the attention output ``y`` and adds ``o = y * M(y)`` to
the residual stream; ``form="residual"`` (this library's first MAC) writes it with ``x + y`` and
adds ``y + gate(y, M(x + y))``. Both train on the MQAR task of :mod:`titans_sci.models.recall`,
with the model of ``tests/models/test_backbone_learning.py`` (4 key-value pairs, then 8 queries,
segments of 8 tokens, so the recall must pass through the memory), for 200 and 800 steps, seeds
0-2, one thread; the held-out accuracy goes to ``benchmarks/results/mac_forms.md``. Run from the
repository root::

    .venv/bin/python benchmarks/bench_mac_forms.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
from pathlib import Path

import torch
from machine import describe

from titans_sci.memory import MemoryConfig
from titans_sci.models import MACConfig
from titans_sci.models.recall import RecallModel, recall_accuracy

REPO = Path(__file__).resolve().parents[1]
#: The MQAR model of the backbone tests (tests/models/test_backbone_learning.py).
COMMON = dict(
    dim=32, depth=2, memory=MemoryConfig.preset("titans", num_heads=2, head_dim=16, chunk_size=8)
)
ATTENTION = dict(attention_heads=2, num_persistent=2)


def accuracy(form: str, seed: int, steps: int) -> float:
    torch.manual_seed(seed)
    model = RecallModel(MACConfig(**COMMON, **ATTENTION, segment_len=8, form=form))
    return recall_accuracy(model, steps, data_seed=1 + seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/mac_forms.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        "# MAC: the paper's block against the first (residual) form, on MQAR",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {describe(1)}",
        "- task and model: `titans_sci.models.recall` (MQAR, 4 pairs + 8 queries, "
        "dim 32, depth 2, titans memory 2 heads x 16, chunk 8, segments of 8, AdamW lr 0.01, "
        "batch 32); held-out accuracy on 256 sequences, chance 0.125",
        "",
        "| form | steps | seed 0 | seed 1 | seed 2 | mean ± std |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for form in ("paper", "residual"):
        for steps in (200, 800):
            values = [accuracy(form, seed, steps) for seed in range(3)]
            cells = " | ".join(f"{v:.3f}" for v in values)
            spread = f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
            lines.append(f"| {form} | {steps} | {cells} | {spread} |")
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
