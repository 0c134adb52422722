"""The memory state carried between calls, and the schedule of chunks over a sequence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .rule import Gates


@dataclass(frozen=True)
class PendingTokens:
    """Tokens after the last chunk boundary, in the internal layout: ``q, k, v: [B, H, n, D]``
    and gates ``[B, H, n]`` with ``n < chunk_size``."""

    q: Tensor
    k: Tensor
    v: Tensor
    gates: Gates

    def __len__(self) -> int:
        return self.q.shape[2]

    def detach(self) -> PendingTokens:
        gates = Gates(*(None if x is None else x.detach() for x in vars(self.gates).values()))
        return PendingTokens(self.q.detach(), self.k.detach(), self.v.detach(), gates)


@dataclass
class MemoryState:
    """Per-sequence, per-head memory between calls.

    Attributes:
        weights: free parameters ``X_l: [B, H, fan_in, fan_out]`` of each memory matrix (the
            memory weights themselves for the ``decay`` retention; the accumulator or logits for
            the others, see :class:`~titans_sci.memory.config.MemoryConfig`).
        momentum: ``S_l`` of the same shapes for the ``momentum`` algorithm, else ``None``.
        pending: the tokens after the last chunk boundary (fewer than ``chunk_size``), or
            ``None``. ``weights`` and ``momentum`` are the state at that boundary.

    :class:`~titans_sci.memory.NeuralMemory` returns the state at the last chunk boundary plus
    the pending tokens, and replays them at the start of the next call, so a sequence processed
    in pieces of any lengths computes exactly what one call computes, in memory bounded by one
    chunk. The bare implementations (:func:`~titans_sci.memory.chunked`,
    :func:`~titans_sci.memory.recurrent`) return the state after the last token and take no
    pending tokens.
    """

    weights: tuple[Tensor, ...]
    momentum: tuple[Tensor, ...] | None = None
    pending: PendingTokens | None = None

    def detach(self) -> MemoryState:
        """The same values, cut from the autograd graph (truncated backpropagation)."""
        momentum = None if self.momentum is None else tuple(m.detach() for m in self.momentum)
        pending = None if self.pending is None else self.pending.detach()
        return MemoryState(tuple(w.detach() for w in self.weights), momentum, pending)

    @property
    def batch_size(self) -> int:
        return self.weights[0].shape[0]


@dataclass(frozen=True)
class Segment:
    """Tokens ``[start, end)`` whose gradients share the memory at ``start``.

    ``complete``: the segment is a whole chunk (or Memora's lag token), so its last token reads
    the exactly mapped state; a sequence's trailing partial chunk is not complete.
    """

    start: int
    end: int
    complete: bool


def chunk_segments(length: int, chunk_size: int, lag_token: bool) -> list[Segment]:
    """Chunks of ``chunk_size`` tokens over ``length``; with ``lag_token`` each chunk's first token
    is a segment of its own (Memora)."""
    segments: list[Segment] = []
    for start in range(0, length, chunk_size):
        end = min(start + chunk_size, length)
        complete = end - start == chunk_size
        if lag_token:  # the lag token's one-token segment is complete as soon as it exists
            segments.append(Segment(start, start + 1, True))
            start += 1
        if start < end:
            segments.append(Segment(start, end, complete))
    return segments


def decay_matrix(a: Tensor) -> Tensor:
    """``P[..., t, i] = prod_{i < j <= t} a[..., j]`` for ``i <= t``, zero above the diagonal.

    ``a: [..., n] -> [..., n, n]``; an exact cumulative product (no logarithms), so factors equal
    to zero are handled.
    """
    n = a.shape[-1]
    strictly_lower = torch.ones(n, n, dtype=torch.bool, device=a.device).tril(-1)
    factors = torch.where(strictly_lower, a.unsqueeze(-1), torch.ones_like(a).unsqueeze(-1))
    return torch.cumprod(factors, dim=-2).tril()


@dataclass(frozen=True)
class ChunkGates:
    """The gates of a chunk of ``n`` tokens, unrolled (see :mod:`titans_sci.memory.chunk`).

    ``decay = P`` and ``coeff = G``: ``[..., n, n]``; ``beta``: ``[..., n]``. With momentum also
    ``carry = Q: [..., n, n]``, ``mom = m: [..., n]`` and ``f: [..., n]``; else ``None``.
    """

    decay: Tensor
    beta: Tensor
    coeff: Tensor
    carry: Tensor | None = None
    mom: Tensor | None = None
    f: Tensor | None = None


def chunk_gates(theta: Tensor, alpha: Tensor, eta: Tensor | None) -> ChunkGates:
    """``P, beta, G`` (and ``Q, m, f`` when ``eta`` is given) from gates ``[..., n]``."""
    keep = 1 - alpha
    decay = decay_matrix(keep)
    beta = torch.cumprod(keep, dim=-1)
    theta_cols = theta.unsqueeze(-2)
    if eta is None:
        return ChunkGates(decay, beta, decay * theta_cols)
    carry = decay_matrix(eta)
    mom = torch.cumprod(eta, dim=-1)
    f = (decay @ mom.unsqueeze(-1)).squeeze(-1)
    return ChunkGates(decay, beta, (decay @ carry) * theta_cols, carry, mom, f)


def padded_chunk_gates(gates: Gates, chunk: int, length: int) -> tuple[Tensor, ...]:
    """``G, f, beta`` per chunk and the end-of-chunk rows, for gates ``[B, H, length]`` padded to
    whole chunks: ``G: [B, H, N, C, C]``; ``f, beta, g_end, c_end: [B, H, N, C]``; ``f_end,
    beta_end, m_end: [B, H, N]`` (``c_end`` is ``theta`` times the carry row ``Q[n-1, :]``).

    Padded tokens get theta 0, eta 1 and alpha 0; the end rows are taken at each chunk's last
    real token, so padding changes nothing."""
    pad = -length % chunk
    theta, alpha = F.pad(gates.theta, (0, pad)), F.pad(gates.alpha, (0, pad))
    eta = torch.zeros_like(gates.theta) if gates.eta is None else gates.eta  # gd: no momentum
    eta = F.pad(eta, (0, pad), value=1.0)
    b, h, t = theta.shape
    n = t // chunk
    theta, alpha, eta = (x.reshape(b, h, n, chunk) for x in (theta, alpha, eta))
    unrolled = chunk_gates(theta, alpha, eta)
    G, f, beta, carry, mom = unrolled.coeff, unrolled.f, unrolled.beta, unrolled.carry, unrolled.mom
    ends = torch.full((n,), chunk - 1, dtype=torch.long, device=theta.device)
    ends[-1] = (length - 1) % chunk
    chunks = torch.arange(n, device=theta.device)

    def at_ends(x: Tensor) -> Tensor:
        return x[:, :, chunks, ends]

    c_end = at_ends(carry) * theta
    return G, f, beta, at_ends(G), c_end, at_ends(f), at_ends(beta), at_ends(mom)
