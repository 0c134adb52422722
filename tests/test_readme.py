"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(needle: str) -> str:
    """The README's python block that holds ``needle``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if needle in b]
    assert len(found) == 1, f"README.md has {len(found)} python examples with {needle!r}"
    return found[0]


def _run(block: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_readme_memory_example_runs():
    namespace = _run(_example("y_ref"))
    y, y_ref = namespace["y"], namespace["y_ref"]
    assert y.shape == (2, 256, 8, 64)
    # The example's chunked and recurrent reads agree (float32, 256 tokens, small steps).
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)


def test_readme_backbone_example_runs():
    namespace = _run(_example("h_next"))
    assert namespace["h"].shape == (2, 100, 64)
    assert namespace["h_next"].shape == (2, 7, 64)


def test_readme_task_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = _run(_example("from titans_sci.tasks import"))
    assert (tmp_path / "runs" / "demo_forecasting" / "results.json").exists()
    assert set(namespace["result"]["summary"]["titans"]["average"]) == {"mse", "mae"}


def test_readme_layout_matches_the_tree():
    """Every path the Layout section names exists, and it names every module and subpackage."""
    text = README.read_text()
    layout = text[text.index("## Layout") :].split("\n## ")[0]
    root = README.parent
    named = set(re.findall(r"`([\w./]+)`", layout))
    for path in named:
        if "/" in path or path.endswith(".py"):
            where = root / path if "/" in path else root / "titans_sci" / path
            assert where.exists(), f"README's layout names {path}, which is not in the tree"
    package = root / "titans_sci"
    parts = [p for p in package.iterdir() if not p.name.startswith(("_", "."))]
    parts = [p for p in parts if p.is_dir() or p.suffix == ".py"]
    for part in parts:
        name = f"titans_sci/{part.name}/" if part.is_dir() else part.name
        assert name in named or f"titans_sci/{part.name}" in named, f"layout misses {name}"
    for folder in ("kernels/", "datasets/", "tasks/", "notebooks/", "benchmarks/", "tests/"):
        assert folder in named and (root / folder).is_dir()
