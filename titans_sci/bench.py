"""``titans-sci bench``: how fast the memory runs on this machine, with nothing to install.

Times a Titans memory layer (8 heads of 64, MLP memory of depth 2, chunk 64) forward and
backward at several sequence lengths and prints tokens per second; equal rates across lengths
mean the cost grows linearly in length. The peer comparisons (titans-pytorch, GPU kernels) are
in ``benchmarks/``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from titans_sci.layers import NeuralMemoryLayer
from titans_sci.memory import MemoryConfig


def memory_throughput(
    lengths: Sequence[int] = (256, 1024, 4096),
    batch: int = 2,
    repeats: int = 3,
    quiet: bool = False,
) -> dict[int, float]:
    """Tokens per second (forward + backward) of one memory layer at each length; printed as
    a table unless ``quiet``. The best of ``repeats`` timed calls, after one warm-up."""
    torch.manual_seed(0)
    config = MemoryConfig.preset("titans", num_heads=8, head_dim=64, chunk_size=64)
    layer = NeuralMemoryLayer(512, config)
    rates = {}
    for length in lengths:
        x = torch.randn(batch, length, 512, requires_grad=True)
        best = float("inf")
        for i in range(repeats + 1):
            start = time.perf_counter()
            y, _ = layer(x)
            y.square().mean().backward()
            if i:
                best = min(best, time.perf_counter() - start)
        rates[length] = batch * length / best
        if not quiet:
            print(f"T={length:>6}  {rates[length]:>10,.0f} tokens/s  (batch {batch})", flush=True)
    return rates
