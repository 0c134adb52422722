"""Triton kernels for the chunked Titans memory with an MLP memory of depth 2.

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
``BE`` hidden units; ``Z1, A1, d1`` of the chunk go through a per-program scratch buffer.
:func:`mlp_forward` runs it without autograd; :class:`MLPChunkFunction` also keeps every chunk's
start state and runs the backward kernel, which walks the chunks in reverse: it recomputes the
chunk's forward, then back-propagates through the reads (LayerNorm, GELU, the dual form), the
surprise factors (whose own gradient needs the LayerNorm's and GELU's second derivatives) and
the keys' forward, and hands the start state's gradient to the previous chunk (two buffers per
state matrix, alternating).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .linear import _load_chunk_gates, _mm, _precision

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@triton.jit
def _gelu(z):
    return 0.5 * z * (1.0 + tl.math.erf(z * _SQRT1_2))


@triton.jit
def _gelu_grad(z):
    return 0.5 * (1.0 + tl.math.erf(z * _SQRT1_2)) + z * tl.exp(-0.5 * z * z) * _INV_SQRT_2PI


@triton.jit
def _layer_norm(o, EPS, D: tl.constexpr):
    """``(normed, 1 / sigma)`` of the rows of ``o`` (LayerNorm without affine)."""
    centred = o - (tl.sum(o, axis=1) / D)[:, None]
    inv_sigma = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / D + EPS)
    return centred * inv_sigma[:, None], inv_sigma


@triton.jit
def _ln_backward(g, normed, inv_sigma, D: tl.constexpr):
    """``dL/do`` of ``normed = LN(o)`` given ``g = dL/dnormed`` (no affine)."""
    mean_g = tl.sum(g, axis=1) / D
    mean_gn = tl.sum(g * normed, axis=1) / D
    return (g - mean_g[:, None] - normed * mean_gn[:, None]) * inv_sigma[:, None]


@triton.jit
def _mlp_forward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w1, w2, s1, s2, y, z_scratch, a_scratch, d_scratch, w1c, w2c, s1c, s2c,
    N, T, EPS,
    D: tl.constexpr, E: tl.constexpr, BT: tl.constexpr, BE: tl.constexpr, P: tl.constexpr,
    SAVE: tl.constexpr,
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
        if SAVE:  # the chunk-start state, for the backward pass
            for eb in range(E // BE):
                cols = eb * BE + re
                p1 = rd[:, None] * E + cols[None, :]
                p2 = cols[:, None] * D + rd[None, :]
                saved = (i_bh * N + c) * D * E
                tl.store(w1c + saved + p1, tl.load(w1 + w1_base + p1))
                tl.store(s1c + saved + p1, tl.load(s1 + w1_base + p1))
                tl.store(w2c + saved + p2, tl.load(w2 + w2_base + p2))
                tl.store(s2c + saved + p2, tl.load(s2 + w2_base + p2))

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
        # LayerNorm, the error, and the LayerNorm's backward: d2.
        normed, inv_sigma = _layer_norm(o, EPS, D)
        err = kc + normed - vc
        d2 = _ln_backward(err, normed, inv_sigma, D)
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
        out = qc + _layer_norm(zq2, EPS, D)[0]
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


def _run_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gate_matrices: tuple[Tensor, ...],
    state: tuple[Tensor, ...],
    ln_eps: float,
    save: bool,
) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:
    """Run the forward kernel: fp32 ``y``, the state after the last chunk ``[W1, W2, S1, S2]``,
    the fp32 gate matrices, and (``save``) every chunk's start state for the backward."""
    b, h, t, d = q.shape
    e = state[0].shape[-1]
    n, bt = gate_matrices[0].shape[2], gate_matrices[0].shape[3]
    gates = [x.float().contiguous() for x in gate_matrices]
    final = [x.float().contiguous().clone() for x in state]
    y = torch.empty(b, h, t, d, dtype=torch.float32, device=q.device)
    scratch = [torch.empty(b * h, bt, e, dtype=torch.float32, device=q.device) for _ in range(3)]
    shape = (b * h, n, d * e) if save else (1,)
    chunks = [torch.empty(shape, dtype=torch.float32, device=q.device) for _ in range(4)]
    _mlp_forward_kernel[(b * h,)](
        q, k, v, *gates, *final, y, *scratch, *chunks,
        n, t, ln_eps, D=d, E=e, BT=bt, BE=min(e, 64), P=_precision(q), SAVE=save,
    )  # fmt: skip
    return y, final, gates, chunks


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
    q, k, v = (x.contiguous() for x in (q, k, v))
    y, (w1, w2, s1, s2), _, _ = _run_forward(
        q, k, v, gate_matrices, (*weights, *momentum), ln_eps, save=False
    )
    return y.to(q.dtype), (w1, w2), (s1, s2)


@triton.jit
def _gelu_grad2(z):
    return tl.exp(-0.5 * z * z) * _INV_SQRT_2PI * (2.0 - z * z)


@triton.jit
def _mlp_backward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w1c, w2c, s1c, s2c, dy, dw1, ds1, dw2, ds2, scratch,
    dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end,
    N, T, EPS,
    D: tl.constexpr, E: tl.constexpr, BT: tl.constexpr, BE: tl.constexpr, P: tl.constexpr,
):  # fmt: skip
    """Chunks in reverse. ``dw1, ds1, dw2, ds2`` hold two buffers each ([2, ...] per program):
    the gradient of the next chunk's start state (read) and of this chunk's (written)."""
    i_bh = tl.program_id(0)
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    re = tl.arange(0, BE)
    causal = rt[:, None] >= rt[None, :]
    size = D * E
    grad_base = i_bh * 2 * size
    sc = i_bh * 8 * BT * E  # scratch: Z1, A1, H, d1, Zq1, Aq1, dZq1, dA1 (each [BT, E])
    for step in range(N):
        c = N - 1 - step
        nxt = grad_base + (step % 2) * size  # gradients of the next chunk's start state
        cur = grad_base + ((step + 1) % 2) * size  # gradients of this chunk's start state
        tok = c * BT + rt
        seq = i_bh * T * D
        kc = tl.load(k + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        qc = tl.load(q + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        vc = tl.load(v + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        dyc = tl.load(dy + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        chunk = i_bh * N + c
        gm, fv, bv, ge, ce, fe, be, me = _load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk, BT
        )
        saved = chunk * size

        # -- recompute the forward of this chunk ---------------------------------------------
        o = tl.zeros((BT, D), dtype=tl.float32)
        for eb in range(E // BE):
            cols = eb * BE + re
            sp = sc + rt[:, None] * E + cols[None, :]
            w1b = tl.load(w1c + saved + rd[:, None] * E + cols[None, :])
            w2b = tl.load(w2c + saved + cols[:, None] * D + rd[None, :])
            z1 = _mm(kc, w1b, P)
            a1 = _gelu(z1)
            tl.store(scratch + sp, z1)
            tl.store(scratch + sp + BT * E, a1)
            o += _mm(a1, w2b, P)
        normed, inv_sigma = _layer_norm(o, EPS, D)
        err = kc + normed - vc
        d2 = _ln_backward(err, normed, inv_sigma, D)
        qk = _mm(qc, tl.trans(kc), P)
        bq = qk * gm
        zq2 = tl.zeros((BT, D), dtype=tl.float32)
        aa = tl.zeros((BT, BT), dtype=tl.float32)
        for eb in range(E // BE):
            cols = eb * BE + re
            sp = sc + rt[:, None] * E + cols[None, :]
            w1b = tl.load(w1c + saved + rd[:, None] * E + cols[None, :])
            s1b = tl.load(s1c + saved + rd[:, None] * E + cols[None, :])
            w2b = tl.load(w2c + saved + cols[:, None] * D + rd[None, :])
            s2b = tl.load(s2c + saved + cols[:, None] * D + rd[None, :])
            z1 = tl.load(scratch + sp)
            a1 = tl.load(scratch + sp + BT * E)
            hb = _mm(d2, tl.trans(w2b), P)
            d1 = hb * _gelu_grad(z1)
            tl.store(scratch + sp + 2 * BT * E, hb)
            tl.store(scratch + sp + 3 * BT * E, d1)
            zq1 = bv[:, None] * _mm(qc, w1b, P) + fv[:, None] * _mm(qc, s1b, P) - _mm(bq, d1, P)
            aq1 = _gelu(zq1)
            tl.store(scratch + sp + 4 * BT * E, zq1)
            tl.store(scratch + sp + 5 * BT * E, aq1)
            zq2 += bv[:, None] * _mm(aq1, w2b, P) + fv[:, None] * _mm(aq1, s2b, P)
            aa += _mm(aq1, tl.trans(a1), P)
        ba = aa * gm
        zq2 -= _mm(ba, d2, P)
        normed_q, inv_sigma_q = _layer_norm(zq2, EPS, D)

        # -- backward: the read ----------------------------------------------------------------
        dzq2 = _ln_backward(dyc, normed_q, inv_sigma_q, D)
        dqc = dyc
        dkc = tl.zeros((BT, D), dtype=tl.float32)
        dba = -_mm(dzq2, tl.trans(d2), P) * gm  # d(Aq1 A1^T), masked by G
        dgm = -_mm(dzq2, tl.trans(d2), P) * aa
        dd2 = -_mm(tl.trans(ba), dzq2, P)
        dbeta_acc = tl.zeros((BT,), dtype=tl.float32)
        df_acc = tl.zeros((BT,), dtype=tl.float32)
        dbq = tl.zeros((BT, BT), dtype=tl.float32)
        a1_dw2 = tl.zeros((BT, D), dtype=tl.float32)  # A1 dW2'
        a1_ds2 = tl.zeros((BT, D), dtype=tl.float32)  # A1 dS2'
        for eb in range(E // BE):
            cols = eb * BE + re
            sp = sc + rt[:, None] * E + cols[None, :]
            p1 = rd[:, None] * E + cols[None, :]
            p2 = cols[:, None] * D + rd[None, :]
            w1b, s1b = tl.load(w1c + saved + p1), tl.load(s1c + saved + p1)
            w2b, s2b = tl.load(w2c + saved + p2), tl.load(s2c + saved + p2)
            a1 = tl.load(scratch + sp + BT * E)
            d1 = tl.load(scratch + sp + 3 * BT * E)
            zq1 = tl.load(scratch + sp + 4 * BT * E)
            aq1 = tl.load(scratch + sp + 5 * BT * E)
            daq1 = (
                _mm(bv[:, None] * dzq2, tl.trans(w2b), P)
                + _mm(fv[:, None] * dzq2, tl.trans(s2b), P)
                + _mm(dba, a1, P)
            )
            dzq1 = daq1 * _gelu_grad(zq1)
            tl.store(scratch + sp + 6 * BT * E, dzq1)
            tl.store(scratch + sp + 7 * BT * E, _mm(tl.trans(dba), aq1, P))  # dA1, part 1
            dbeta_acc += tl.sum(_mm(aq1, w2b, P) * dzq2, axis=1)
            dbeta_acc += tl.sum(_mm(qc, w1b, P) * dzq1, axis=1)
            df_acc += tl.sum(_mm(aq1, s2b, P) * dzq2, axis=1)
            df_acc += tl.sum(_mm(qc, s1b, P) * dzq1, axis=1)
            dqc += _mm(bv[:, None] * dzq1, tl.trans(w1b), P)
            dqc += _mm(fv[:, None] * dzq1, tl.trans(s1b), P)
            dbq -= _mm(dzq1, tl.trans(d1), P)
            a1_dw2 += _mm(a1, tl.load(dw2 + nxt + p2), P)
            a1_ds2 += _mm(a1, tl.load(ds2 + nxt + p2), P)
            # This chunk's start-state gradients, first terms (read paths and carry-over).
            dw1n, ds1n = tl.load(dw1 + nxt + p1), tl.load(ds1 + nxt + p1)
            dw2n, ds2n = tl.load(dw2 + nxt + p2), tl.load(ds2 + nxt + p2)
            tl.store(dw1 + cur + p1, _mm(tl.trans(qc), bv[:, None] * dzq1, P) + be * dw1n)
            tl.store(
                ds1 + cur + p1, _mm(tl.trans(qc), fv[:, None] * dzq1, P) + fe * dw1n + me * ds1n
            )
            tl.store(dw2 + cur + p2, _mm(tl.trans(aq1), bv[:, None] * dzq2, P) + be * dw2n)
            tl.store(
                ds2 + cur + p2, _mm(tl.trans(aq1), fv[:, None] * dzq2, P) + fe * dw2n + me * ds2n
            )
        dbq_g = dbq * gm
        dqc += _mm(dbq_g, kc, P)
        dkc += _mm(tl.trans(dbq_g), qc, P)
        dgm += dbq * qk
        # Chunk-end state through d2 and A1 (W2', S2').
        dd2 += -ge[:, None] * a1_dw2 - ce[:, None] * a1_ds2
        dge = -tl.sum(a1_dw2 * d2, axis=1)
        dce = -tl.sum(a1_ds2 * d2, axis=1)
        dbe = tl.sum(tl.zeros((BT,), dtype=tl.float32), axis=0)
        dfe = tl.sum(tl.zeros((BT,), dtype=tl.float32), axis=0)
        dme = tl.sum(tl.zeros((BT,), dtype=tl.float32), axis=0)

        # -- backward: the surprise factors d1 = (d2 W2^T) * gelu'(Z1) and the state ends ----
        for eb in range(E // BE):
            cols = eb * BE + re
            sp = sc + rt[:, None] * E + cols[None, :]
            p1 = rd[:, None] * E + cols[None, :]
            p2 = cols[:, None] * D + rd[None, :]
            w1b, s1b = tl.load(w1c + saved + p1), tl.load(s1c + saved + p1)
            w2b, s2b = tl.load(w2c + saved + p2), tl.load(s2c + saved + p2)
            z1 = tl.load(scratch + sp)
            hb = tl.load(scratch + sp + 2 * BT * E)
            d1 = tl.load(scratch + sp + 3 * BT * E)
            dzq1 = tl.load(scratch + sp + 6 * BT * E)
            dw1n, ds1n = tl.load(dw1 + nxt + p1), tl.load(ds1 + nxt + p1)
            dw2n, ds2n = tl.load(dw2 + nxt + p2), tl.load(ds2 + nxt + p2)
            k_dw1 = _mm(kc, dw1n, P)
            k_ds1 = _mm(kc, ds1n, P)
            dd1 = -_mm(tl.trans(bq), dzq1, P) - ge[:, None] * k_dw1 - ce[:, None] * k_ds1
            dge -= tl.sum(k_dw1 * d1, axis=1)
            dce -= tl.sum(k_ds1 * d1, axis=1)
            dkc -= _mm(ge[:, None] * d1, tl.trans(dw1n), P) + _mm(
                ce[:, None] * d1, tl.trans(ds1n), P
            )
            dbe += tl.sum(tl.sum(w1b * dw1n, axis=1), axis=0)
            dbe += tl.sum(tl.sum(w2b * dw2n, axis=1), axis=0)
            dfe += tl.sum(tl.sum(s1b * dw1n, axis=1), axis=0)
            dfe += tl.sum(tl.sum(s2b * dw2n, axis=1), axis=0)
            dme += tl.sum(tl.sum(s1b * ds1n, axis=1), axis=0)
            dme += tl.sum(tl.sum(s2b * ds2n, axis=1), axis=0)
            dh = dd1 * _gelu_grad(z1)
            dz1_part = dd1 * hb * _gelu_grad2(z1)
            tl.store(scratch + sp + 2 * BT * E, dz1_part)  # H no longer needed
            dd2 += _mm(dh, w2b, P)
            # dW2 (this chunk) += dH^T d2; dA1 += -(g d2) dW2'^T - (c d2) dS2'^T
            tl.store(dw2 + cur + p2, tl.load(dw2 + cur + p2) + _mm(tl.trans(dh), d2, P))
            da1 = tl.load(scratch + sp + 7 * BT * E)
            da1 -= _mm(ge[:, None] * d2, tl.trans(dw2n), P) + _mm(
                ce[:, None] * d2, tl.trans(ds2n), P
            )
            tl.store(scratch + sp + 7 * BT * E, da1)

        # -- d2 = LN'(O)^T err: back to err, the normalised keys' output and sigma --------------
        mean_rn = tl.sum(err * normed, axis=1) / D
        derr = _ln_backward(dd2, normed, inv_sigma, D)
        mean_dn = tl.sum(dd2 * normed, axis=1) / D
        dnormed = derr - inv_sigma[:, None] * (mean_rn[:, None] * dd2 + err * mean_dn[:, None])
        dsigma = -tl.sum(dd2 * d2, axis=1) * inv_sigma
        do = _ln_backward(dnormed, normed, inv_sigma, D) + (dsigma / D)[:, None] * normed
        dkc += derr
        tl.store(dv + seq + tok[:, None] * D + rd[None, :], -derr)

        for eb in range(E // BE):
            cols = eb * BE + re
            sp = sc + rt[:, None] * E + cols[None, :]
            p1 = rd[:, None] * E + cols[None, :]
            p2 = cols[:, None] * D + rd[None, :]
            w1b = tl.load(w1c + saved + p1)
            w2b = tl.load(w2c + saved + p2)
            z1 = tl.load(scratch + sp)
            a1 = tl.load(scratch + sp + BT * E)
            da1 = tl.load(scratch + sp + 7 * BT * E) + _mm(do, tl.trans(w2b), P)
            dz1 = tl.load(scratch + sp + 2 * BT * E) + da1 * _gelu_grad(z1)
            dkc += _mm(dz1, tl.trans(w1b), P)
            tl.store(dw1 + cur + p1, tl.load(dw1 + cur + p1) + _mm(tl.trans(kc), dz1, P))
            tl.store(dw2 + cur + p2, tl.load(dw2 + cur + p2) + _mm(tl.trans(a1), do, P))

        tl.store(dq + seq + tok[:, None] * D + rd[None, :], dqc)
        tl.store(dk + seq + tok[:, None] * D + rd[None, :], dkc)
        gate = chunk * BT
        tl.store(dG + (gate + rt[:, None]) * BT + rt[None, :], tl.where(causal, dgm, 0.0))
        tl.store(dbeta + gate + rt, dbeta_acc)
        tl.store(df + gate + rt, df_acc)
        tl.store(dg_end + gate + rt, dge)
        tl.store(dc_end + gate + rt, dce)
        tl.store(dbeta_end + chunk, dbe)
        tl.store(df_end + chunk, dfe)
        tl.store(dm_end + chunk, dme)


class MLPChunkFunction(torch.autograd.Function):
    """The chunked MLP Titans memory (depth 2) given its gate matrices, forward and backward.

    Shapes as for :class:`~titans_sci.kernels.linear.LinearChunkFunction`, with the state
    ``w1, s1: [B, H, D, E]`` and ``w2, s2: [B, H, E, D]``. Returns ``y`` and the fp32 state.
    """

    @staticmethod
    def forward(
        ctx, q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end, w1, w2, s1, s2, eps
    ):
        q, k, v = (x.contiguous() for x in (q, k, v))
        matrices = (G, f, beta, g_end, c_end, f_end, beta_end, m_end)
        y, state, gates, chunks = _run_forward(q, k, v, matrices, (w1, w2, s1, s2), eps, save=True)
        ctx.save_for_backward(q, k, v, *gates, *chunks)
        ctx.eps = eps
        ctx.dtypes = [x.dtype for x in (G, f, beta, g_end, c_end, f_end, beta_end, m_end, w1, w2)]
        return y.to(q.dtype), *state

    @staticmethod
    def backward(ctx, dy, dw1_out, dw2_out, ds1_out, ds2_out):
        q, k, v, *rest = ctx.saved_tensors
        gates, chunks = rest[:8], rest[8:]
        b, h, t, d = q.shape
        n, bt = gates[0].shape[2], gates[0].shape[3]
        e = chunks[0].shape[-1] // d
        dev = q.device

        def grad_or_zeros(x: Tensor | None, shape: tuple[int, ...]) -> Tensor:
            return torch.zeros(shape, device=dev) if x is None else x.float().contiguous()

        dy = grad_or_zeros(dy, (b, h, t, d))
        # Two buffers per state gradient: buffer 0 starts as the gradient of the final state.
        grads = []
        for x, shape in (
            (dw1_out, (d, e)),
            (ds1_out, (d, e)),
            (dw2_out, (e, d)),
            (ds2_out, (e, d)),
        ):
            buf = torch.zeros(b * h, 2, *shape, device=dev)
            buf[:, 0] = grad_or_zeros(x, (b, h, *shape)).reshape(b * h, *shape)
            grads.append(buf)
        scratch = torch.empty(b * h, 8, bt, e, device=dev)
        dq, dk, dv = (torch.empty(b, h, t, d, device=dev) for _ in range(3))
        dG = torch.empty(b, h, n, bt, bt, device=dev)
        df, dbeta, dg_end, dc_end = (torch.empty(b, h, n, bt, device=dev) for _ in range(4))
        df_end, dbeta_end, dm_end = (torch.empty(b, h, n, device=dev) for _ in range(3))
        w1c, w2c, s1c, s2c = chunks
        _mlp_backward_kernel[(b * h,)](
            q, k, v, *gates, w1c, w2c, s1c, s2c, dy, *grads, scratch,
            dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end,
            n, t, ctx.eps, D=d, E=e, BT=bt, BE=min(e, 64), P=_precision(q),
        )  # fmt: skip
        last = n % 2  # after n steps, this chunk's buffer index is (n - 1 + 1) % 2
        dw1_0, ds1_0, dw2_0, ds2_0 = (g[:, last] for g in grads)
        gate_grads = [
            x.to(dtype)
            for x, dtype in zip(
                (dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end), ctx.dtypes, strict=False
            )
        ]
        state_dtype = ctx.dtypes[8]
        shapes = ((b, h, d, e), (b, h, e, d), (b, h, d, e), (b, h, e, d))
        states = [
            x.reshape(shape).to(state_dtype)
            for x, shape in zip((dw1_0, dw2_0, ds1_0, ds2_0), shapes, strict=True)
        ]
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), *gate_grads, *states, None
