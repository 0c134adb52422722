"""The Triton path of the chunked memory: gate matrices in PyTorch, the rest in the kernels.

:func:`triton_chunked` has the signature of :func:`titans_sci.memory.chunked` and computes the
same function for the memories the kernels cover (:func:`supports`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from titans_sci.memory.rule import Gates, MemoryRule
from titans_sci.memory.state import MemoryState, chunk_gates

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


def _gate_matrices(gates: Gates, chunk: int, length: int) -> tuple[Tensor, ...]:
    """``G, f, beta`` per chunk and the end-of-chunk rows, for gates padded to whole chunks.

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
    matrices = _gate_matrices(gates, chunk, length)
    pad = -length % chunk
    q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    momentum = state.momentum or tuple(torch.zeros_like(w) for w in state.weights)
    if rule.config.architecture == "linear":
        y, w, s = LinearChunkFunction.apply(q, k, v, *matrices, *state.weights, *momentum)
        new_weights, new_momentum = (w,), (s,)
    elif torch.is_grad_enabled():  # the MLP kernels keep each chunk's state for the backward
        y, w1, w2, s1, s2 = MLPChunkFunction.apply(
            q, k, v, *matrices, *state.weights, *momentum, rule.config.ln_eps
        )
        new_weights, new_momentum = (w1, w2), (s1, s2)
    else:
        y, new_weights, new_momentum = mlp_forward(
            q, k, v, matrices, state.weights, momentum, rule.config.ln_eps
        )
    dtype = state.weights[0].dtype
    weights = tuple(w.to(dtype) for w in new_weights)
    kept = None if state.momentum is None else tuple(s.to(dtype) for s in new_momentum)
    return y[:, :, :length], MemoryState(weights, kept)
