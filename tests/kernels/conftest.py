"""Every buffer a Triton kernel writes starts filled with NaN in these tests, so an element a
kernel should write and does not reaches the compared outputs or gradients as NaN."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def nan_filled_kernel_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    common = pytest.importorskip("titans_sci.kernels.common")
    monkeypatch.setattr(common, "FILL_VALUE", float("nan"))
