"""The Triton path of the chunked memory: gate matrices in PyTorch, the rest in the kernels.

:func:`triton_chunked` has the signature of :func:`titans_sci.memory.chunked` and computes the
same function for the memories the kernels cover (:func:`supports`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from titans_sci.memory.gates import padded_chunk_gates
from titans_sci.memory.rule import Gates, MemoryRule
from titans_sci.memory.state import MemoryState

from .linear import LinearChunkFunction
from .mlp import MLPChunkFunction, mlp_forward

MAX_HEAD_DIM = 128
"""The widest head the kernels take: its state block (``[128, 64]`` fp32 per matrix) stays on
chip."""
MAX_CHUNK = 64
"""The longest chunk the kernels take (``[64, 64]`` gate and attention tiles)."""


def supports(rule: MemoryRule) -> bool:
    """Whether the kernels cover this memory: the l2 bias and Titans decay (momentum or plain
    GD), any head dim up to :data:`MAX_HEAD_DIM` and chunk up to :data:`MAX_CHUNK` (no powers of
    two run masked), and the linear memory or the MLP memory of depth 2."""
    cfg = rule.config
    common = (
        cfg.bias == "l2"
        and cfg.retention == "decay"
        and 1 <= cfg.head_dim <= MAX_HEAD_DIM
        and 1 <= cfg.chunk_size <= MAX_CHUNK
    )
    if cfg.architecture == "linear":
        return common
    return common and cfg.depth == 2


def triton_chunked(
    rule: MemoryRule, q: Tensor, k: Tensor, v: Tensor, gates: Gates, state: MemoryState
) -> tuple[Tensor, MemoryState]:
    """Reads ``y: [B, H, T, D]`` and the state after the last token, through the kernels."""
    if not supports(rule):
        raise ValueError(f"the Triton kernels do not cover this memory: {rule.config}")
    length = q.shape[2]
    if length == 0:
        return q.new_zeros(q.shape), state
    chunk = rule.config.chunk_size
    matrices = padded_chunk_gates(gates.theta, gates.alpha, gates.eta, chunk, length)
    pad = -length % chunk
    q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    momentum = state.momentum  # None for plain GD: the kernels then skip the momentum terms
    new_weights: tuple[Tensor, ...]
    new_momentum: tuple[Tensor, ...] | None
    if rule.config.architecture == "linear":
        s0 = None if momentum is None else momentum[0]
        y, w, s = LinearChunkFunction.apply(q, k, v, *matrices, *state.weights, s0)
        new_weights, new_momentum = (w,), None if s is None else (s,)
    elif torch.is_grad_enabled():  # the MLP kernels keep each chunk's state for the backward
        s1, s2 = (None, None) if momentum is None else momentum
        y, w1, w2, s1, s2 = MLPChunkFunction.apply(
            q, k, v, *matrices, *state.weights, s1, s2, rule.config.ln_eps
        )
        new_weights, new_momentum = (w1, w2), None if s1 is None else (s1, s2)
    else:
        (w1, w2) = state.weights  # the MLP memory of depth 2
        moments = None if momentum is None else (momentum[0], momentum[1])
        y, new_weights, new_momentum = mlp_forward(
            q, k, v, matrices, (w1, w2), moments, rule.config.ln_eps
        )
    dtype = state.weights[0].dtype
    weights = tuple(w.to(dtype) for w in new_weights)
    kept = None if new_momentum is None else tuple(s.to(dtype) for s in new_momentum)
    return y[:, :, :length], MemoryState(weights, kept)
