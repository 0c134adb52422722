"""How far a float stream in pieces drifts from one call, and why: the memory's recurrence.

Streaming in pieces and one call compute the same function; they differ only in rounding where a
piece ends mid-chunk. A recurrence that contracts perturbations keeps that rounding at the level
of the arithmetic; one that expands them (a chaotic one) turns it into a different output after
enough tokens. This script streams the bundled human enhancer sequences end to end (real DNA)
through an untrained DNA classifier's backbone (embedding and 9-base convolution, then a Titans
LMM of dim 64, depth 2) in pieces of 500 bases and in one call, and reports the largest relative
difference of the outputs in each window of 500 tokens, in float32 and float64, for several
memories. Run from the repository root::

    .venv/bin/python benchmarks/bench_stream_drift_cpu.py

It writes ``benchmarks/results/stream_drift_cpu.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch
from long_context_tasks import background_bases
from machine import describe

from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

REPO = Path(__file__).resolve().parents[1]

LENGTH, PIECE = 3000, 500
CASES = {
    "MLP memory, momentum, sigmoid gates (the default)": {},
    "MLP memory, momentum, forget rate 0.1": {"alpha": 0.1},
    "MLP memory, plain GD, max_step 1": {"algorithm": "gd"},
    "MLP memory, plain GD, max_step 0.01": {"algorithm": "gd", "max_step": 0.01},
    "MLP memory, momentum, LayerNorm eps 1": {"ln_eps": 1.0},
    "MLP memory, momentum, LayerNorm eps 100 (almost no normalisation)": {"ln_eps": 100.0},
    "MLP memory, momentum, forget rate 0.1, LayerNorm eps 100": {"alpha": 0.1, "ln_eps": 100.0},
    "linear memory, momentum": {"architecture": "linear"},
    "MLP memory, momentum, no writes (theta 0)": {"theta": 0.0},
}


def drift(case: dict, dtype: torch.dtype, ids: torch.Tensor) -> list[float]:
    torch.manual_seed(0)
    memory = MemoryConfig(
        algorithm=case.get("algorithm", "momentum"),
        architecture=case.get("architecture", "mlp"),
        ln_eps=case.get("ln_eps", 1e-5),
    )
    backbone = LMMConfig(dim=64, depth=2, memory=memory, max_step=case.get("max_step", 1.0))
    model = DNAClassifier(ClassifierConfig(backbone)).eval().to(dtype)
    with torch.no_grad():
        for block in model.backbone.blocks:
            bias = block.memory.to_gates.bias.view(4, -1)
            if "alpha" in case:
                bias[2] = torch.logit(torch.tensor(case["alpha"]))
            if "theta" in case:
                bias[0] = -40.0
        x = model._features(ids, None)
        whole, _ = model.backbone(x)
        state, pieces = None, []
        for start in range(0, LENGTH, PIECE):
            h, state = model.backbone(x[:, start : start + PIECE], state=state)
            pieces.append(h)
        relative = (torch.cat(pieces, 1) - whole).norm(dim=-1) / whole.norm(dim=-1)
    return [float(relative[0, s : s + PIECE].max()) for s in range(0, LENGTH, PIECE)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/stream_drift_cpu.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bases = background_bases()[:LENGTH]
    tokenizer = DNAClassifier(ClassifierConfig(LMMConfig(dim=64))).tokenizer
    ids = torch.tensor([tokenizer.encode(bases)])
    windows = [f"{s:,}-{s + PIECE:,}" for s in range(0, LENGTH, PIECE)]
    lines = [
        "# Float streaming against one call: drift along the sequence",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {describe(1)}",
        f"- input: the first {LENGTH:,} bases of the bundled human_enhancers_cohn sequences end to "
        f"end, through an untrained DNA classifier's stem and a Titans LMM (dim 64, depth 2, "
        f"4 heads x 32, chunk 16); streamed in pieces of {PIECE} (mid-chunk ends) against one call",
        "- cell: the largest relative difference of the backbone's outputs in that window of "
        "tokens",
        "",
        "| memory | dtype | " + " | ".join(windows) + " |",
        "| --- | --- |" + " ---: |" * len(windows),
    ]
    for name, case in CASES.items():
        for dtype in (torch.float32, torch.float64):
            cells = " | ".join(f"{v:.0e}" for v in drift(case, dtype, ids))
            lines.append(f"| {name} | {str(dtype).removeprefix('torch.')} | {cells} |")
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
