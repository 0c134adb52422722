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
large to stay on chip, so it lives in the output buffers and is streamed through in ``NE``
blocks of ``BE`` hidden units; ``Z1, A1, d1`` of the chunk go through a per-program scratch
buffer (``[BT, NE * BE]``: whole blocks, so it needs no masks). Plain GD (``MOMENTUM`` off)
drops ``S1, S2`` and every ``f, c, f_n, m_n`` term at compile time. :func:`mlp_forward` runs it
without autograd; :class:`MLPChunkFunction` also keeps every chunk's start state and runs the
backward kernel, which walks the chunks in reverse: it recomputes the chunk's forward, then
back-propagates through the reads (LayerNorm, GELU, the dual form), the surprise factors (whose
own gradient needs the LayerNorm's and GELU's second derivatives) and the keys' forward, and
hands the start state's gradient to the previous chunk (two buffers per state matrix,
alternating). Head dims, hidden widths and chunks that are no powers of two run masked (see
:mod:`titans_sci.kernels.common`); the LayerNorms mask their padded columns.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .common import (
    block,
    load_chunk_gates,
    matmul,
    new_buffer,
    precision,
    program_index,
    token_rows,
)

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@triton.jit
def _gelu(z):
    return 0.5 * z * (1.0 + tl.math.erf(z * _SQRT1_2))


@triton.jit
def _gelu_grad(z):
    return 0.5 * (1.0 + tl.math.erf(z * _SQRT1_2)) + z * tl.exp(-0.5 * z * z) * _INV_SQRT_2PI


@triton.jit
def _gelu_grad2(z):
    return tl.exp(-0.5 * z * z) * _INV_SQRT_2PI * (2.0 - z * z)


@triton.jit
def _layer_norm(o, EPS, D: tl.constexpr, BD: tl.constexpr):
    """``(normed, 1 / sigma)`` of the rows of ``o: [BT, BD]`` over its first ``D`` columns
    (LayerNorm without affine); padded columns of ``normed`` are 0."""
    in_d = tl.arange(0, BD) < D
    centred = tl.where(in_d[None, :], o - (tl.sum(o, axis=1) / D)[:, None], 0.0)
    inv_sigma = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / D + EPS)
    return centred * inv_sigma[:, None], inv_sigma


@triton.jit
def _ln_backward(g, normed, inv_sigma, D: tl.constexpr, BD: tl.constexpr):
    """``dL/do`` of ``normed = LN(o)`` given ``g = dL/dnormed`` (no affine); padded columns 0."""
    in_d = tl.arange(0, BD) < D
    mean_g = tl.sum(g, axis=1) / D
    mean_gn = tl.sum(g * normed, axis=1) / D
    grad = (g - mean_g[:, None] - normed * mean_gn[:, None]) * inv_sigma[:, None]
    return tl.where(in_d[None, :], grad, 0.0)


@triton.jit
def _state_block(eb, D: tl.constexpr, E: tl.constexpr, BD: tl.constexpr, BE: tl.constexpr):
    """Hidden block ``eb``: its columns ``[BE]``, and the offsets and masks of its slices of a
    ``[D, E]`` matrix (``[BD, BE]``) and of an ``[E, D]`` matrix (``[BE, BD]``), row-major."""
    rd = tl.arange(0, BD)
    cols = eb * BE + tl.arange(0, BE)
    in_d, in_e = rd < D, cols < E
    p1 = rd[:, None] * E + cols[None, :]
    p2 = cols[:, None] * D + rd[None, :]
    return cols, p1, in_d[:, None] & in_e[None, :], p2, in_e[:, None] & in_d[None, :]


@triton.jit
def mlp_memory_forward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w1, w2, s1, s2, y, z_scratch, a_scratch, d_scratch, w1c, w2c, s1c, s2c,
    N, T, EPS,
    D: tl.constexpr, E: tl.constexpr, CHUNK: tl.constexpr, BD: tl.constexpr,
    BT: tl.constexpr, BE: tl.constexpr, NE: tl.constexpr, P: tl.constexpr,
    MOMENTUM: tl.constexpr, SAVE: tl.constexpr,
):  # fmt: skip
    """Program ``i_bh``: the reads ``y`` of one batch x head, chunk by chunk, updating the state
    ``w1, w2, s1, s2`` in place (it enters as the initial state, leaves as the final one);
    with ``SAVE``, every chunk's start state to ``w1c, w2c, s1c, s2c``."""
    i_bh = program_index(0)
    rd = tl.arange(0, BD)
    rt = tl.arange(0, BT)
    in_d = rd < D
    state = i_bh * D * E  # W1, S1: [D, E]; W2, S2: [E, D]; both row-major
    scratch = i_bh * BT * (NE * BE)
    seq = i_bh * T * D
    for c in range(N):
        tok, in_t = token_rows(c, CHUNK, BT)
        rows = seq + tok[:, None] * D + rd[None, :]
        in_td = in_t[:, None] & in_d[None, :]
        kc = tl.load(k + rows, mask=in_td, other=0.0).to(tl.float32)
        qc = tl.load(q + rows, mask=in_td, other=0.0).to(tl.float32)
        vc = tl.load(v + rows, mask=in_td, other=0.0).to(tl.float32)
        chunk = i_bh * N + c
        gm, fv, bv, ge, ce, fe, be, me = load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk, CHUNK, BT, MOMENTUM
        )
        if SAVE:  # the chunk-start state, for the backward pass
            saved = chunk * D * E
            for eb in range(NE):
                _, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
                tl.store(w1c + saved + p1, tl.load(w1 + state + p1, mask=m1), mask=m1)
                tl.store(w2c + saved + p2, tl.load(w2 + state + p2, mask=m2), mask=m2)
                if MOMENTUM:
                    tl.store(s1c + saved + p1, tl.load(s1 + state + p1, mask=m1), mask=m1)
                    tl.store(s2c + saved + p2, tl.load(s2 + state + p2, mask=m2), mask=m2)

        # Keys through the chunk-start memory: Z1, A1 to scratch, O accumulated.
        o = tl.zeros((BT, BD), dtype=tl.float32)
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = scratch + rt[:, None] * (NE * BE) + cols[None, :]
            w1b = tl.load(w1 + state + p1, mask=m1, other=0.0)
            w2b = tl.load(w2 + state + p2, mask=m2, other=0.0)
            z1 = matmul(kc, w1b, P)
            a1 = _gelu(z1)
            tl.store(z_scratch + sp, z1)
            tl.store(a_scratch + sp, a1)
            o += matmul(a1, w2b, P)
        # LayerNorm, the error, and the LayerNorm's backward: d2.
        normed, inv_sigma = _layer_norm(o, EPS, D, BD)
        err = kc + normed - vc
        d2 = _ln_backward(err, normed, inv_sigma, D, BD)
        # d1 = (d2 W2^T) * gelu'(Z1), block by block, to scratch.
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = scratch + rt[:, None] * (NE * BE) + cols[None, :]
            w2b = tl.load(w2 + state + p2, mask=m2, other=0.0)
            d1 = matmul(d2, tl.trans(w2b), P) * _gelu_grad(tl.load(z_scratch + sp))
            tl.store(d_scratch + sp, d1)

        # Reads of the queries through the per-token weights (dual form).
        qk = matmul(qc, tl.trans(kc), P) * gm
        zq2 = tl.zeros((BT, BD), dtype=tl.float32)
        aa = tl.zeros((BT, BT), dtype=tl.float32)
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = scratch + rt[:, None] * (NE * BE) + cols[None, :]
            w1b = tl.load(w1 + state + p1, mask=m1, other=0.0)
            w2b = tl.load(w2 + state + p2, mask=m2, other=0.0)
            d1 = tl.load(d_scratch + sp)
            a1 = tl.load(a_scratch + sp)
            zq1 = bv[:, None] * matmul(qc, w1b, P) - matmul(qk, d1, P)
            if MOMENTUM:
                zq1 += fv[:, None] * matmul(qc, tl.load(s1 + state + p1, mask=m1, other=0.0), P)
            aq1 = _gelu(zq1)
            zq2 += bv[:, None] * matmul(aq1, w2b, P)
            if MOMENTUM:
                zq2 += fv[:, None] * matmul(aq1, tl.load(s2 + state + p2, mask=m2, other=0.0), P)
            aa += matmul(aq1, tl.trans(a1), P)
        zq2 -= matmul(aa * gm, d2, P)
        out = qc + _layer_norm(zq2, EPS, D, BD)[0]
        tl.store(y + rows, out, mask=in_td)

        # State at the chunk end, block by block, in place.
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = scratch + rt[:, None] * (NE * BE) + cols[None, :]
            w1b = tl.load(w1 + state + p1, mask=m1, other=0.0)
            w2b = tl.load(w2 + state + p2, mask=m2, other=0.0)
            d1 = tl.load(d_scratch + sp)
            a1 = tl.load(a_scratch + sp)
            w1n = be * w1b - matmul(tl.trans(kc), ge[:, None] * d1, P)
            w2n = be * w2b - matmul(tl.trans(a1), ge[:, None] * d2, P)
            if MOMENTUM:
                s1b = tl.load(s1 + state + p1, mask=m1, other=0.0)
                s2b = tl.load(s2 + state + p2, mask=m2, other=0.0)
                w1n += fe * s1b
                w2n += fe * s2b
                s1n = me * s1b - matmul(tl.trans(kc), ce[:, None] * d1, P)
                s2n = me * s2b - matmul(tl.trans(a1), ce[:, None] * d2, P)
                tl.store(s1 + state + p1, s1n, mask=m1)
                tl.store(s2 + state + p2, s2n, mask=m2)
            tl.store(w1 + state + p1, w1n, mask=m1)
            tl.store(w2 + state + p2, w2n, mask=m2)


def _hidden_blocks(e: int) -> tuple[int, int]:
    """``(BE, NE)``: hidden units per block (up to 64) and the number of blocks."""
    be = min(block(e), 64)
    return be, triton.cdiv(e, be)


def _run_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gate_matrices: tuple[Tensor, ...],
    weights: tuple[Tensor, Tensor],
    momentum: tuple[Tensor, Tensor] | None,
    ln_eps: float,
    save: bool,
) -> tuple[Tensor, list[Tensor], list[Tensor | None], list[Tensor], list[Tensor | None]]:
    """Run the forward kernel: fp32 ``y``, the weights ``[W1, W2]`` and momenta ``[S1, S2]``
    (``None`` for plain GD) after the last chunk, the fp32 gate matrices, and (``save``) every
    chunk's start state ``[W1, W2, S1, S2]`` for the backward (``[B x H, N, D x E]``)."""
    b, h, t, d = q.shape
    e = weights[0].shape[-1]
    n, chunk = gate_matrices[0].shape[2], gate_matrices[0].shape[3]
    dev = q.device
    has_momentum = momentum is not None
    gates = [x.float().contiguous() for x in gate_matrices]
    final = [x.float().contiguous().clone() for x in weights]
    final_s: list[Tensor | None] = [None, None]
    if momentum is not None:
        final_s = [x.float().contiguous().clone() for x in momentum]
    y = new_buffer(b, h, t, d, device=dev)
    be, ne = _hidden_blocks(e)
    bt = block(chunk)
    scratch = [new_buffer(b * h, bt, ne * be, device=dev) for _ in range(3)]
    chunks: list[Tensor | None] = [
        new_buffer(b * h, n, d * e, device=dev) if save and (i < 2 or has_momentum) else None
        for i in range(4)
    ]
    mlp_memory_forward_kernel[(b * h,)](
        q, k, v, *gates, *final, *final_s, y, *scratch, *chunks, n, t, ln_eps,
        D=d, E=e, CHUNK=chunk, BD=block(d), BT=bt, BE=be, NE=ne, P=precision(q),
        MOMENTUM=has_momentum, SAVE=save,
    )  # fmt: skip
    return y, final, final_s, gates, chunks


def mlp_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gate_matrices: tuple[Tensor, ...],
    weights: tuple[Tensor, Tensor],
    momentum: tuple[Tensor, Tensor] | None,
    ln_eps: float,
) -> tuple[Tensor, tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None]:
    """Reads ``y: [B, H, T, D]`` and the fp32 state after the last chunk (no autograd).

    ``q, k, v: [B, H, T, D]`` padded to whole chunks; ``gate_matrices`` as for the linear
    kernel; ``weights = (W1 [B, H, D, E], W2 [B, H, E, D])`` and ``momentum`` alike, or ``None``
    for plain GD."""
    q, k, v = (x.contiguous() for x in (q, k, v))
    y, (w1, w2), (s1, s2), _, _ = _run_forward(
        q, k, v, gate_matrices, weights, momentum, ln_eps, save=False
    )
    return y.to(q.dtype), (w1, w2), None if s1 is None or s2 is None else (s1, s2)


@triton.jit
def mlp_memory_backward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w1c, w2c, s1c, s2c, dy, dw1, ds1, dw2, ds2, scratch,
    dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end,
    N, T, EPS,
    D: tl.constexpr, E: tl.constexpr, CHUNK: tl.constexpr, BD: tl.constexpr,
    BT: tl.constexpr, BE: tl.constexpr, NE: tl.constexpr, P: tl.constexpr,
    MOMENTUM: tl.constexpr,
):  # fmt: skip
    """Program ``i_bh``, chunks in reverse. ``dw1, ds1, dw2, ds2`` hold two buffers each ([2,
    ...] per program): the gradient of the next chunk's start state (read) and of this chunk's
    (written)."""
    i_bh = program_index(0)
    rd = tl.arange(0, BD)
    rt = tl.arange(0, BT)
    in_d = rd < D
    in_chunk = rt < CHUNK
    causal = rt[:, None] >= rt[None, :]
    size = D * E
    grad_base = i_bh * 2 * size
    EP = NE * BE  # scratch row stride
    slot = BT * EP
    sc = i_bh * 8 * slot  # scratch: Z1, A1, H, d1, Zq1, Aq1, dZq1, dA1 (each [BT, EP])
    seq = i_bh * T * D
    for step in range(N):
        c = N - 1 - step
        nxt = grad_base + (step % 2) * size  # gradients of the next chunk's start state
        cur = grad_base + ((step + 1) % 2) * size  # gradients of this chunk's start state
        tok, in_t = token_rows(c, CHUNK, BT)
        rows = seq + tok[:, None] * D + rd[None, :]
        in_td = in_t[:, None] & in_d[None, :]
        kc = tl.load(k + rows, mask=in_td, other=0.0).to(tl.float32)
        qc = tl.load(q + rows, mask=in_td, other=0.0).to(tl.float32)
        vc = tl.load(v + rows, mask=in_td, other=0.0).to(tl.float32)
        dyc = tl.load(dy + rows, mask=in_td, other=0.0).to(tl.float32)
        chunk = i_bh * N + c
        gm, fv, bv, ge, ce, fe, be, me = load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk, CHUNK, BT, MOMENTUM
        )
        saved = chunk * size

        # -- recompute the forward of this chunk ---------------------------------------------
        o = tl.zeros((BT, BD), dtype=tl.float32)
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = sc + rt[:, None] * EP + cols[None, :]
            w1b = tl.load(w1c + saved + p1, mask=m1, other=0.0)
            w2b = tl.load(w2c + saved + p2, mask=m2, other=0.0)
            z1 = matmul(kc, w1b, P)
            a1 = _gelu(z1)
            tl.store(scratch + sp, z1)
            tl.store(scratch + sp + slot, a1)
            o += matmul(a1, w2b, P)
        normed, inv_sigma = _layer_norm(o, EPS, D, BD)
        err = kc + normed - vc
        d2 = _ln_backward(err, normed, inv_sigma, D, BD)
        qk = matmul(qc, tl.trans(kc), P)
        bq = qk * gm
        zq2 = tl.zeros((BT, BD), dtype=tl.float32)
        aa = tl.zeros((BT, BT), dtype=tl.float32)
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = sc + rt[:, None] * EP + cols[None, :]
            w1b = tl.load(w1c + saved + p1, mask=m1, other=0.0)
            w2b = tl.load(w2c + saved + p2, mask=m2, other=0.0)
            z1 = tl.load(scratch + sp)
            a1 = tl.load(scratch + sp + slot)
            hb = matmul(d2, tl.trans(w2b), P)
            d1 = hb * _gelu_grad(z1)
            tl.store(scratch + sp + 2 * slot, hb)
            tl.store(scratch + sp + 3 * slot, d1)
            zq1 = bv[:, None] * matmul(qc, w1b, P) - matmul(bq, d1, P)
            if MOMENTUM:
                s1b = tl.load(s1c + saved + p1, mask=m1, other=0.0)
                zq1 += fv[:, None] * matmul(qc, s1b, P)
            aq1 = _gelu(zq1)
            tl.store(scratch + sp + 4 * slot, zq1)
            tl.store(scratch + sp + 5 * slot, aq1)
            zq2 += bv[:, None] * matmul(aq1, w2b, P)
            if MOMENTUM:
                s2b = tl.load(s2c + saved + p2, mask=m2, other=0.0)
                zq2 += fv[:, None] * matmul(aq1, s2b, P)
            aa += matmul(aq1, tl.trans(a1), P)
        ba = aa * gm
        zq2 -= matmul(ba, d2, P)
        normed_q, inv_sigma_q = _layer_norm(zq2, EPS, D, BD)

        # -- backward: the read ----------------------------------------------------------------
        dzq2 = _ln_backward(dyc, normed_q, inv_sigma_q, D, BD)
        dqc = dyc
        dkc = tl.zeros((BT, BD), dtype=tl.float32)
        dzq2_d2 = -matmul(dzq2, tl.trans(d2), P)
        dba = dzq2_d2 * gm  # d(Aq1 A1^T), masked by G
        dgm = dzq2_d2 * aa
        dd2 = -matmul(tl.trans(ba), dzq2, P)
        dbeta_acc = tl.zeros((BT,), dtype=tl.float32)
        df_acc = tl.zeros((BT,), dtype=tl.float32)
        dbq = tl.zeros((BT, BT), dtype=tl.float32)
        a1_dw2 = tl.zeros((BT, BD), dtype=tl.float32)  # A1 dW2'
        a1_ds2 = tl.zeros((BT, BD), dtype=tl.float32)  # A1 dS2'
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = sc + rt[:, None] * EP + cols[None, :]
            w1b = tl.load(w1c + saved + p1, mask=m1, other=0.0)
            w2b = tl.load(w2c + saved + p2, mask=m2, other=0.0)
            a1 = tl.load(scratch + sp + slot)
            d1 = tl.load(scratch + sp + 3 * slot)
            zq1 = tl.load(scratch + sp + 4 * slot)
            aq1 = tl.load(scratch + sp + 5 * slot)
            daq1 = matmul(bv[:, None] * dzq2, tl.trans(w2b), P) + matmul(dba, a1, P)
            if MOMENTUM:
                s2b = tl.load(s2c + saved + p2, mask=m2, other=0.0)
                daq1 += matmul(fv[:, None] * dzq2, tl.trans(s2b), P)
            dzq1 = daq1 * _gelu_grad(zq1)
            tl.store(scratch + sp + 6 * slot, dzq1)
            tl.store(scratch + sp + 7 * slot, matmul(tl.trans(dba), aq1, P))  # dA1, part 1
            dbeta_acc += tl.sum(matmul(aq1, w2b, P) * dzq2, axis=1)
            dbeta_acc += tl.sum(matmul(qc, w1b, P) * dzq1, axis=1)
            dqc += matmul(bv[:, None] * dzq1, tl.trans(w1b), P)
            dbq -= matmul(dzq1, tl.trans(d1), P)
            dw2n = tl.load(dw2 + nxt + p2, mask=m2, other=0.0)
            dw1n = tl.load(dw1 + nxt + p1, mask=m1, other=0.0)
            a1_dw2 += matmul(a1, dw2n, P)
            # This chunk's start-state gradients, first terms (read paths and carry-over).
            dw1c = matmul(tl.trans(qc), bv[:, None] * dzq1, P) + be * dw1n
            dw2c = matmul(tl.trans(aq1), bv[:, None] * dzq2, P) + be * dw2n
            tl.store(dw1 + cur + p1, dw1c, mask=m1)
            tl.store(dw2 + cur + p2, dw2c, mask=m2)
            if MOMENTUM:
                s1b = tl.load(s1c + saved + p1, mask=m1, other=0.0)
                df_acc += tl.sum(matmul(aq1, s2b, P) * dzq2, axis=1)
                df_acc += tl.sum(matmul(qc, s1b, P) * dzq1, axis=1)
                dqc += matmul(fv[:, None] * dzq1, tl.trans(s1b), P)
                ds1n = tl.load(ds1 + nxt + p1, mask=m1, other=0.0)
                ds2n = tl.load(ds2 + nxt + p2, mask=m2, other=0.0)
                a1_ds2 += matmul(a1, ds2n, P)
                ds1c = matmul(tl.trans(qc), fv[:, None] * dzq1, P) + fe * dw1n + me * ds1n
                ds2c = matmul(tl.trans(aq1), fv[:, None] * dzq2, P) + fe * dw2n + me * ds2n
                tl.store(ds1 + cur + p1, ds1c, mask=m1)
                tl.store(ds2 + cur + p2, ds2c, mask=m2)
        dbq_g = dbq * gm
        dqc += matmul(dbq_g, kc, P)
        dkc += matmul(tl.trans(dbq_g), qc, P)
        dgm += dbq * qk
        # Chunk-end state through d2 and A1 (W2', S2').
        dd2 += -ge[:, None] * a1_dw2 - ce[:, None] * a1_ds2
        dge = -tl.sum(a1_dw2 * d2, axis=1)
        dce = -tl.sum(a1_ds2 * d2, axis=1)
        dbe = tl.sum(tl.zeros((BT,), dtype=tl.float32), axis=0)
        dfe = tl.sum(tl.zeros((BT,), dtype=tl.float32), axis=0)
        dme = tl.sum(tl.zeros((BT,), dtype=tl.float32), axis=0)

        # -- backward: the surprise factors d1 = (d2 W2^T) * gelu'(Z1) and the state ends ----
        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = sc + rt[:, None] * EP + cols[None, :]
            w1b = tl.load(w1c + saved + p1, mask=m1, other=0.0)
            w2b = tl.load(w2c + saved + p2, mask=m2, other=0.0)
            z1 = tl.load(scratch + sp)
            hb = tl.load(scratch + sp + 2 * slot)
            d1 = tl.load(scratch + sp + 3 * slot)
            dzq1 = tl.load(scratch + sp + 6 * slot)
            dw1n = tl.load(dw1 + nxt + p1, mask=m1, other=0.0)
            dw2n = tl.load(dw2 + nxt + p2, mask=m2, other=0.0)
            k_dw1 = matmul(kc, dw1n, P)
            dd1 = -matmul(tl.trans(bq), dzq1, P) - ge[:, None] * k_dw1
            dge -= tl.sum(k_dw1 * d1, axis=1)
            dkc -= matmul(ge[:, None] * d1, tl.trans(dw1n), P)
            dbe += tl.sum(tl.sum(w1b * dw1n, axis=1), axis=0)
            dbe += tl.sum(tl.sum(w2b * dw2n, axis=1), axis=0)
            # dA1 += -(g d2) dW2'^T - (c d2) dS2'^T
            da1 = tl.load(scratch + sp + 7 * slot) - matmul(ge[:, None] * d2, tl.trans(dw2n), P)
            if MOMENTUM:
                s1b = tl.load(s1c + saved + p1, mask=m1, other=0.0)
                s2b = tl.load(s2c + saved + p2, mask=m2, other=0.0)
                ds1n = tl.load(ds1 + nxt + p1, mask=m1, other=0.0)
                ds2n = tl.load(ds2 + nxt + p2, mask=m2, other=0.0)
                k_ds1 = matmul(kc, ds1n, P)
                dd1 -= ce[:, None] * k_ds1
                dce -= tl.sum(k_ds1 * d1, axis=1)
                dkc -= matmul(ce[:, None] * d1, tl.trans(ds1n), P)
                dfe += tl.sum(tl.sum(s1b * dw1n, axis=1), axis=0)
                dfe += tl.sum(tl.sum(s2b * dw2n, axis=1), axis=0)
                dme += tl.sum(tl.sum(s1b * ds1n, axis=1), axis=0)
                dme += tl.sum(tl.sum(s2b * ds2n, axis=1), axis=0)
                da1 -= matmul(ce[:, None] * d2, tl.trans(ds2n), P)
            dh = dd1 * _gelu_grad(z1)
            tl.store(scratch + sp + 2 * slot, dd1 * hb * _gelu_grad2(z1))  # H no longer needed
            dd2 += matmul(dh, w2b, P)
            # dW2 (this chunk) += dH^T d2
            dw2c = tl.load(dw2 + cur + p2, mask=m2, other=0.0) + matmul(tl.trans(dh), d2, P)
            tl.store(dw2 + cur + p2, dw2c, mask=m2)
            tl.store(scratch + sp + 7 * slot, da1)

        # -- d2 = LN'(O)^T err: back to err, the normalised keys' output and sigma --------------
        mean_rn = tl.sum(err * normed, axis=1) / D
        derr = _ln_backward(dd2, normed, inv_sigma, D, BD)
        mean_dn = tl.sum(dd2 * normed, axis=1) / D
        dnormed = derr - inv_sigma[:, None] * (mean_rn[:, None] * dd2 + err * mean_dn[:, None])
        dsigma = -tl.sum(dd2 * d2, axis=1) * inv_sigma
        do = _ln_backward(dnormed, normed, inv_sigma, D, BD) + (dsigma / D)[:, None] * normed
        dkc += derr
        tl.store(dv + rows, -derr, mask=in_td)

        for eb in range(NE):
            cols, p1, m1, p2, m2 = _state_block(eb, D, E, BD, BE)
            sp = sc + rt[:, None] * EP + cols[None, :]
            w1b = tl.load(w1c + saved + p1, mask=m1, other=0.0)
            w2b = tl.load(w2c + saved + p2, mask=m2, other=0.0)
            z1 = tl.load(scratch + sp)
            a1 = tl.load(scratch + sp + slot)
            da1 = tl.load(scratch + sp + 7 * slot) + matmul(do, tl.trans(w2b), P)
            dz1 = tl.load(scratch + sp + 2 * slot) + da1 * _gelu_grad(z1)
            dkc += matmul(dz1, tl.trans(w1b), P)
            dw1c = tl.load(dw1 + cur + p1, mask=m1, other=0.0) + matmul(tl.trans(kc), dz1, P)
            dw2c = tl.load(dw2 + cur + p2, mask=m2, other=0.0) + matmul(tl.trans(a1), do, P)
            tl.store(dw1 + cur + p1, dw1c, mask=m1)
            tl.store(dw2 + cur + p2, dw2c, mask=m2)

        tl.store(dq + rows, dqc, mask=in_td)
        tl.store(dk + rows, dkc, mask=in_td)
        gate = chunk * CHUNK
        tl.store(
            dG + (gate + rt[:, None]) * CHUNK + rt[None, :],
            tl.where(causal, dgm, 0.0),
            mask=in_chunk[:, None] & in_chunk[None, :],
        )
        tl.store(dbeta + gate + rt, dbeta_acc, mask=in_chunk)
        tl.store(dg_end + gate + rt, dge, mask=in_chunk)
        tl.store(dbeta_end + chunk, dbe)
        if MOMENTUM:
            tl.store(df + gate + rt, df_acc, mask=in_chunk)
            tl.store(dc_end + gate + rt, dce, mask=in_chunk)
            tl.store(df_end + chunk, dfe)
            tl.store(dm_end + chunk, dme)


class MLPChunkFunction(torch.autograd.Function):
    """The chunked MLP Titans memory (depth 2) given its gate matrices, forward and backward.

    Shapes as for :class:`~titans_sci.kernels.linear.LinearChunkFunction`, with the state
    ``w1, s1: [B, H, D, E]`` and ``w2, s2: [B, H, E, D]`` (``s1, s2`` ``None`` for plain GD).
    Returns ``y`` and the fp32 state ``w1, w2, s1, s2`` (``s1, s2`` ``None`` for plain GD).
    """

    @staticmethod
    def forward(
        ctx, q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end, w1, w2, s1, s2, eps
    ):
        q, k, v = (x.contiguous() for x in (q, k, v))
        matrices = (G, f, beta, g_end, c_end, f_end, beta_end, m_end)
        momentum = None if s1 is None else (s1, s2)
        y, weights, moments, gates, chunks = _run_forward(
            q, k, v, matrices, (w1, w2), momentum, eps, save=True
        )
        ctx.save_for_backward(q, k, v, *gates, *chunks)
        ctx.eps = eps
        ctx.dtypes = [x.dtype for x in (*matrices, w1, w2)]
        return y.to(q.dtype), *weights, *moments

    @staticmethod
    def backward(ctx, dy, dw1_out, dw2_out, ds1_out, ds2_out):
        q, k, v, *rest = ctx.saved_tensors
        gates, chunks = rest[:8], rest[8:]
        b, h, t, d = q.shape
        n, chunk = gates[0].shape[2], gates[0].shape[3]
        e = chunks[0].shape[-1] // d
        momentum = chunks[2] is not None
        dev = q.device

        def grad_or_zeros(x: Tensor | None, shape: tuple[int, ...]) -> Tensor:
            return torch.zeros(shape, device=dev) if x is None else x.float().contiguous()

        def state_grad(x: Tensor | None, shape: tuple[int, int]) -> Tensor:
            """Two buffers per program: [:, 0] the final state's gradient, [:, 1] unwritten."""
            buf = new_buffer(b * h, 2, *shape, device=dev)
            buf[:, 0] = grad_or_zeros(x, (b, h, *shape)).reshape(b * h, *shape)
            return buf

        dy = grad_or_zeros(dy, (b, h, t, d))
        dw1, dw2 = state_grad(dw1_out, (d, e)), state_grad(dw2_out, (e, d))
        ds1 = state_grad(ds1_out, (d, e)) if momentum else None
        ds2 = state_grad(ds2_out, (e, d)) if momentum else None
        be, ne = _hidden_blocks(e)
        bt = block(chunk)
        scratch = new_buffer(b * h, 8, bt, ne * be, device=dev)
        dq, dk, dv = (new_buffer(b, h, t, d, device=dev) for _ in range(3))
        dG = new_buffer(b, h, n, chunk, chunk, device=dev)
        dbeta, dg_end = (
            new_buffer(b, h, n, chunk, device=dev),
            new_buffer(b, h, n, chunk, device=dev),
        )
        dbeta_end = new_buffer(b, h, n, device=dev)
        df, dc_end = (new_buffer(b, h, n, chunk, device=dev) if momentum else None for _ in "fc")
        df_end, dm_end = (new_buffer(b, h, n, device=dev) if momentum else None for _ in "fm")
        mlp_memory_backward_kernel[(b * h,)](
            q, k, v, *gates, *chunks, dy, dw1, ds1, dw2, ds2, scratch,
            dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end,
            n, t, ctx.eps,
            D=d, E=e, CHUNK=chunk, BD=block(d), BT=bt, BE=be, NE=ne, P=precision(q),
            MOMENTUM=momentum,
        )  # fmt: skip
        last = n % 2  # after n steps, this chunk's buffer index is (n - 1 + 1) % 2
        gate_grads = [
            None if x is None else x.to(dtype)
            for x, dtype in zip(
                (dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end), ctx.dtypes, strict=False
            )
        ]
        state_dtype = ctx.dtypes[8]
        shapes = ((b, h, d, e), (b, h, e, d), (b, h, d, e), (b, h, e, d))
        states = [
            None if x is None else x[:, last].reshape(shape).to(state_dtype)
            for x, shape in zip((dw1, dw2, ds1, ds2), shapes, strict=True)
        ]
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), *gate_grads, *states, None
