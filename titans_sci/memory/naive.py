"""Token-by-token reference of the MIRAS memory: plain autograd, slow, the ground truth.

For each token ``t`` of a segment that starts at ``c`` (see :func:`chunk_segments`):

    g_t = d/dW  bias(M_W(k_t), v_t) at W = R(X_c)          # surprise, by autograd
                                    # (channel-wise steps: dbias/de weighed per channel)
    u_t = S_t = eta_t S_{t-1} - theta_t g_t   (momentum)   or   u_t = -theta_t g_t   (gd)
    X_t = (1 - alpha_t) X_{t-1} + u_t                      # the state's free parameters
    V_t = (1 - alpha_t) V_{t-1} + s_c u_t,  V_c = R(X_c)   # the weights read inside the chunk
    y_t = M_{V_t}(q_t),  or M_{R(X_t)}(q_t) at the end of a complete segment

with ``s_c`` the retention's read scale (1, or ``1/||X_c||_q^(q-2)`` for ``lq``). With chunk size 1
this is exact online learning: every gradient at the current memory, every read of the current
memory. Every tensor is in the internal layout ``[B, H, T, ...]``.
"""

from __future__ import annotations

import functools
import operator

import torch
from torch import Tensor

from .rule import Gates, MemoryRule, raise_if_not_finite
from .state import MemoryState, chunk_segments


def _token_surprise(
    rule: MemoryRule,
    weights: list[Tensor],
    k: Tensor,
    v: Tensor,
    delta: Tensor | None,
    channel: Tensor | None,
) -> list[Tensor]:
    """``d bias(M_W(k), v) / dW`` for one token per (batch, head), keeping the graph; with
    channel-wise step sizes ``channel: [B, H, 1, D]``, the gradient ``dbias/de`` of the error
    ``e = M_W(k) - v`` is weighed by them per channel on its way back to ``W``."""
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        leaves = [w if outer and w.requires_grad else w.detach().requires_grad_() for w in weights]
        error = rule.architecture.forward(leaves, k) - v
        loss = rule.bias.loss(error, delta).sum()
        if channel is None:
            return list(torch.autograd.grad(loss, leaves, create_graph=outer))
        (error_grad,) = torch.autograd.grad(loss, error, create_graph=outer, retain_graph=True)
        weighed = channel * error_grad
        return list(torch.autograd.grad(error, leaves, weighed, create_graph=outer))


def recurrent(
    rule: MemoryRule,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gates: Gates,
    state: MemoryState,
    surprise: list[Tensor] | None = None,
) -> tuple[Tensor, MemoryState]:
    """Reads ``y: [B, H, T, D]`` and the state after the last token. With a ``surprise`` list,
    also append each token's surprise ``||g_t||`` (the norm of its gradient over all the
    memory's weights): one ``[B, H, 1]`` tensor per token."""
    retention, arch = rule.retention, rule.architecture
    x = list(state.weights)
    s = None if state.momentum is None else list(state.momentum)
    outputs: list[Tensor] = []
    segments = chunk_segments(q.shape[2], rule.config.chunk_size, retention.lag_token)
    for segment in segments:
        start_weights = [retention.weights(w) for w in x]
        scales = [retention.read_scale(w) for w in x]
        read = list(start_weights)
        for t in range(segment.start, segment.end):
            tok = slice(t, t + 1)
            delta = None if gates.delta is None else gates.delta[..., tok]
            channel = None if gates.channel is None else gates.channel[:, :, tok]
            grads = _token_surprise(rule, start_weights, k[:, :, tok], v[:, :, tok], delta, channel)
            bad = torch.stack([~torch.isfinite(g).flatten(2).all(-1) for g in grads]).any(0)
            raise_if_not_finite(bad.unsqueeze(-1), offset=t)
            if surprise is not None:
                squares = functools.reduce(
                    operator.add, (g.detach().square().flatten(2).sum(-1) for g in grads)
                )
                surprise.append(squares.sqrt().unsqueeze(-1))
            theta = gates.theta[..., t, None, None]
            keep = 1 - gates.alpha[..., t, None, None]
            if s is not None:
                assert gates.eta is not None
                eta = gates.eta[..., t, None, None]
                s = [eta * m - theta * g for m, g in zip(s, grads, strict=True)]
                updates = s
            else:
                updates = [-theta * g for g in grads]
            x = [keep * w + u for w, u in zip(x, updates, strict=True)]
            read = [keep * r + c * u for r, c, u in zip(read, scales, updates, strict=True)]
            last_of_complete = segment.complete and t == segment.end - 1
            if last_of_complete and not retention.is_identity:
                read_weights = [retention.weights(w) for w in x]
            else:
                read_weights = read
            outputs.append(arch.forward(read_weights, q[:, :, tok]))
    y = torch.cat(outputs, dim=2) if outputs else q.new_zeros(q.shape)
    momentum = None if s is None else tuple(s)
    return y, MemoryState(tuple(x), momentum)
