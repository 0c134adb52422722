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


def supports(rule: MemoryRule) -> bool:
    """Whether the kernels cover this memory: the l2 bias and Titans decay (momentum or plain
    GD), head dims 16 to 128, chunks 16 to 64, and the linear memory or the MLP memory of
    depth 2."""
    cfg = rule.config
    common = (
        cfg.bias == "l2"
        and cfg.retention == "decay"
        and cfg.head_dim in (16, 32, 64, 128)
        and cfg.chunk_size in (16, 32, 64)
    )
    if cfg.architecture == "linear":
        return common
    hidden = cfg.expansion * cfg.head_dim
    return common and cfg.depth == 2 and hidden % min(hidden, 64) == 0


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
    momentum = state.momentum or tuple(torch.zeros_like(w) for w in state.weights)
    new_weights: tuple[Tensor, ...]
    new_momentum: tuple[Tensor, ...]
    if rule.config.architecture == "linear":
        y, w, s = LinearChunkFunction.apply(q, k, v, *matrices, *state.weights, *momentum)
        new_weights, new_momentum = (w,), (s,)
    elif torch.is_grad_enabled():  # the MLP kernels keep each chunk's state for the backward
        y, w1, w2, s1, s2 = MLPChunkFunction.apply(
            q, k, v, *matrices, *state.weights, *momentum, rule.config.ln_eps
        )
        new_weights, new_momentum = (w1, w2), (s1, s2)
    else:
        (w1, w2), (s1, s2) = state.weights, momentum  # the MLP memory of depth 2
        y, new_weights, new_momentum = mlp_forward(
            q, k, v, matrices, (w1, w2), (s1, s2), rule.config.ln_eps
        )
    dtype = state.weights[0].dtype
    weights = tuple(w.to(dtype) for w in new_weights)
    kept = None if state.momentum is None else tuple(s.to(dtype) for s in new_momentum)
    return y[:, :, :length], MemoryState(weights, kept)
