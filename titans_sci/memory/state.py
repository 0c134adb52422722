"""The memory state carried between calls, and the schedule of chunks over a sequence."""

from __future__ import annotations

from dataclasses import dataclass

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
        return PendingTokens(self.q.detach(), self.k.detach(), self.v.detach(), self.gates.detach())


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
