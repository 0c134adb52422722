"""MAC's two blocks on multi-query associative recall: the paper's against the first form.

``form="paper"`` writes the memory with the attention output ``y`` and adds ``o = y * M(y)`` to
the residual stream; ``form="residual"`` (this library's first MAC) writes it with ``x + y`` and
adds ``y + gate(y, M(x + y))``. Both train on the MQAR task of
``tests/models/test_backbone_learning.py`` (4 key-value pairs, then 8 queries, segments of 8
tokens, so the recall must pass through the memory), for 200 and 800 steps, seeds 0-2, one
thread; the held-out accuracy goes to ``benchmarks/results/mac_forms.md``. Run from the
repository root::

    .venv/bin/python benchmarks/bench_mac_forms.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import describe

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests/models")]

import test_backbone_learning as mqar  # noqa: E402

from titans_sci.models import MACConfig  # noqa: E402


def accuracy(form: str, seed: int, steps: int) -> float:
    torch.manual_seed(seed)
    config = MACConfig(**mqar._COMMON, **mqar._ATTENTION, segment_len=8, form=form)
    model = mqar.RecallModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=mqar.LR)
    gen = torch.Generator().manual_seed(1 + seed)
    for _ in range(steps):
        tokens, targets = mqar.mqar_batch(mqar.BATCH, gen)
        logits = model(tokens).reshape(-1, mqar.VOCAB)
        loss = F.cross_entropy(logits, targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokens, targets = mqar.mqar_batch(mqar.EVAL_BATCH, torch.Generator().manual_seed(12345))
    with torch.no_grad():
        return (model(tokens).argmax(-1) == targets).float().mean().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/mac_forms.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        "# MAC: the paper's block against the first (residual) form, on MQAR",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {describe(1)}",
        "- task and model: `tests/models/test_backbone_learning.py` (MQAR, 4 pairs + 8 queries, "
        "dim 32, depth 2, titans memory 2 heads x 16, chunk 8, segments of 8, AdamW lr 0.01, "
        f"batch 32); held-out accuracy on {mqar.EVAL_BATCH} sequences, chance 0.125",
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
