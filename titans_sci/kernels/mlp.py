"""Triton forward kernel for the chunked Titans memory with an MLP memory of depth 2.

The memory of one head is ``M(x) = x + LN(gelu(x W1) W2)`` (LayerNorm without affine, exact
GELU), ``W1: [D, E]``, ``W2: [E, D]``, with momenta ``S1, S2``. Per chunk, with every surprise
at the chunk-start weights (see :mod:`titans_sci.memory.chunk`)::

    Z1 = K W1, A1 = gelu(Z1), O = A1 W2, e = K + LN(O) - V
    d2 = LN'(O)^T e,  d1 = (d2 W2^T) * gelu'(Z1)                       # surprise factors
    Zq1 = beta * (Q W1) + f * (Q S1) - ((Q K^T) * G) d1,  Aq1 = gelu(Zq1)
    Zq2 = beta * (Aq1 W2) + f * (Aq1 S2) - ((Aq1 A1^T) * G) d2,  Y = Q + LN(Zq2)
    W1' = beta_n W1 + f_n S1 - K^T (g * d1),    S1' = m_n S1 - K^T (c * d1)
    W2' = beta_n W2 + f_n S2 - A1^T (g * d2),   S2' = m_n S2 - A1^T (c * d2)

One program per (batch x head) walks the chunks; the state (4 matrices of ``D x E``) is too
large to stay on chip, so it lives in the output buffers and is streamed through in blocks of
``BE`` hidden units; ``Z1, A1, d1`` of the chunk go through a per-program scratch buffer. This
is a forward (inference) kernel: training uses the PyTorch path until its backward lands.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .linear import _load_chunk_gates, _mm

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@triton.jit
def _gelu(z):
    return 0.5 * z * (1.0 + tl.math.erf(z * _SQRT1_2))


@triton.jit
def _gelu_grad(z):
    return 0.5 * (1.0 + tl.math.erf(z * _SQRT1_2)) + z * tl.exp(-0.5 * z * z) * _INV_SQRT_2PI


@triton.jit
def _mlp_forward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w1, w2, s1, s2, y, z_scratch, a_scratch, d_scratch,
    N, T, EPS,
    D: tl.constexpr, E: tl.constexpr, BT: tl.constexpr, BE: tl.constexpr, P: tl.constexpr,
):  # fmt: skip
    i_bh = tl.program_id(0)
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    re = tl.arange(0, BE)
    w1_base = i_bh * D * E  # W1, S1: [D, E] row-major
    w2_base = i_bh * E * D  # W2, S2: [E, D] row-major
    scratch = i_bh * BT * E
    for c in range(N):
        tok = c * BT + rt
        seq = i_bh * T * D
        kc = tl.load(k + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        qc = tl.load(q + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        vc = tl.load(v + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        gm, fv, bv, ge, ce, fe, be, me = _load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, i_bh * N + c, BT
        )

        # Keys through the chunk-start memory: Z1, A1 to scratch, O accumulated.
        o = tl.zeros((BT, D), dtype=tl.float32)
        for eb in range(E // BE):
            cols = eb * BE + re
            w1b = tl.load(w1 + w1_base + rd[:, None] * E + cols[None, :])
            w2b = tl.load(w2 + w2_base + cols[:, None] * D + rd[None, :])
            z1 = _mm(kc, w1b, P)
            a1 = _gelu(z1)
            tl.store(z_scratch + scratch + rt[:, None] * E + cols[None, :], z1)
            tl.store(a_scratch + scratch + rt[:, None] * E + cols[None, :], a1)
            o += _mm(a1, w2b, P)
        # LayerNorm and its backward: d2 = (g - mean(g) - n * mean(g * n)) / sigma, g = e.
        mean = tl.sum(o, axis=1) / D
        centred = o - mean[:, None]
        inv_sigma = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / D + EPS)
        normed = centred * inv_sigma[:, None]
        err = kc + normed - vc
        d2 = (
            err
            - (tl.sum(err, axis=1) / D)[:, None]
            - normed * (tl.sum(err * normed, axis=1) / D)[:, None]
        ) * inv_sigma[:, None]
        # d1 = (d2 W2^T) * gelu'(Z1), block by block, to scratch.
        for eb in range(E // BE):
            cols = eb * BE + re
            w2b = tl.load(w2 + w2_base + cols[:, None] * D + rd[None, :])
            z1 = tl.load(z_scratch + scratch + rt[:, None] * E + cols[None, :])
            d1 = _mm(d2, tl.trans(w2b), P) * _gelu_grad(z1)
            tl.store(d_scratch + scratch + rt[:, None] * E + cols[None, :], d1)

        # Reads of the queries through the per-token weights (dual form).
        qk = _mm(qc, tl.trans(kc), P) * gm
        zq2 = tl.zeros((BT, D), dtype=tl.float32)
        aa = tl.zeros((BT, BT), dtype=tl.float32)
        for eb in range(E // BE):
            cols = eb * BE + re
            w1b = tl.load(w1 + w1_base + rd[:, None] * E + cols[None, :])
            s1b = tl.load(s1 + w1_base + rd[:, None] * E + cols[None, :])
            w2b = tl.load(w2 + w2_base + cols[:, None] * D + rd[None, :])
            s2b = tl.load(s2 + w2_base + cols[:, None] * D + rd[None, :])
            d1 = tl.load(d_scratch + scratch + rt[:, None] * E + cols[None, :])
            a1 = tl.load(a_scratch + scratch + rt[:, None] * E + cols[None, :])
            zq1 = bv[:, None] * _mm(qc, w1b, P) + fv[:, None] * _mm(qc, s1b, P) - _mm(qk, d1, P)
            aq1 = _gelu(zq1)
            zq2 += bv[:, None] * _mm(aq1, w2b, P) + fv[:, None] * _mm(aq1, s2b, P)
            aa += _mm(aq1, tl.trans(a1), P)
        zq2 -= _mm(aa * gm, d2, P)
        mean = tl.sum(zq2, axis=1) / D
        centred = zq2 - mean[:, None]
        inv_sigma = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / D + EPS)
        out = qc + centred * inv_sigma[:, None]
        tl.store(y + seq + tok[:, None] * D + rd[None, :], out)

        # State at the chunk end, block by block, in place.
        for eb in range(E // BE):
            cols = eb * BE + re
            p1 = w1_base + rd[:, None] * E + cols[None, :]
            p2 = w2_base + cols[:, None] * D + rd[None, :]
            w1b, s1b = tl.load(w1 + p1), tl.load(s1 + p1)
            w2b, s2b = tl.load(w2 + p2), tl.load(s2 + p2)
            d1 = tl.load(d_scratch + scratch + rt[:, None] * E + cols[None, :])
            a1 = tl.load(a_scratch + scratch + rt[:, None] * E + cols[None, :])
            tl.store(w1 + p1, be * w1b + fe * s1b - _mm(tl.trans(kc), ge[:, None] * d1, P))
            tl.store(s1 + p1, me * s1b - _mm(tl.trans(kc), ce[:, None] * d1, P))
            tl.store(w2 + p2, be * w2b + fe * s2b - _mm(tl.trans(a1), ge[:, None] * d2, P))
            tl.store(s2 + p2, me * s2b - _mm(tl.trans(a1), ce[:, None] * d2, P))


def mlp_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gate_matrices: tuple[Tensor, ...],
    weights: tuple[Tensor, Tensor],
    momentum: tuple[Tensor, Tensor],
    ln_eps: float,
) -> tuple[Tensor, tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Reads ``y: [B, H, T, D]`` and the fp32 state after the last chunk (no autograd).

    ``q, k, v: [B, H, T, D]`` padded to whole chunks; ``gate_matrices`` as for the linear
    kernel; ``weights = (W1 [B, H, D, E], W2 [B, H, E, D])`` and ``momentum`` alike."""
    b, h, t, d = q.shape
    e = weights[0].shape[-1]
    G = gate_matrices[0]
    n, bt = G.shape[2], G.shape[3]
    gates = [x.float().contiguous() for x in gate_matrices]
    q, k, v = (x.contiguous() for x in (q, k, v))
    w1, w2 = (w.float().contiguous().clone() for w in weights)
    s1, s2 = (s.float().contiguous().clone() for s in momentum)
    y = torch.empty(b, h, t, d, dtype=torch.float32, device=q.device)
    scratch = [torch.empty(b * h, bt, e, dtype=torch.float32, device=q.device) for _ in range(3)]
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    _mlp_forward_kernel[(b * h,)](
        q, k, v, *gates, w1, w2, s1, s2, y, *scratch,
        n, t, ln_eps, D=d, E=e, BT=bt, BE=min(e, 64), P=precision,
    )  # fmt: skip
    return y.to(q.dtype), (w1, w2), (s1, s2)
