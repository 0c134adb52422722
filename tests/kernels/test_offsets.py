"""The kernels' pointer offsets are int64, so ``B x H x T x D`` may pass ``2**31``.

Triton's interpreter computes int32 as a GPU does (products wrap), so the offset arithmetic of
:mod:`titans_sci.kernels.common` is checked here at sizes no CPU test could allocate; the
device check at such a size is in ``benchmarks/bench_kernels_gpu.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton", reason="Triton is a dependency on Linux")
import triton.language as tl  # noqa: E402
from titans_sci.kernels import common  # noqa: E402
from titans_sci.kernels.common import program_index, token_rows  # noqa: E402

T, D, CHUNK, BT = 2**26, 64, 24, 32  # T x D = 2**32: head 1 starts past int32


@triton.jit
def _last_chunk_offsets(out, T, D: tl.constexpr, CHUNK: tl.constexpr, BT: tl.constexpr):
    """The offset of the last column of every row of the last chunk, as the kernels build it."""
    i_bh = program_index(0)
    tok, in_t = token_rows(T // CHUNK - 1, CHUNK, BT)
    tl.store(out + i_bh * BT + tl.arange(0, BT), i_bh * T * D + tok * D + (D - 1), mask=in_t)


@triton.jit
def _int32_offsets(out, T, D: tl.constexpr, BT: tl.constexpr):
    """The same offset from the raw int32 program id: what the kernels must not do."""
    i_bh = tl.program_id(0)
    tl.store(out + i_bh, i_bh * T * D + (D - 1))


def _expected(heads: int) -> torch.Tensor:
    rows = (T // CHUNK - 1) * CHUNK + torch.arange(CHUNK, dtype=torch.int64)
    return torch.stack([h * T * D + rows * D + (D - 1) for h in range(heads)])


def test_offsets_past_int32_do_not_wrap():
    out = torch.full((3, BT), -1, dtype=torch.int64)
    _last_chunk_offsets[(3,)](out, T, D=D, CHUNK=CHUNK, BT=BT)
    assert torch.equal(out[:, :CHUNK], _expected(3))
    assert int(out.max()) > 2**33
    assert (out[:, CHUNK:] == -1).all()  # rows past the chunk: masked off


def test_the_interpreter_wraps_int32_offsets_as_a_gpu_does():
    """The check above could fail: built from the raw program id, the offsets wrap."""
    out = torch.zeros(3, dtype=torch.int64)
    _int32_offsets[(3,)](out, T, D=D, BT=BT)
    assert int(out[0]) == D - 1
    assert int(out[1]) != T * D + D - 1


def test_no_kernel_reads_a_raw_program_id():
    """Every kernel takes its program index from ``program_index`` (int64)."""
    folder = Path(common.__file__).parent
    for source in folder.glob("*.py"):
        uses = re.findall(r"tl\.program_id\(", source.read_text())
        assert len(uses) == (1 if source.name == "common.py" else 0), source.name


def test_kernel_buffers_start_as_nan_in_these_tests():
    """The autouse fixture of ``conftest.py`` is in force here."""
    assert torch.isnan(common.new_buffer(4, device=torch.device("cpu"))).all()
