"""Triton kernels for the chunked Titans memory with a linear (matrix) memory.

The memory of one head is ``W: [D, D]`` with momentum ``S``; per token ``e_t = k_t W_c - v_t``
(l2 bias, gradient at the chunk-start ``W_c``), and a chunk of ``n`` tokens is (see
:mod:`titans_sci.memory.chunk`, with ``u = k`` and ``d = e``)::

    E  = K W - V
    Y  = beta * (Q W) + f * (Q S) - ((Q K^T) * G) E          # reads after each write
    W' = beta_n W + f_n S - K^T (g * E)                      # g = G[n-1, :]
    S' = m_n S - K^T (c * E)                                 # c = theta * Q[n-1, :]

Backward, per chunk in reverse, given ``dY`` and the gradients ``dW', dS'`` of the next chunk's
start state (``A = (Q K^T) * G``)::

    dE = -A^T dY - g * (K dW') - c * (K dS')          dV = -dE
    dQ = (beta dY) W^T + (f dY) S^T - ((dY E^T) * G) K
    dK = dE W^T - ((dY E^T) * G)^T Q - (g E) dW'^T - (c E) dS'^T
    dG = -(dY E^T) * (Q K^T)  (lower triangle)        dbeta = rowsum(QW * dY), df = rowsum(QS * dY)
    dg = -rowsum(K dW' * E), dc = -rowsum(K dS' * E)  dbeta_n = <W, dW'>, df_n = <S, dW'>,
    dm_n = <S, dS'>
    dW = Q^T (beta dY) + beta_n dW' + K^T dE          dS = Q^T (f dY) + f_n dW' + m_n dS'

The gate matrices ``G, f, beta`` and end-of-chunk vectors come from PyTorch (cheap, and autograd
turns their gradients into gate gradients); the kernels do everything of size ``D``: one program
per (batch x head, block of ``BV`` value columns) walks the chunks in order (forward) or in
reverse (backward), keeping ``W`` and ``S`` (or their gradients) in fp32 on chip. Value columns
are independent in every formula above, which is what lets ``D`` be split into blocks; the
gradients that mix columns (q, k, gates) are summed over blocks afterwards. Plain GD
(``MOMENTUM`` off) drops ``S`` and every ``f, c, f_n, m_n`` term at compile time; head dims and
chunks that are no powers of two run masked (see :mod:`titans_sci.kernels.common`).
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


@triton.jit
def linear_memory_forward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w0, s0, y, w_out, s_out, w_chunks, s_chunks,
    N, T,
    D: tl.constexpr, CHUNK: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr,
    BV: tl.constexpr, P: tl.constexpr, MOMENTUM: tl.constexpr,
):  # fmt: skip
    """Program ``(i_v, i_bh)``: value columns ``[i_v * BV, (i_v + 1) * BV)`` of one batch x
    head, chunk by chunk: the reads ``y``, every chunk's start state and the final state."""
    i_v, i_bh = program_index(0), program_index(1)
    rd = tl.arange(0, BD)
    rv = i_v * BV + tl.arange(0, BV)
    in_d, in_v = rd < D, rv < D
    in_state = in_d[:, None] & in_v[None, :]
    state = rd[:, None] * D + rv[None, :]
    w = tl.load(w0 + i_bh * D * D + state, mask=in_state, other=0.0).to(tl.float32)
    if MOMENTUM:
        s = tl.load(s0 + i_bh * D * D + state, mask=in_state, other=0.0).to(tl.float32)
    seq = i_bh * T * D
    for c in range(N):
        tok, in_t = token_rows(c, CHUNK, BT)
        rows_d = seq + tok[:, None] * D + rd[None, :]
        rows_v = seq + tok[:, None] * D + rv[None, :]
        in_td, in_tv = in_t[:, None] & in_d[None, :], in_t[:, None] & in_v[None, :]
        kc = tl.load(k + rows_d, mask=in_td, other=0.0).to(tl.float32)
        qc = tl.load(q + rows_d, mask=in_td, other=0.0).to(tl.float32)
        vc = tl.load(v + rows_v, mask=in_tv, other=0.0).to(tl.float32)
        chunk = i_bh * N + c
        tl.store(w_chunks + chunk * D * D + state, w, mask=in_state)
        gm, fv, bv, ge, ce, fe, be, me = load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk, CHUNK, BT, MOMENTUM
        )

        e = matmul(kc, w, P) - vc
        a = matmul(qc, tl.trans(kc), P) * gm
        out = bv[:, None] * matmul(qc, w, P) - matmul(a, e, P)
        w_next = be * w - matmul(tl.trans(kc), ge[:, None] * e, P)
        if MOMENTUM:
            tl.store(s_chunks + chunk * D * D + state, s, mask=in_state)
            out += fv[:, None] * matmul(qc, s, P)
            w_next += fe * s
            s = me * s - matmul(tl.trans(kc), ce[:, None] * e, P)
        tl.store(y + rows_v, out, mask=in_tv)
        w = w_next
    tl.store(w_out + i_bh * D * D + state, w, mask=in_state)
    if MOMENTUM:
        tl.store(s_out + i_bh * D * D + state, s, mask=in_state)


@triton.jit
def linear_memory_backward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w_chunks, s_chunks, dy, dw_out, ds_out,
    dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end, dw0, ds0,
    N, T, BH,
    D: tl.constexpr, CHUNK: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr,
    BV: tl.constexpr, P: tl.constexpr, MOMENTUM: tl.constexpr,
):  # fmt: skip
    """Program ``(i_v, i_bh)``, chunks in reverse: ``dv`` of its value columns, and its value
    block's partial sums of the gradients that mix columns (q, k, the gates), leading axis
    ``i_v``; the start state's gradient ``dw0, ds0``."""
    i_v, i_bh = program_index(0), program_index(1)
    rd = tl.arange(0, BD)
    rt = tl.arange(0, BT)
    rv = i_v * BV + tl.arange(0, BV)
    in_d, in_v = rd < D, rv < D
    in_state = in_d[:, None] & in_v[None, :]
    state = rd[:, None] * D + rv[None, :]
    causal = rt[:, None] >= rt[None, :]
    dw = tl.load(dw_out + i_bh * D * D + state, mask=in_state, other=0.0).to(tl.float32)
    if MOMENTUM:
        ds = tl.load(ds_out + i_bh * D * D + state, mask=in_state, other=0.0).to(tl.float32)
    part = i_v * BH + i_bh  # partial sums over value blocks: leading axis i_v
    seq = i_bh * T * D
    partial_seq = part * T * D
    for step in range(N):
        c = N - 1 - step
        tok, in_t = token_rows(c, CHUNK, BT)
        rows_d = seq + tok[:, None] * D + rd[None, :]
        rows_v = seq + tok[:, None] * D + rv[None, :]
        in_td, in_tv = in_t[:, None] & in_d[None, :], in_t[:, None] & in_v[None, :]
        kc = tl.load(k + rows_d, mask=in_td, other=0.0).to(tl.float32)
        qc = tl.load(q + rows_d, mask=in_td, other=0.0).to(tl.float32)
        vc = tl.load(v + rows_v, mask=in_tv, other=0.0).to(tl.float32)
        dyc = tl.load(dy + rows_v, mask=in_tv, other=0.0).to(tl.float32)
        chunk = i_bh * N + c
        w = tl.load(w_chunks + chunk * D * D + state, mask=in_state, other=0.0)
        gm, fv, bv, ge, ce, fe, be, me = load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk, CHUNK, BT, MOMENTUM
        )

        e = matmul(kc, w, P) - vc
        qk = matmul(qc, tl.trans(kc), P)
        a = qk * gm
        qw = matmul(qc, w, P)
        kdw = matmul(kc, dw, P)
        dye = matmul(dyc, tl.trans(e), P)  # [BT, BT]
        dye_g = dye * gm
        de = -matmul(tl.trans(a), dyc, P) - ge[:, None] * kdw
        dqc = matmul(bv[:, None] * dyc, tl.trans(w), P) - matmul(dye_g, kc, P)
        dkc = matmul(tl.trans(dye_g), qc, P) + matmul(ge[:, None] * e, tl.trans(dw), P)
        if MOMENTUM:
            s = tl.load(s_chunks + chunk * D * D + state, mask=in_state, other=0.0)
            qs = matmul(qc, s, P)
            kds = matmul(kc, ds, P)
            de -= ce[:, None] * kds
            dqc += matmul(fv[:, None] * dyc, tl.trans(s), P)
            dkc += matmul(ce[:, None] * e, tl.trans(ds), P)
        dkc = matmul(de, tl.trans(w), P) - dkc
        tl.store(dv + rows_v, -de, mask=in_tv)
        partial_rows = partial_seq + tok[:, None] * D + rd[None, :]
        tl.store(dq + partial_rows, dqc, mask=in_td)
        tl.store(dk + partial_rows, dkc, mask=in_td)
        in_chunk = rt < CHUNK
        partial_gate = (part * N + c) * CHUNK
        tl.store(
            dG + (partial_gate + rt[:, None]) * CHUNK + rt[None, :],
            tl.where(causal, -dye * qk, 0.0),
            mask=in_chunk[:, None] & in_chunk[None, :],
        )
        tl.store(dbeta + partial_gate + rt, tl.sum(qw * dyc, axis=1), mask=in_chunk)
        tl.store(dg_end + partial_gate + rt, -tl.sum(kdw * e, axis=1), mask=in_chunk)
        tl.store(dbeta_end + part * N + c, tl.sum(tl.sum(w * dw, axis=1), axis=0))

        dw_prev = matmul(tl.trans(qc), bv[:, None] * dyc, P) + be * dw
        dw_prev += matmul(tl.trans(kc), de, P)
        if MOMENTUM:
            tl.store(df + partial_gate + rt, tl.sum(qs * dyc, axis=1), mask=in_chunk)
            tl.store(dc_end + partial_gate + rt, -tl.sum(kds * e, axis=1), mask=in_chunk)
            tl.store(df_end + part * N + c, tl.sum(tl.sum(s * dw, axis=1), axis=0))
            tl.store(dm_end + part * N + c, tl.sum(tl.sum(s * ds, axis=1), axis=0))
            ds = matmul(tl.trans(qc), fv[:, None] * dyc, P) + fe * dw + me * ds
        dw = dw_prev
    tl.store(dw0 + i_bh * D * D + state, dw, mask=in_state)
    if MOMENTUM:
        tl.store(ds0 + i_bh * D * D + state, ds, mask=in_state)


def _value_block(d: int) -> int:
    """Value columns per program: all of them up to 64, else blocks of 64."""
    return min(block(d), 64)


class LinearChunkFunction(torch.autograd.Function):
    """The chunked linear Titans memory given its gate matrices; see the module docstring.

    Shapes (``N`` chunks of ``C`` tokens, ``T = N * C``): ``q, k, v: [B, H, T, D]``;
    ``G: [B, H, N, C, C]``; ``f, beta, g_end, c_end: [B, H, N, C]``;
    ``f_end, beta_end, m_end: [B, H, N]``; ``w0: [B, H, D, D]``; the momentum ``s0`` alike, or
    ``None`` for plain GD (the kernels then skip every momentum term, and ``f, c_end, f_end,
    m_end`` get no gradient). Returns ``y: [B, H, T, D]`` (dtype of q) and fp32 ``w, s: [B, H,
    D, D]`` (``s`` is ``None`` without momentum).
    """

    @staticmethod
    def forward(ctx, q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end, w0, s0):
        b, h, t, d = q.shape
        n, chunk = G.shape[2], G.shape[3]
        momentum = s0 is not None
        gates = [x.float().contiguous() for x in (G, f, beta, g_end, c_end, f_end, beta_end, m_end)]
        q, k, v = (x.contiguous() for x in (q, k, v))
        w0 = w0.float().contiguous()
        s0 = s0.float().contiguous() if momentum else None
        dev = q.device
        y = new_buffer(b, h, t, d, device=dev)
        w_out, w_chunks = new_buffer(b, h, d, d, device=dev), new_buffer(b, h, n, d, d, device=dev)
        s_out = new_buffer(b, h, d, d, device=dev) if momentum else None
        s_chunks = new_buffer(b, h, n, d, d, device=dev) if momentum else None
        bv = _value_block(d)
        linear_memory_forward_kernel[(triton.cdiv(d, bv), b * h)](
            q, k, v, *gates, w0, s0, y, w_out, s_out, w_chunks, s_chunks, n, t,
            D=d, CHUNK=chunk, BD=block(d), BT=block(chunk), BV=bv, P=precision(q),
            MOMENTUM=momentum,
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, *gates, w_chunks, s_chunks)
        ctx.dtypes = [x.dtype for x in (G, f, beta, g_end, c_end, f_end, beta_end, m_end)]
        return y.to(q.dtype), w_out, s_out

    @staticmethod
    def backward(ctx, dy, dw_out, ds_out):
        q, k, v, *gates, w_chunks, s_chunks = ctx.saved_tensors
        b, h, t, d = q.shape
        n, chunk = gates[0].shape[2], gates[0].shape[3]
        momentum = s_chunks is not None
        bv = _value_block(d)
        blocks = triton.cdiv(d, bv)
        dev = q.device

        def zeros_if_none(x: Tensor | None, shape: tuple[int, ...]) -> Tensor:
            return torch.zeros(shape, device=dev) if x is None else x.float().contiguous()

        dy = zeros_if_none(dy, (b, h, t, d))
        dw_out = zeros_if_none(dw_out, (b, h, d, d))
        ds_out = zeros_if_none(ds_out, (b, h, d, d)) if momentum else None

        def partial(*shape: int, needed: bool = True) -> Tensor | None:
            """Per value block partial sums, summed below (``None`` where not needed)."""
            return new_buffer(blocks, b, h, *shape, device=dev) if needed else None

        dq, dk = partial(t, d), partial(t, d)
        dv, dw0 = new_buffer(b, h, t, d, device=dev), new_buffer(b, h, d, d, device=dev)
        ds0 = new_buffer(b, h, d, d, device=dev) if momentum else None
        dG, dbeta, dg_end = partial(n, chunk, chunk), partial(n, chunk), partial(n, chunk)
        df, dc_end = partial(n, chunk, needed=momentum), partial(n, chunk, needed=momentum)
        dbeta_end = partial(n)
        df_end, dm_end = partial(n, needed=momentum), partial(n, needed=momentum)
        linear_memory_backward_kernel[(blocks, b * h)](
            q, k, v, *gates, w_chunks, s_chunks, dy, dw_out, ds_out,
            dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end, dw0, ds0,
            n, t, b * h,
            D=d, CHUNK=chunk, BD=block(d), BT=block(chunk), BV=bv, P=precision(q),
            MOMENTUM=momentum,
        )  # fmt: skip
        partials = (dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end)
        gate_grads = [
            None if x is None else x.sum(0).to(dtype)
            for x, dtype in zip(partials, ctx.dtypes, strict=True)
        ]
        dq_sum, dk_sum = dq.sum(0).to(q.dtype), dk.sum(0).to(k.dtype)  # type: ignore[union-attr]
        return dq_sum, dk_sum, dv.to(v.dtype), *gate_grads, dw0, ds0
