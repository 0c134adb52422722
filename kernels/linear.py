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
gradients that mix columns (q, k, gates) are summed over blocks afterwards.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _mm(a, b, P: tl.constexpr):
    """``a @ b`` in fp32 with input precision ``P`` ("ieee" or "tf32")."""
    return tl.dot(a, b, input_precision=P)


@triton.jit
def _load_chunk_gates(G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk, BT: tl.constexpr):
    """The unrolled gates of chunk number ``chunk`` (counting over batch x head and chunks)."""
    rt = tl.arange(0, BT)
    gate = chunk * BT
    gm = tl.load(G + (gate + rt[:, None]) * BT + rt[None, :])
    fv = tl.load(f + gate + rt)
    bv = tl.load(beta + gate + rt)
    ge = tl.load(g_end + gate + rt)
    ce = tl.load(c_end + gate + rt)
    return (
        gm,
        fv,
        bv,
        ge,
        ce,
        tl.load(f_end + chunk),
        tl.load(beta_end + chunk),
        tl.load(m_end + chunk),
    )


@triton.jit
def _forward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w0, s0, y, w_out, s_out, w_chunks, s_chunks,
    N, T,
    D: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr, P: tl.constexpr,
):  # fmt: skip
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    rv = i_v * BV + tl.arange(0, BV)
    state_offsets = i_bh * D * D + rd[:, None] * D + rv[None, :]
    w = tl.load(w0 + state_offsets).to(tl.float32)
    s = tl.load(s0 + state_offsets).to(tl.float32)
    for c in range(N):
        tok = c * BT + rt
        seq = i_bh * T * D
        kc = tl.load(k + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        qc = tl.load(q + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        vc = tl.load(v + seq + tok[:, None] * D + rv[None, :]).to(tl.float32)
        chunk_state = (i_bh * N + c) * D * D + rd[:, None] * D + rv[None, :]
        tl.store(w_chunks + chunk_state, w)
        tl.store(s_chunks + chunk_state, s)
        gm, fv, bv, ge, ce, fe, be, me = _load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, i_bh * N + c, BT
        )

        e = _mm(kc, w, P) - vc
        a = _mm(qc, tl.trans(kc), P) * gm
        out = bv[:, None] * _mm(qc, w, P) + fv[:, None] * _mm(qc, s, P) - _mm(a, e, P)
        tl.store(y + seq + tok[:, None] * D + rv[None, :], out)
        w_next = be * w + fe * s - _mm(tl.trans(kc), ge[:, None] * e, P)
        s = me * s - _mm(tl.trans(kc), ce[:, None] * e, P)
        w = w_next
    tl.store(w_out + state_offsets, w)
    tl.store(s_out + state_offsets, s)


@triton.jit
def _backward_kernel(
    q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end,
    w_chunks, s_chunks, dy, dw_out, ds_out,
    dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end, dw0, ds0,
    N, T, BH,
    D: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr, P: tl.constexpr,
):  # fmt: skip
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    rv = i_v * BV + tl.arange(0, BV)
    causal = rt[:, None] >= rt[None, :]
    state_offsets = i_bh * D * D + rd[:, None] * D + rv[None, :]
    dw = tl.load(dw_out + state_offsets).to(tl.float32)
    ds = tl.load(ds_out + state_offsets).to(tl.float32)
    part = i_v * BH + i_bh  # partial sums over value blocks: leading axis i_v
    for step in range(N):
        c = N - 1 - step
        tok = c * BT + rt
        seq = i_bh * T * D
        kc = tl.load(k + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        qc = tl.load(q + seq + tok[:, None] * D + rd[None, :]).to(tl.float32)
        vc = tl.load(v + seq + tok[:, None] * D + rv[None, :]).to(tl.float32)
        dyc = tl.load(dy + seq + tok[:, None] * D + rv[None, :]).to(tl.float32)
        chunk_state = (i_bh * N + c) * D * D + rd[:, None] * D + rv[None, :]
        w = tl.load(w_chunks + chunk_state)
        s = tl.load(s_chunks + chunk_state)
        gm, fv, bv, ge, ce, fe, be, me = _load_chunk_gates(
            G, f, beta, g_end, c_end, f_end, beta_end, m_end, i_bh * N + c, BT
        )

        e = _mm(kc, w, P) - vc
        qk = _mm(qc, tl.trans(kc), P)
        a = qk * gm
        qw = _mm(qc, w, P)
        qs = _mm(qc, s, P)
        kdw = _mm(kc, dw, P)
        kds = _mm(kc, ds, P)
        dye = _mm(dyc, tl.trans(e), P)  # [BT, BT]

        de = -_mm(tl.trans(a), dyc, P) - ge[:, None] * kdw - ce[:, None] * kds
        tl.store(dv + seq + tok[:, None] * D + rv[None, :], -de)

        dye_g = dye * gm
        dqc = (
            _mm(bv[:, None] * dyc, tl.trans(w), P)
            + _mm(fv[:, None] * dyc, tl.trans(s), P)
            - _mm(dye_g, kc, P)
        )
        dkc = (
            _mm(de, tl.trans(w), P)
            - _mm(tl.trans(dye_g), qc, P)
            - _mm(ge[:, None] * e, tl.trans(dw), P)
            - _mm(ce[:, None] * e, tl.trans(ds), P)
        )
        partial_seq = part * T * D
        tl.store(dq + partial_seq + tok[:, None] * D + rd[None, :], dqc)
        tl.store(dk + partial_seq + tok[:, None] * D + rd[None, :], dkc)
        partial_gate = (part * N + c) * BT
        dgm = tl.where(causal, -dye * qk, 0.0)
        tl.store(dG + (partial_gate + rt[:, None]) * BT + rt[None, :], dgm)
        tl.store(dbeta + partial_gate + rt, tl.sum(qw * dyc, axis=1))
        tl.store(df + partial_gate + rt, tl.sum(qs * dyc, axis=1))
        tl.store(dg_end + partial_gate + rt, -tl.sum(kdw * e, axis=1))
        tl.store(dc_end + partial_gate + rt, -tl.sum(kds * e, axis=1))
        tl.store(dbeta_end + part * N + c, tl.sum(tl.sum(w * dw, axis=1), axis=0))
        tl.store(df_end + part * N + c, tl.sum(tl.sum(s * dw, axis=1), axis=0))
        tl.store(dm_end + part * N + c, tl.sum(tl.sum(s * ds, axis=1), axis=0))

        dw_prev = _mm(tl.trans(qc), bv[:, None] * dyc, P) + be * dw + _mm(tl.trans(kc), de, P)
        ds = _mm(tl.trans(qc), fv[:, None] * dyc, P) + fe * dw + me * ds
        dw = dw_prev
    tl.store(dw0 + state_offsets, dw)
    tl.store(ds0 + state_offsets, ds)


def _value_block(d: int) -> int:
    return min(d, 64)


def _precision(q: Tensor) -> str:
    """fp32 inputs: exact fp32 products (what the PyTorch path computes); half inputs: TF32."""
    return "ieee" if q.dtype == torch.float32 else "tf32"


class LinearChunkFunction(torch.autograd.Function):
    """The chunked linear Titans memory given its gate matrices; see the module docstring.

    Shapes (``N`` chunks of ``BT`` tokens, ``T = N * BT``): ``q, k, v: [B, H, T, D]``;
    ``G: [B, H, N, BT, BT]``; ``f, beta, g_end, c_end: [B, H, N, BT]``;
    ``f_end, beta_end, m_end: [B, H, N]``; ``w0, s0: [B, H, D, D]``.
    Returns ``y: [B, H, T, D]`` (dtype of q) and fp32 ``w, s: [B, H, D, D]``.
    """

    @staticmethod
    def forward(ctx, q, k, v, G, f, beta, g_end, c_end, f_end, beta_end, m_end, w0, s0):
        b, h, t, d = q.shape
        n, bt = G.shape[2], G.shape[3]
        gates = [x.float().contiguous() for x in (G, f, beta, g_end, c_end, f_end, beta_end, m_end)]
        q, k, v = (x.contiguous() for x in (q, k, v))
        w0, s0 = w0.float().contiguous(), s0.float().contiguous()
        y = torch.empty(b, h, t, d, dtype=torch.float32, device=q.device)
        w_out, s_out = torch.empty_like(w0), torch.empty_like(s0)
        w_chunks = torch.empty(b, h, n, d, d, dtype=torch.float32, device=q.device)
        s_chunks = torch.empty_like(w_chunks)
        bv = _value_block(d)
        grid = (d // bv, b * h)
        _forward_kernel[grid](
            q, k, v, *gates, w0, s0, y, w_out, s_out, w_chunks, s_chunks,
            n, t, D=d, BT=bt, BV=bv, P=_precision(q),
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, *gates, w_chunks, s_chunks)
        ctx.dtypes = [x.dtype for x in (G, f, beta, g_end, c_end, f_end, beta_end, m_end)]
        return y.to(q.dtype), w_out, s_out

    @staticmethod
    def backward(ctx, dy, dw_out, ds_out):
        q, k, v, *gates, w_chunks, s_chunks = ctx.saved_tensors
        b, h, t, d = q.shape
        n, bt = gates[0].shape[2], gates[0].shape[3]
        bv = _value_block(d)
        blocks = d // bv
        dev = q.device

        def zeros_if_none(x: Tensor | None, shape: tuple[int, ...]) -> Tensor:
            return torch.zeros(shape, device=dev) if x is None else x.float().contiguous()

        dy = zeros_if_none(dy, (b, h, t, d))
        dw_out = zeros_if_none(dw_out, (b, h, d, d))
        ds_out = zeros_if_none(ds_out, (b, h, d, d))

        def partial(*shape: int) -> Tensor:
            return torch.empty(blocks, b, h, *shape, dtype=torch.float32, device=dev)

        dq, dk = partial(t, d), partial(t, d)
        dv = torch.empty(b, h, t, d, dtype=torch.float32, device=dev)
        dG = partial(n, bt, bt)
        df, dbeta, dg_end, dc_end = (partial(n, bt) for _ in range(4))
        df_end, dbeta_end, dm_end = (partial(n) for _ in range(3))
        dw0 = torch.empty(b, h, d, d, dtype=torch.float32, device=dev)
        ds0 = torch.empty_like(dw0)
        _backward_kernel[(blocks, b * h)](
            q, k, v, *gates, w_chunks, s_chunks, dy, dw_out, ds_out,
            dq, dk, dv, dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end, dw0, ds0,
            n, t, b * h, D=d, BT=bt, BV=bv, P=_precision(q),
        )  # fmt: skip
        sums = [x.sum(0) for x in (dq, dk)]
        partials = (dG, df, dbeta, dg_end, dc_end, df_end, dbeta_end, dm_end)
        gate_grads = [x.sum(0).to(dtype) for x, dtype in zip(partials, ctx.dtypes, strict=True)]
        return (sums[0].to(q.dtype), sums[1].to(k.dtype), dv.to(v.dtype), *gate_grads, dw0, ds0)
