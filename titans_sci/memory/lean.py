"""The lean training path of the chunked memory: an explicit backward that keeps little.

:func:`lean_chunked` computes what :func:`~titans_sci.memory.chunked` computes, for the memories
:func:`lean_supports` covers (the l2 bias with Titans decay; the linear memory or the MLP memory of
depth 2; momentum or plain GD), under one :class:`torch.autograd.Function`:

* the forward runs without autograd and keeps only ``q, k, v``, the gates and the memory state
  at the start of every group of ``GROUP_TOKENS`` tokens (64: for an MLP memory of
  width ``D`` and hidden ``4 D`` with momentum, ``16 D^2 / 64 = D^2 / 4`` floats per token and
  head);
* the backward walks the groups in reverse: it recomputes a group's chunks from its start state
  (keeping their intermediates), then back-propagates through the chunks in reverse with
  hand-derived gradients, the equations of the Triton kernels (:mod:`titans_sci.kernels`).

The gate matrices ``G, f, beta`` and their end rows come from
:func:`~titans_sci.memory.gates.padded_chunk_gates` in PyTorch, batched over every chunk at once;
they are built again in the backward (not kept), where autograd turns their gradients into the
gates' gradients. The chunk equations are those of the
kernels' docstrings (:mod:`titans_sci.kernels.mlp` for the MLP memory of depth 2,
:mod:`titans_sci.kernels.linear` for the linear one); with plain GD the momentum terms (``S``,
``f``, ``c``, ``m``) drop out.

Every tensor inside is chunk-major, ``[N, B, H, C, ...]``, so a chunk is one contiguous slab and
every matmul is batched over ``B x H``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .chunk import chunked, group_chunks
from .gates import padded_chunk_gates
from .rule import Gates, MemoryRule
from .state import MemoryState

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def lean_supports(rule: MemoryRule) -> bool:
    """Whether :func:`lean_chunked` covers this memory: the l2 bias with the ``decay``
    retention, and the linear memory or the MLP memory of depth 2 (momentum or plain GD)."""
    cfg = rule.config
    plain = cfg.bias == "l2" and cfg.retention == "decay"
    return plain and (cfg.architecture == "linear" or cfg.depth == 2)


def lean_chunked(
    rule: MemoryRule,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gates: Gates,
    state: MemoryState,
    state_at: int | None = None,
) -> tuple[Tensor, MemoryState]:
    """Reads ``y: [B, H, T, D]`` and the state after the last token, as
    :func:`~titans_sci.memory.chunked`, for ``q, k, v: [B, H, T, D]`` and gates ``[B, H, T]``;
    differentiable through the explicit backward of :class:`LeanChunkFunction`.

    ``state_at``: return the state after this many tokens instead (a multiple of the chunk
    size, at most ``T``): what :class:`~titans_sci.memory.NeuralMemory` keeps between calls
    (the last chunk boundary), with the trailing partial chunk read in the same pass."""
    if not lean_supports(rule):
        raise ValueError(f"the lean path does not cover this memory: {rule.config}")
    b, h, length, d = q.shape
    chunk = rule.config.chunk_size
    state_at = length if state_at is None else state_at
    if not (0 <= state_at <= length and (state_at % chunk == 0 or state_at == length)):
        raise ValueError(f"state_at={state_at}: expected a chunk boundary in [0, {length}]")
    if length == 0:
        return q.new_zeros(q.shape), state
    pad = -length % chunk
    n = (length + pad) // chunk
    momentum = state.momentum is not None
    q5, k5, v5 = (chunk_major(F.pad(x, (0, 0, 0, pad)).view(b, h, n, chunk, d)) for x in (q, k, v))
    spec = _Spec(
        rule.config.architecture,
        momentum,
        rule.config.ln_eps,
        group_chunks(chunk),
        -(-state_at // chunk),
        chunk,
        length,
    )
    start = (*state.weights, *(state.momentum or ()))
    eta = gates.eta if momentum else None
    y5, *end = LeanChunkFunction.apply(spec, q5, k5, v5, gates.theta, gates.alpha, eta, *start)
    y = y5.movedim(0, 2).reshape(b, h, n * chunk, d)[:, :, :length]
    layers = len(state.weights)
    with torch.no_grad():
        # One sum per tensor: finite for finite entries (an overflow to inf only triggers the
        # exact check below, which then finds nothing).
        finite = bool(torch.stack([y.sum(), *(x.sum() for x in end)]).isfinite().all())
        if not finite:
            # A diverging inner loop: the dual form names the first token whose surprise is
            # not finite (it raises NonFiniteSurpriseError); if none is, the outputs are
            # returned as they are, as the dual form would.
            chunked(rule, q, k, v, gates, state)
    return y, MemoryState(tuple(end[:layers]), tuple(end[layers:]) if momentum else None)


@dataclass(frozen=True)
class _Spec:
    """What the autograd function needs beyond tensors."""

    architecture: str  # "linear" or "mlp"
    momentum: bool
    ln_eps: float
    group: int  # chunks per saved state
    until: int  # the returned state is the one after this many chunks
    chunk: int  # tokens per chunk
    length: int  # real tokens (the rest of the last chunk is padding)

    def gate_matrices(
        self, theta: Tensor, alpha: Tensor, eta: Tensor | None
    ) -> list[Tensor | None]:
        """The unrolled gates of every chunk, chunk-major (``G: [N, B, H, C, C]``, ``f, beta,
        g_end, c_end: [N, B, H, C]``, ``f_end, beta_end, m_end: [N, B, H]``; the momentum
        ones ``None`` for plain GD), from gates ``[B, H, T]``."""
        matrices = padded_chunk_gates(theta, alpha, eta, self.chunk, self.length)
        return [
            None if name in _MOMENTUM_GATES and not self.momentum else chunk_major(x)
            for name, x in zip(_GATE_ORDER, matrices, strict=True)
        ]


@dataclass
class _MomentumGates:
    """The momentum terms of one chunk's unrolled gates: ``f, c_end: [B, H, C, 1]`` and
    ``f_end, m_end: [B, H, 1, 1]``."""

    f: Tensor
    c_end: Tensor
    f_end: Tensor
    m_end: Tensor


@dataclass
class _Gates:
    """One chunk's unrolled gates ``[B, H, C(, C)]`` and end scalars ``[B, H, 1, 1]``; ``mom``
    (the momentum ones) is ``None`` for plain GD."""

    G: Tensor
    beta: Tensor
    g_end: Tensor
    beta_end: Tensor
    mom: _MomentumGates | None

    @classmethod
    def of_chunk(cls, matrices: list[Tensor | None], c: int) -> _Gates:
        G, f, beta, g_end, c_end, f_end, beta_end, m_end = (
            None if x is None else x[c] for x in matrices
        )
        # padded_chunk_gates always gives these; the momentum ones are None for plain GD.
        assert G is not None and beta is not None and g_end is not None and beta_end is not None
        mom = None
        if f is not None:
            assert c_end is not None and f_end is not None and m_end is not None
            mom = _MomentumGates(
                f.unsqueeze(-1), c_end.unsqueeze(-1), f_end[..., None, None], m_end[..., None, None]
            )
        return cls(G, beta.unsqueeze(-1), g_end.unsqueeze(-1), beta_end[..., None, None], mom)


# -- shared pieces -------------------------------------------------------------------------------


def _gelu_backward(g: Tensor, z: Tensor) -> Tensor:
    """``g * gelu'(z)`` (exact GELU), aten's fused kernel."""
    return torch.ops.aten.gelu_backward(g, z)


def _gelu_grad2(z: Tensor) -> Tensor:
    """``gelu''(z) = phi(z) (2 - z^2)``."""
    return torch.exp(-0.5 * z * z) * _INV_SQRT_2PI * (2.0 - z * z)


def _layer_norm(o: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``(normed, 1 / sigma)`` of the rows of ``o`` (LayerNorm without affine)."""
    centred = o - o.mean(-1, keepdim=True)
    inv_sigma = torch.rsqrt(centred.square().mean(-1, keepdim=True) + eps)
    return centred * inv_sigma, inv_sigma


def _ln_backward(g: Tensor, normed: Tensor, inv_sigma: Tensor) -> Tensor:
    """``dL/do`` of ``normed = LN(o)`` given ``g = dL/dnormed``."""
    mean_g = g.mean(-1, keepdim=True)
    mean_gn = (g * normed).mean(-1, keepdim=True)
    return (g - mean_g - normed * mean_gn) * inv_sigma


def chunk_major(x: Tensor) -> Tensor:
    """``[B, H, N, ...]`` -> contiguous ``[N, B, H, ...]``."""
    return x.movedim(2, 0).contiguous()


def _t(x: Tensor) -> Tensor:
    return x.transpose(-1, -2)


def _rowsum(x: Tensor) -> Tensor:
    return x.sum(-1, keepdim=True)


def _scaled(x: Tensor, a: Tensor, y: Tensor | None = None, b: Tensor | None = None) -> Tensor:
    """A new tensor ``a x`` (``+ b y``) of a state's shape, ``a, b: [B, H, 1, 1]``."""
    out = x * a
    if y is None:
        return out
    assert b is not None, "b scales y"
    return out.addcmul_(y, b)


def _mad(out: Tensor, a: Tensor, b: Tensor, alpha: float = 1.0) -> Tensor:
    """``out += alpha a @ b`` in place (``out`` a fresh contiguous ``[B, H, m, n]``): sums of
    products without a temporary per term."""
    if not out.is_contiguous():  # flatten would copy, and the sum would land in the copy
        return out.add_(a @ b, alpha=alpha)
    flat = out.view(-1, *out.shape[-2:])
    # The out= form, not baddbmm_: the same in-place product, and FlopCounterMode counts it.
    torch.baddbmm(flat, a.flatten(0, 1), b.flatten(0, 1), alpha=alpha, out=flat)
    return out


def _dot(x: Tensor, y: Tensor) -> Tensor:
    """``<x, y>`` of each matrix pair ``[..., m, n]``, as ``[..., 1, 1]``."""
    return torch.linalg.vecdot(x.flatten(-2), y.flatten(-2))[..., None, None]


# -- linear memory -------------------------------------------------------------------------------


def _linear_chunk(q, k, v, g: _Gates, state, eps, keep):
    """One chunk of the linear memory: ``(y, next state, intermediates or None)``."""
    w, m = state[0], g.mom
    e = k @ w - v
    qk = q @ _t(k)
    a = qk * g.G
    qw = q @ w
    y = g.beta * qw - a @ e
    qs = None
    nxt: tuple[Tensor, ...]
    if m is not None:
        s = state[1]
        qs = q @ s
        y = y + m.f * qs
        w_next = _mad(_scaled(w, g.beta_end, s, m.f_end), _t(k), g.g_end * e, -1.0)
        nxt = (w_next, _mad(_scaled(s, m.m_end), _t(k), m.c_end * e, -1.0))
    else:
        nxt = (_mad(_scaled(w, g.beta_end), _t(k), g.g_end * e, -1.0),)
    cache = dict(e=e, qk=qk, a=a, qw=qw, qs=qs) if keep else None
    return y, nxt, cache


def _linear_chunk_backward(q, k, v, g: _Gates, state, cache, dy, dnext):
    """Gradients of one linear chunk: ``(dq, dk, dv, gate grads, d start state)``, given ``dy``
    and the gradients ``dnext`` of the chunk's end state (the next chunk's start state)."""
    w, m = state[0], g.mom
    e, qk, a = cache["e"], cache["qk"], cache["a"]
    dw_n = dnext[0]
    k_dw = k @ dw_n
    da = -(dy @ _t(e))  # the gradient of A = (Q K^T) * G
    da_g = da * g.G
    de = -(_t(a) @ dy) - g.g_end * k_dw
    grads = dict(
        G=(da * qk).tril(),
        beta=_rowsum(cache["qw"] * dy),
        g_end=-_rowsum(k_dw * e),
        beta_end=_dot(w, dw_n),
    )
    dq = (g.beta * dy) @ _t(w) + da_g @ k
    dk = _t(da_g) @ q - (g.g_end * e) @ _t(dw_n)
    dw = _mad(_scaled(dw_n, g.beta_end), _t(q), g.beta * dy)
    ds: tuple[Tensor, ...] = ()
    if m is not None:
        s, ds_n = state[1], dnext[1]
        k_ds = k @ ds_n
        de = de - m.c_end * k_ds
        dq = dq + (m.f * dy) @ _t(s)
        dk = dk - (m.c_end * e) @ _t(ds_n)
        grads.update(
            f=_rowsum(cache["qs"] * dy),
            c_end=-_rowsum(k_ds * e),
            f_end=_dot(s, dw_n),
            m_end=_dot(s, ds_n),
        )
        ds = (_mad(_scaled(dw_n, m.f_end, ds_n, m.m_end), _t(q), m.f * dy),)
    dk = dk + de @ _t(w)
    _mad(dw, _t(k), de)
    return dq, dk, -de, grads, (dw, *ds)


# -- MLP memory of depth 2 -----------------------------------------------------------------------


def _mlp_chunk(q, k, v, g: _Gates, state, eps, keep):
    """One chunk of the MLP memory: ``(y, next state, intermediates or None)``.
    ``state = (W1, W2)`` or ``(W1, W2, S1, S2)``. Per-token gate factors scale the ``D``-wide
    operand of each product (``(beta q) W1`` rather than ``beta (q W1)``): four times fewer
    multiplications than scaling the ``4 D``-wide hidden side."""
    w1, w2, m = state[0], state[1], g.mom
    if m is not None:  # the momenta exist with momentum only
        s1, s2 = state[2], state[3]
    z1 = k @ w1
    a1 = F.gelu(z1)
    normed, inv_sigma = _layer_norm(a1 @ w2, eps)
    err = k + normed - v
    d2 = _ln_backward(err, normed, inv_sigma)
    hid = d2 @ _t(w2)
    d1 = _gelu_backward(hid, z1)
    qk = q @ _t(k)
    bq = qk * g.G
    zq1 = _mad((g.beta * q) @ w1, bq, d1, -1.0)
    if m is not None:
        _mad(zq1, m.f * q, s1)
    aq1 = F.gelu(zq1)
    aa = aq1 @ _t(a1)
    ba = aa * g.G
    aw2 = aq1 @ w2
    zq2 = _mad(g.beta * aw2, ba, d2, -1.0)
    as2 = None
    if m is not None:
        as2 = aq1 @ s2
        zq2 += m.f * as2
    normed_q, inv_sigma_q = _layer_norm(zq2, eps)
    y = q + normed_q
    nxt: tuple[Tensor, ...]
    if m is not None:
        nxt = (
            _mad(_scaled(w1, g.beta_end, s1, m.f_end), _t(g.g_end * k), d1, -1.0),
            _mad(_scaled(w2, g.beta_end, s2, m.f_end), _t(a1), g.g_end * d2, -1.0),
            _mad(_scaled(s1, m.m_end), _t(m.c_end * k), d1, -1.0),
            _mad(_scaled(s2, m.m_end), _t(a1), m.c_end * d2, -1.0),
        )
    else:
        nxt = (
            _mad(_scaled(w1, g.beta_end), _t(g.g_end * k), d1, -1.0),
            _mad(_scaled(w2, g.beta_end), _t(a1), g.g_end * d2, -1.0),
        )
    cache = None
    if keep:
        cache = dict(
            z1=z1, a1=a1, normed=normed, inv_sigma=inv_sigma, err=err, d2=d2, hid=hid, d1=d1,
            qk=qk, bq=bq, zq1=zq1, aq1=aq1, aa=aa, ba=ba, aw2=aw2, as2=as2,
            normed_q=normed_q, inv_sigma_q=inv_sigma_q,
        )  # fmt: skip
    return y, nxt, cache


def _mlp_chunk_backward(q, k, v, g: _Gates, state, c, dy, dnext):
    """Gradients of one MLP chunk: ``(dq, dk, dv, gate grads, d start state)``, given ``dy``
    and the gradients ``dnext`` of the chunk's end state (the next chunk's start state).
    Row sums over the hidden width are taken on the ``D``-wide side where an identity allows:
    ``rowsum((Q W1) * dZ) = rowsum(Q * (dZ W1^T))`` and ``rowsum((K dW1') * d1) = rowsum(K *
    (d1 dW1'^T))``."""
    w1, w2, m = state[0], state[1], g.mom
    dw1_n, dw2_n = dnext[0], dnext[1]
    if m is not None:  # the momenta and their gradients exist with momentum only
        s1, s2 = state[2], state[3]
        ds1_n, ds2_n = dnext[2], dnext[3]
    a1, d1, d2, aq1 = c["a1"], c["d1"], c["d2"], c["aq1"]

    # The read: Y = Q + LN(Zq2), Zq2 = beta Aq1 W2 + f Aq1 S2 - ((Aq1 A1^T) * G) d2.
    dzq2 = _ln_backward(dy, c["normed_q"], c["inv_sigma_q"])
    bdzq2 = g.beta * dzq2
    zq2_d2 = dzq2 @ _t(d2)
    dba = -zq2_d2 * g.G  # d(Aq1 A1^T), masked by G
    dG = -zq2_d2 * c["aa"]
    dd2 = -(_t(c["ba"]) @ dzq2)
    daq1 = _mad(bdzq2 @ _t(w2), dba, a1)
    if m is not None:
        fdzq2 = m.f * dzq2
        _mad(daq1, fdzq2, _t(s2))
    # Zq1 = beta Q W1 + f Q S1 - ((Q K^T) * G) d1.
    dzq1 = _gelu_backward(daq1, c["zq1"])
    da1 = _t(dba) @ aq1
    dz_w1 = dzq1 @ _t(w1)
    dq = dy + g.beta * dz_w1
    dbeta = _rowsum(c["aw2"] * dzq2) + _rowsum(q * dz_w1)
    dbq = -(dzq1 @ _t(d1))
    dw1 = _mad(_scaled(dw1_n, g.beta_end), _t(g.beta * q), dzq1)
    dw2 = _mad(_scaled(dw2_n, g.beta_end), _t(aq1), bdzq2)
    dbq_g = dbq * g.G
    _mad(dq, dbq_g, k)
    dk = _t(dbq_g) @ q
    dG += dbq * c["qk"]
    # The chunk-end state: W1' = ... - (g K)^T d1, W2' = ... - A1^T (g d2).
    a1_dw2 = a1 @ dw2_n
    dd2 -= g.g_end * a1_dw2
    d1_dw1 = d1 @ _t(dw1_n)
    dge = -_rowsum(a1_dw2 * d2) - _rowsum(k * d1_dw1)
    dk -= g.g_end * d1_dw1
    dd1 = _mad((g.g_end * k) @ dw1_n, _t(c["bq"]), dzq1).neg_()
    _mad(da1, g.g_end * d2, _t(dw2_n), -1.0)
    grads = dict(G=dG.tril(), beta=dbeta, beta_end=_dot(w1, dw1_n) + _dot(w2, dw2_n))
    ds: tuple[Tensor, ...] = ()
    if m is not None:
        dz_s1 = dzq1 @ _t(s1)
        dq += m.f * dz_s1
        a1_ds2 = a1 @ ds2_n
        dd2 -= m.c_end * a1_ds2
        d1_ds1 = d1 @ _t(ds1_n)
        dk -= m.c_end * d1_ds1
        _mad(dd1, m.c_end * k, ds1_n, -1.0)
        _mad(da1, m.c_end * d2, _t(ds2_n), -1.0)
        grads.update(
            f=_rowsum(c["as2"] * dzq2) + _rowsum(q * dz_s1),
            c_end=-_rowsum(a1_ds2 * d2) - _rowsum(k * d1_ds1),
            f_end=_dot(s1, dw1_n) + _dot(s2, dw2_n),
            m_end=_dot(s1, ds1_n) + _dot(s2, ds2_n),
        )
        ds = (
            _mad(_scaled(dw1_n, m.f_end, ds1_n, m.m_end), _t(m.f * q), dzq1),
            _mad(_scaled(dw2_n, m.f_end, ds2_n, m.m_end), _t(aq1), fdzq2),
        )
    grads["g_end"] = dge

    # The surprise factors: d1 = (d2 W2^T) * gelu'(Z1), d2 = LN'(O)^T err.
    z1 = c["z1"]
    dh = _gelu_backward(dd1, z1)
    dz1 = dd1 * c["hid"] * _gelu_grad2(z1)
    _mad(dd2, dh, w2)
    _mad(dw2, _t(dh), d2)
    normed, inv_sigma, err = c["normed"], c["inv_sigma"], c["err"]
    d = normed.shape[-1]
    mean_rn = (err * normed).mean(-1, keepdim=True)
    derr = _ln_backward(dd2, normed, inv_sigma)
    mean_dn = (dd2 * normed).mean(-1, keepdim=True)
    dnormed = derr - inv_sigma * (mean_rn * dd2 + err * mean_dn)
    dsigma = -_rowsum(dd2 * d2) * inv_sigma
    do = _ln_backward(dnormed, normed, inv_sigma) + (dsigma / d) * normed
    dk += derr
    _mad(da1, do, _t(w2))
    dz1 += _gelu_backward(da1, z1)
    _mad(dk, dz1, _t(w1))
    _mad(dw1, _t(k), dz1)
    _mad(dw2, _t(a1), do)
    return dq, dk, -derr, grads, (dw1, dw2, *ds)


_CHUNKS = {
    "linear": (_linear_chunk, _linear_chunk_backward),
    "mlp": (_mlp_chunk, _mlp_chunk_backward),
}
_GATE_ORDER = ("G", "f", "beta", "g_end", "c_end", "f_end", "beta_end", "m_end")
"""The order of :func:`~titans_sci.memory.gates.padded_chunk_gates`' matrices."""
_MOMENTUM_GATES = ("f", "c_end", "f_end", "m_end")


class LeanChunkFunction(torch.autograd.Function):
    """The chunked memory given chunk-major inputs and its gates, with an explicit backward.

    ``forward(spec, q, k, v, theta, alpha, eta, *state)`` with ``q, k, v: [N, B, H, C, D]``
    (chunk-major, padded to whole chunks), gates ``[B, H, T]`` (``eta`` ``None`` for plain GD)
    and the start state (weights, then momenta) returns ``y: [N, B, H, C, D]`` and the state
    after ``spec.until`` chunks. The gate matrices are built from the gates in the forward and
    again in the backward, where autograd maps their gradients to the gates': they are not kept.
    """

    @staticmethod
    def forward(ctx, spec: _Spec, q, k, v, theta, alpha, eta, *start):
        matrices = spec.gate_matrices(theta, alpha, eta)
        step, _ = _CHUNKS[spec.architecture]
        n = q.shape[0]
        y = torch.empty_like(q)
        # A learned initial state is a broadcast view: kept as it is, computed on densely
        # (batched matmuls on a stride-0 batch fall back to one product per matrix).
        state = returned = tuple(x.contiguous() for x in start)
        saved: list[Tensor] = []
        for c in range(n):
            if c % spec.group == 0:
                saved.extend(start if c == 0 else state)
            gates = _Gates.of_chunk(matrices, c)
            y[c], state, _ = step(q[c], k[c], v[c], gates, state, spec.ln_eps, False)
            if c + 1 == spec.until:
                returned = state
        ctx.save_for_backward(q, k, v, theta, alpha, eta, *saved)
        ctx.spec = spec
        ctx.state_size = len(start)
        return (y, *returned)

    @staticmethod
    def backward(ctx, dy, *dend):
        spec: _Spec = ctx.spec
        q, k, v, theta, alpha, eta, *saved = ctx.saved_tensors
        with torch.enable_grad():
            theta_leaf, alpha_leaf = (x.detach().requires_grad_() for x in (theta, alpha))
            eta_leaf = None if eta is None else eta.detach().requires_grad_()
            leaves = [theta_leaf, alpha_leaf, eta_leaf]
            graph = spec.gate_matrices(theta_leaf, alpha_leaf, eta_leaf)
        matrices = [None if x is None else x.detach() for x in graph]
        size = ctx.state_size
        step, step_backward = _CHUNKS[spec.architecture]
        n = q.shape[0]
        # The incoming gradient may be any view (e.g. of a transposed output): dense, so that
        # every sum built from it is dense too.
        dy = torch.zeros_like(q) if dy is None else dy.contiguous()
        # The gradient of the returned state joins the chain at the end of chunk until - 1.
        dend = tuple(
            torch.zeros_like(s) if dx is None else dx for dx, s in zip(dend, saved, strict=False)
        )
        dnext = tuple(torch.zeros_like(x) for x in dend)
        dq, dk, dv = (torch.empty_like(x) for x in (q, k, v))
        dmat = [None if x is None else torch.empty_like(x) for x in matrices]
        groups = range(0, n, spec.group)
        for first in reversed(groups):
            last = min(first + spec.group, n)
            # Recompute the group's chunks from its saved start state, keeping intermediates.
            group_start = saved[(first // spec.group) * size : (first // spec.group + 1) * size]
            states = [tuple(x.contiguous() for x in group_start)]
            caches, gates = [], []
            for c in range(first, last):
                gates.append(_Gates.of_chunk(matrices, c))
                _, nxt, cache = step(q[c], k[c], v[c], gates[-1], states[-1], spec.ln_eps, True)
                caches.append(cache)
                states.append(nxt)
            for c in range(last - 1, first - 1, -1):
                i = c - first
                if c + 1 == spec.until:
                    dnext = tuple(a + b for a, b in zip(dnext, dend, strict=True))
                dq[c], dk[c], dv[c], grads, dnext = step_backward(
                    q[c], k[c], v[c], gates[i], states[i], caches[i], dy[c], dnext
                )
                for dx, name in zip(dmat, _GATE_ORDER, strict=True):
                    if dx is not None:
                        dx[c] = grads[name].reshape(dx[c].shape)
                caches[i] = None
        if spec.until == 0:
            dnext = tuple(a + b for a, b in zip(dnext, dend, strict=True))
        used = [(x, dx) for x, dx in zip(graph, dmat, strict=True) if x is not None]
        wanted = [x for x in leaves if x is not None]
        dgates = iter(torch.autograd.grad([x for x, _ in used], wanted, [dx for _, dx in used]))
        dtheta, dalpha = next(dgates), next(dgates)
        deta = next(dgates) if eta is not None else None
        return (None, dq, dk, dv, dtheta, dalpha, deta, *dnext)
