"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "README.md lost its python examples"
    return blocks


def _run(block: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_readme_memory_example_runs():
    namespace = _run(_examples()[0])
    y, y_ref = namespace["y"], namespace["y_ref"]
    assert y.shape == (2, 256, 8, 64)
    # The example's chunked and recurrent reads agree (float32, 256 tokens, small steps).
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)


def test_readme_backbone_example_runs():
    namespace = _run(_examples()[1])
    assert namespace["h"].shape == (2, 100, 64)
    assert namespace["h_next"].shape == (2, 7, 64)
