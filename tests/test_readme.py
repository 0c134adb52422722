"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_memory_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    y, y_ref = namespace["y"], namespace["y_ref"]
    assert y.shape == (2, 256, 8, 64)
    # The example's chunked and recurrent reads agree (float32, 256 tokens, small steps).
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)
