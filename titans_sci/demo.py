"""Demo: the neural memory learning associative recall at test time, with no outer training.

A stream presents 16 key/value pairs (random l2-normalised keys; random values with unit
variance per component, dim 64, one head) again and again, in a fresh random order each round.
Every presentation of pair ``i`` is two tokens:

1. a *query* token: ``q = k_i``, step size ``theta = 0`` (nothing is written);
2. a *write* token: ``k = k_i``, ``v = v_i``, ``theta > 0``.

The memory's read ``y_t`` uses the weights after token ``t``'s write; because the query token
writes nothing, its read sees exactly what the earlier tokens wrote. So the read at a query
token measures recall of pair ``i`` from its *earlier* presentations, never from the write that
follows it. A recall is correct when the read is nearest in cosine to ``v_i`` among the 16
values; chance is 1/16. The memory's initial weights are freshly initialised (untrained): all
learning here is the memory's own test-time update.

Values have norm ``sqrt(D)`` rather than 1 because the MLP memory's output is
``x + LN(...)`` with a LayerNorm without affine parameters, whose output always has norm
``sqrt(D)``: with unit-norm targets its error could never fall below about ``sqrt(D) - 2``, which
keeps Yaad's Huber bias on its ``l1`` branch for good.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NUM_PAIRS = 16
HEAD_DIM = 64
CHUNK_TOKENS = 256

# Gates for the demo (constant over the stream). In a model they are learned per token; here the
# step size on write tokens is set per preset, because the retention changes what a step means:
# Moneta's lq normaliser rescales steps (large ones diverge), Memora steps in logit space.
STEP_SIZES = {"titans": 0.5, "yaad": 0.5, "moneta": 0.02, "memora": 1.0}
ETA = 0.5  # momentum (titans only; the MIRAS presets use plain gradient descent)
ALPHA = 0.001  # forgetting
DELTA = 1.0  # Huber threshold of Yaad (only read by presets whose bias needs it)

CONFIGS: tuple[tuple[str, str], ...] = (
    ("titans", "linear"),
    ("titans", "mlp"),
    ("moneta", "mlp"),
    ("yaad", "mlp"),
    ("memora", "mlp"),
)


@dataclass
class RecallStream:
    """One batch of interleaved query/write token streams and the answers to its queries."""

    q: torch.Tensor  # [B, T, 1, D]
    k: torch.Tensor  # [B, T, 1, D]
    v: torch.Tensor  # [B, T, 1, D]
    write: torch.Tensor  # [B, T, 1], 1.0 on write tokens and 0.0 on query tokens
    values: torch.Tensor  # [B, P, D], the candidate answers
    pair: torch.Tensor  # [B, T // 2], which pair each query token asks for
    writes_before: torch.Tensor  # [B, T // 2], how often that pair was written before the query


def make_stream(tokens: int, batch: int, generator: torch.Generator) -> RecallStream:
    """Build ``batch`` independent streams of ``tokens`` tokens (query/write alternating)."""
    if tokens % 2:
        raise ValueError(f"tokens must be even (query/write pairs), got {tokens}")
    presentations = tokens // 2
    rounds = -(-presentations // NUM_PAIRS)
    keys = F.normalize(torch.randn(batch, NUM_PAIRS, HEAD_DIM, generator=generator), dim=-1)
    values = torch.randn(batch, NUM_PAIRS, HEAD_DIM, generator=generator)
    values = math.sqrt(HEAD_DIM) * F.normalize(values - values.mean(-1, keepdim=True), dim=-1)
    order = torch.stack(
        [
            torch.cat([torch.randperm(NUM_PAIRS, generator=generator) for _ in range(rounds)])[
                :presentations
            ]
            for _ in range(batch)
        ]
    )  # [B, P_total]

    b = torch.arange(batch)[:, None]
    k_pres = keys[b, order]  # [B, presentations, D]
    v_pres = values[b, order]
    zeros = torch.zeros_like(k_pres)

    # Interleave: position 2p is the query token, 2p + 1 the write token.
    q = torch.stack([k_pres, zeros], dim=2).reshape(batch, tokens, HEAD_DIM)
    k = torch.stack([k_pres, k_pres], dim=2).reshape(batch, tokens, HEAD_DIM)
    v = torch.stack([zeros, v_pres], dim=2).reshape(batch, tokens, HEAD_DIM)
    write = torch.zeros(batch, tokens)
    write[:, 1::2] = 1.0

    # Presentations of the same pair before each one: a running count per pair.
    onehot = F.one_hot(order, NUM_PAIRS)  # [B, P, NUM_PAIRS]
    writes_before = ((onehot.cumsum(dim=1) - onehot) * onehot).sum(-1)

    return RecallStream(
        q=q[:, :, None],
        k=k[:, :, None],
        v=v[:, :, None],
        write=write[:, :, None],
        values=values,
        pair=order,
        writes_before=writes_before,
    )


def recall_correct(y: torch.Tensor, stream: RecallStream) -> torch.Tensor:
    """Bool [B, T // 2]: whether each query token's read is nearest (cosine) to its value."""
    reads = F.normalize(y[:, 0::2, 0].float(), dim=-1)  # [B, P, D]
    sims = torch.einsum("bpd,bnd->bpn", reads, stream.values)
    return sims.argmax(dim=-1) == stream.pair


def run_config(
    preset: str,
    architecture: str,
    stream: RecallStream,
    *,
    chunk_size: int = 16,
    theta: float | None = None,
    eta: float = ETA,
    alpha: float = ALPHA,
    delta: float = DELTA,
) -> torch.Tensor:
    """Run one memory configuration over the stream; return the per-query correctness."""
    from titans_sci.memory import MemoryConfig, NeuralMemory

    cfg = MemoryConfig.preset(
        preset,
        num_heads=1,
        head_dim=HEAD_DIM,
        chunk_size=chunk_size,
        architecture=architecture,
    )
    mem = NeuralMemory(cfg).eval()
    shape = stream.write.shape
    theta_t = stream.write * (STEP_SIZES[preset] if theta is None else theta)
    eta_t = torch.full(shape, eta)
    alpha_t = torch.full(shape, alpha)
    delta_t = torch.full(shape, delta) if cfg.needs_delta else None
    with torch.no_grad():
        y, _ = mem(
            stream.q,
            stream.k,
            stream.v,
            theta=theta_t,
            eta=eta_t,
            alpha=alpha_t,
            delta=delta_t,
            state=None,
        )
    if not torch.isfinite(y).all():
        raise FloatingPointError(f"{preset}/{architecture}: non-finite memory read")
    return recall_correct(y, stream)


def associative_recall(
    tokens: int = 2048, batch: int = 4, seed: int = 0, configs=CONFIGS
) -> dict[str, torch.Tensor]:
    """Print the recall-accuracy table for each preset/architecture; return per-query results.

    The returned dict maps ``"preset/architecture"`` to a bool tensor ``[batch, tokens // 2]``.
    """
    gen = torch.Generator().manual_seed(seed)
    stream = make_stream(tokens, batch, gen)
    names = [f"{p}/{a}" for p, a in configs]

    results: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    # The tensors are tiny (one head of 64): extra intra-op threads only add synchronisation,
    # and spin-waiting threads slow to a crawl when other processes hold the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for (preset, arch), name in zip(configs, names, strict=True):
            torch.manual_seed(seed)  # the memory's (untrained) initial weights
            start = time.perf_counter()
            results[name] = run_config(preset, arch, stream)
            seconds[name] = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)

    print(
        f"Associative recall at test time: {NUM_PAIRS} key/value pairs, dim {HEAD_DIM}, 1 head, "
        f"{batch} streams x {tokens} tokens (query/write alternating), no outer training."
    )
    print(
        f"Gates: theta on write tokens {STEP_SIZES} (0 on query tokens), eta={ETA}, "
        f"alpha={ALPHA}, delta={DELTA} (yaad). Recall = the read at a pair's query token, before "
        f"that pair's next write, is nearest (cosine) to its value; chance = 1/{NUM_PAIRS} = "
        f"{1 / NUM_PAIRS:.3f}."
    )
    width = max(14, *(len(n) for n in names))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:>14}  " + "  ".join(f"{c:>{width}}" for c in cells))

    def accuracy(mask: torch.Tensor) -> list[str]:
        return [f"{results[n][mask].float().mean().item():.3f}" for n in names]

    rule = "-" * (16 + (width + 2) * len(names) - 2)
    print()
    row("tokens", names)
    print(rule)
    position = torch.arange(tokens // 2).expand(batch, -1)
    queries_per_chunk = CHUNK_TOKENS // 2
    for start in range(0, tokens // 2, queries_per_chunk):
        stop = min(start + queries_per_chunk, tokens // 2)
        row(f"{2 * start}-{2 * stop - 1}", accuracy((position >= start) & (position < stop)))
    print(rule)
    print()
    row("writes before", names)
    print(rule)
    seen = stream.writes_before
    for low, high in ((0, 0), (1, 1), (2, 2), (3, 3), (4, 7), (8, None)):
        mask = (seen >= low) if high is None else (seen >= low) & (seen <= high)
        if mask.any():
            label = f"{low}" if low == high else (f"{low}+" if high is None else f"{low}-{high}")
            row(label, accuracy(mask))
    print(rule)
    row("seconds", [f"{seconds[n]:.2f}" for n in names])
    return results
