"""What the linear and MLP memory kernels share: products, chunk gates, offsets and buffers.

Offsets: every kernel takes its batch x head index from :func:`program_index` (int64) and its
token rows from :func:`token_rows` (int64), so every pointer offset built from them is int64 and
``B x H x T x D`` may pass ``2**31`` (Triton's program ids and small integer arguments are
int32, and int32 products wrap silently).

Masks: a head dim ``D`` or a chunk of ``C`` tokens that is no power of two runs in blocks of
``BD = block(D)`` columns and ``BT = block(C)`` rows; loads outside ``D`` or ``C`` read 0 and
stores there are masked off, and zeros stay zeros through every formula of both memories (the
LayerNorm of the MLP memory masks its padded columns itself).

Buffers: :func:`new_buffer` allocates every tensor a kernel writes. Tests set
:data:`FILL_VALUE` to NaN, so that an element a kernel should write and does not shows up as NaN
in the output or the gradients.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

FILL_VALUE: float | None = None
"""``None``: :func:`new_buffer` is ``torch.empty``; a float: buffers start filled with it."""


def new_buffer(*shape: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """An uninitialised tensor for a kernel to write (filled with :data:`FILL_VALUE` if set)."""
    out = torch.empty(shape, dtype=dtype, device=device)
    return out if FILL_VALUE is None else out.fill_(FILL_VALUE)


def block(n: int) -> int:
    """The power-of-two block that holds ``n`` rows or columns (at least 16, ``tl.dot``'s
    smallest)."""
    return max(16, triton.next_power_of_2(n))


def precision(q: Tensor) -> str:
    """fp32 inputs: exact fp32 products (what the PyTorch path computes); half inputs: TF32."""
    return "ieee" if q.dtype == torch.float32 else "tf32"


@triton.jit
def matmul(a, b, P: tl.constexpr):
    """``a @ b`` in fp32 with input precision ``P`` ("ieee" or "tf32")."""
    return tl.dot(a, b, input_precision=P)


@triton.jit
def program_index(axis: tl.constexpr):
    """This program's index along ``axis`` as int64: offsets built from it do not wrap."""
    return tl.program_id(axis).to(tl.int64)


@triton.jit
def token_rows(chunk, CHUNK: tl.constexpr, BT: tl.constexpr):
    """``(rows, mask)``: the int64 token indices ``chunk * CHUNK + [0, BT)`` of a chunk and
    which of them are in the chunk (``< CHUNK``)."""
    rt = tl.arange(0, BT)
    return (chunk * CHUNK + rt).to(tl.int64), rt < CHUNK


@triton.jit
def load_chunk_gates(
    G, f, beta, g_end, c_end, f_end, beta_end, m_end, chunk,
    CHUNK: tl.constexpr, BT: tl.constexpr, MOMENTUM: tl.constexpr,
):  # fmt: skip
    """The unrolled gates of chunk number ``chunk`` (int64, counting over batch x head and
    chunks), padded with zeros to ``BT`` rows: ``G [BT, BT]``, the row vectors ``f, beta, g_end,
    c_end [BT]`` and the scalars ``f_end, beta_end, m_end``. Without ``MOMENTUM`` the momentum
    gates ``f, c_end, f_end, m_end`` are not read (zeros)."""
    rt = tl.arange(0, BT)
    rows = rt < CHUNK
    gate = chunk * CHUNK
    gm = tl.load(
        G + (gate + rt[:, None]) * CHUNK + rt[None, :],
        mask=rows[:, None] & rows[None, :],
        other=0.0,
    )
    bv = tl.load(beta + gate + rt, mask=rows, other=0.0)
    ge = tl.load(g_end + gate + rt, mask=rows, other=0.0)
    be = tl.load(beta_end + chunk)
    if MOMENTUM:
        fv = tl.load(f + gate + rt, mask=rows, other=0.0)
        ce = tl.load(c_end + gate + rt, mask=rows, other=0.0)
        fe = tl.load(f_end + chunk)
        me = tl.load(m_end + chunk)
    else:
        fv = tl.zeros((BT,), dtype=tl.float32)
        ce = tl.zeros((BT,), dtype=tl.float32)
        fe = 0.0
        me = 0.0
    return gm, fv, bv, ge, ce, fe, be, me
