"""Chunk-parallel MIRAS memory in PyTorch (the dual form): the CPU path, differentiable.

Inside a segment of ``n`` tokens starting from free parameters ``X_0``, momentum ``S_0`` and
weights ``W_c = R(X_0)``, every surprise is taken at ``W_c`` and is, per weight matrix, a rank-1
matrix ``g_j = u_j^T d_j`` (layer input times output gradient). Unrolling the recurrence of
:mod:`~titans_sci.memory.naive` with ``a_t = 1 - alpha_t``:

    P[t, i] = prod_{i<j<=t} a_j,   Q[i, j] = prod_{j<l<=i} eta_l,   m_t = prod_{l<=t} eta_l
    beta_t  = prod_{j<=t} a_j,     f_t = sum_{i<=t} P[t, i] m_i
    G[t, j] = theta_j sum_{j<=i<=t} P[t, i] Q[i, j]        (gd: G[t, j] = theta_j P[t, j], f = 0)

    X_t = beta_t X_0 + f_t S_0 - sum_{j<=t} G[t, j] u_j^T d_j
    S_n = m_n S_0 - sum_j theta_j Q[n, j] u_j^T d_j
    V_t = beta_t W_c + s_c (f_t S_0 - sum_{j<=t} G[t, j] u_j^T d_j)     (weights read at t)

so a layer's read of input ``r_t`` never materialises ``V_t``:
``r_t V_t = beta_t r_t W_c + s_c (f_t r_t S_0 - sum_j G[t, j] (r_t . u_j) d_j)``, i.e.
``(R U^T * G) D``, one masked matmul per layer, as in TTT-MLP's dual form. Segments run in
sequence; everything inside a segment is batched over ``[B, H]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from titans_sci.recompute import recomputed

from .gates import chunk_gates
from .rule import Gates, MemoryRule, NonFiniteSurpriseError, raise_if_not_finite
from .state import MemoryState, chunk_segments

GROUP_TOKENS = 64
"""Training paths keep the memory state at the start of every group of at least this many
tokens (whole chunks) and recompute one group at a time in the backward."""


def group_chunks(chunk_size: int) -> int:
    """Chunks per group: the fewest whole chunks that hold ``GROUP_TOKENS`` tokens."""
    return max(1, -(-GROUP_TOKENS // chunk_size))


def chunked(
    rule: MemoryRule,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gates: Gates,
    state: MemoryState,
    surprise: list[Tensor] | None = None,
) -> tuple[Tensor, MemoryState]:
    """Reads ``y: [B, H, T, D]`` and the state after the last token; equals :func:`recurrent`.
    With a ``surprise`` list, also append each segment's surprise ``[B, H, n]``: the norm of
    every token's gradient, ``sqrt(sum_l ||u_l||^2 ||d_l||^2)`` from its rank-1 factors."""
    outputs: list[Tensor] = []
    not_finite: list[Tensor] = []
    segments = chunk_segments(q.shape[2], rule.config.chunk_size, rule.retention.lag_token)
    # torch.split, not slicing: its backward is one concatenation instead of a zero-filled
    # full-length gradient per segment.
    sizes = [segment.end - segment.start for segment in segments]
    qs, ks, vs = (x.split(sizes, dim=2) for x in (q, k, v))
    pieces = zip(segments, qs, ks, vs, gates.split(sizes), strict=True)
    for segment, qc, kc, vc, gc in pieces:
        y, state, bad = _segment(rule, qc, kc, vc, gc, state, segment.complete, surprise)
        outputs.append(y)
        not_finite.append(bad)
    if not_finite:
        raise_if_not_finite(torch.cat(not_finite, dim=2))
    y = torch.cat(outputs, dim=2) if outputs else q.new_zeros(q.shape)
    return y, state


def checkpointed(
    rule: MemoryRule, q: Tensor, k: Tensor, v: Tensor, gates: Gates, state: MemoryState
) -> tuple[Tensor, MemoryState]:
    """:func:`chunked` with activation checkpointing: the sequence runs in groups of whole
    chunks (at least ``GROUP_TOKENS`` tokens), each recomputed in the backward
    (:func:`~titans_sci.recompute.recomputed`), so the forward keeps only each group's inputs
    and start state and the backward recomputes one group at a time. The same function as
    :func:`chunked`, in memory bounded by one group; the training path of the memories
    :mod:`~titans_sci.memory.lean` does not cover."""
    chunk = rule.config.chunk_size
    group = chunk * group_chunks(chunk)
    length = q.shape[2]
    if length <= group:
        return chunked(rule, q, k, v, gates, state)
    sizes = [min(group, length - start) for start in range(0, length, group)]
    layers = len(state.weights)
    has_eta, has_delta = gates.eta is not None, gates.delta is not None
    has_channel = gates.channel is not None
    num_gates = 2 + has_eta + has_delta + has_channel  # theta and alpha always

    def piece(q: Tensor, k: Tensor, v: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        present = iter(rest[:num_gates])  # in the order theta, eta, alpha, delta, channel
        theta = next(present)
        eta = next(present) if has_eta else None
        alpha = next(present)
        delta = next(present) if has_delta else None
        channel = next(present) if has_channel else None
        g = Gates(theta, eta, alpha, delta, channel)
        tensors = rest[num_gates:]
        momentum = tuple(tensors[layers:]) or None
        y, end = chunked(rule, q, k, v, g, MemoryState(tuple(tensors[:layers]), momentum))
        return (y, *end.weights, *(end.momentum or ()))

    outputs = []
    start = 0
    pieces = zip(*(x.split(sizes, dim=2) for x in (q, k, v)), gates.split(sizes), strict=True)
    for qc, kc, vc, gc in pieces:
        gate_tensors = [
            x for x in (gc.theta, gc.eta, gc.alpha, gc.delta, gc.channel) if x is not None
        ]
        tensors = (*state.weights, *(state.momentum or ()))
        try:
            y, *end = recomputed(piece, qc, kc, vc, *gate_tensors, *tensors)
        except NonFiniteSurpriseError as error:  # steps count from the first token
            raise error.moved(start) from None
        state = MemoryState(tuple(end[:layers]), tuple(end[layers:]) or None)
        outputs.append(y)
        start += qc.shape[2]
    return torch.cat(outputs, dim=2), state


def _segment(
    rule: MemoryRule,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Gates,
    state: MemoryState,
    complete: bool,
    surprise: list[Tensor] | None = None,
) -> tuple[Tensor, MemoryState, Tensor]:
    """One segment of ``n`` tokens: reads ``[B, H, n, D]``, the state at its end, and a
    ``[B, H, n]`` mask of tokens whose surprise is not finite."""
    retention, arch, bias = rule.retention, rule.architecture, rule.bias
    x, s = state.weights, state.momentum
    start_weights = [retention.weights(w) for w in x]
    scales = [retention.read_scale(w) for w in x]

    # Surprise factors of every token at the segment-start weights.
    inputs, deltas = arch.surprise_factors(
        start_weights, k, lambda y: g.weigh(bias.grad(y - v, g.delta))
    )
    # The surprise u^T d of a layer is finite iff max|u| * max|d| is (the same float product).
    finite = [
        (u.abs().amax(-1) * d.abs().amax(-1)).isfinite()
        for u, d in zip(inputs, deltas, strict=True)
    ]
    bad = ~torch.stack(finite).all(0)
    if surprise is not None:  # ||u^T d||_F = ||u|| ||d|| for each layer's rank-1 gradient
        squares = [
            u.detach().square().sum(-1) * d.detach().square().sum(-1)
            for u, d in zip(inputs, deltas, strict=True)
        ]
        surprise.append(torch.stack(squares).sum(0).sqrt())

    # Gate matrices of the unrolled recurrence.
    unrolled = chunk_gates(g.theta, g.alpha, g.eta if s is not None else None)
    beta, coeff = unrolled.beta, unrolled.coeff
    beta_rows = beta.unsqueeze(-1)
    if s is not None:  # carry, mom, f and f_rows exist with momentum only
        carry, mom, f = unrolled.momentum_rows()
        f_rows = f.unsqueeze(-1)

    def layer(i: int, r: Tensor) -> Tensor:
        correction = ((r @ inputs[i].transpose(-1, -2)) * coeff) @ deltas[i]
        if s is not None:
            correction = correction - f_rows * (r @ s[i])
        if not (isinstance(scales[i], float) and scales[i] == 1.0):
            correction = scales[i] * correction
        return beta_rows * (r @ start_weights[i]) - correction

    y = arch.apply(q, layer)

    # State at the segment end: the last row of the matrices above.
    last_coeff = coeff[..., -1, :].unsqueeze(-1)
    beta_end = beta[..., -1, None, None]
    new_x, new_s = [], []
    for i, w in enumerate(x):
        update = (inputs[i] * last_coeff).transpose(-1, -2) @ deltas[i]
        if s is None:
            new_x.append(beta_end * w - update)
        else:
            new_x.append(beta_end * w + f[..., -1, None, None] * s[i] - update)
    if s is not None:
        carry_end = (carry[..., -1, :] * g.theta).unsqueeze(-1)
        mom_end = mom[..., -1, None, None]
        new_s = [
            mom_end * m - (inputs[i] * carry_end).transpose(-1, -2) @ deltas[i]
            for i, m in enumerate(s)
        ]

    if complete and not retention.is_identity:
        exact = arch.forward([retention.weights(w) for w in new_x], q[:, :, -1:])
        y = torch.cat([y[:, :, :-1], exact], dim=2)
    return y, MemoryState(tuple(new_x), None if s is None else tuple(new_s)), bad
