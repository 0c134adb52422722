"""The package's imports run one way: the order of layers is written once, here, and every
import of every module (at any depth, lazy ones included) may only reach its own layer or one
below; no module imports itself back through a circle.

The data walks the same way: files -> adapters (``data``) and the memory -> layers -> heads ->
models -> metrics -> training -> saved models -> task kinds -> suites -> the public facade and
the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Lowest first. A module belongs to the longest pattern that names it: ``pkg`` is the
#: package's ``__init__`` only, ``pkg.*`` every module inside it.
LAYERS: list[tuple[str, ...]] = [
    ("titans_sci.version", "titans_sci.config", "titans_sci.files", "titans_sci.distributed",
     "titans_sci.padding", "titans_sci.recompute", "titans_sci.resources"),
    ("titans_sci.data", "titans_sci.data.*", "titans_sci.memory.*"),
    ("titans_sci.kernels", "titans_sci.kernels.*"),  # the Triton ops of the memory's maths
    ("titans_sci.memory", "titans_sci.memory.module"),  # the module that dispatches to them
    ("titans_sci.layers", "titans_sci.layers.*"),
    ("titans_sci.heads", "titans_sci.heads.*"),
    ("titans_sci.models", "titans_sci.models.*"),
    ("titans_sci.evaluation", "titans_sci.evaluation.*"),
    ("titans_sci.explain", "titans_sci.explain.*"),  # attributions and variant effects
    ("titans_sci.train", "titans_sci.report", "titans_sci.history"),
    ("titans_sci.modelfolder",),
    # The GluonTS integration; its old address stays for predictors serialized there.
    ("titans_sci.gluonts", "titans_sci.gluonts.*", "titans_sci.models.gluonts_estimator"),
    ("titans_sci.tasks", "titans_sci.tasks.*"),
    ("titans_sci.suites", "titans_sci.suites.*"),
    ("titans_sci.api", "titans_sci.evaluation.saved", "titans_sci.bench", "titans_sci.demo"),
    ("titans_sci.cli", "titans_sci"),
]  # fmt: skip


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by its import name (``kernels/`` is ``titans_sci.kernels``,
    as the build maps it)."""
    found = {}
    for file in sorted((root / "titans_sci").rglob("*.py")):
        parts = file.relative_to(root).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = file
    for file in sorted((root / "kernels").glob("*.py")):
        name = "titans_sci.kernels" + ("" if file.stem == "__init__" else f".{file.stem}")
        found[name] = file
    return found


def imports(name: str, file: Path, known: set[str]) -> set[str]:
    """The package's modules that ``file`` (module ``name``) imports, at any depth."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
            module = module if node.level else (node.module or "")
            # ``from pkg import mod`` depends on ``pkg.mod``, ``from mod import name`` on ``mod``
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in known}
    return found - {name}


def layer_of(name: str) -> int:
    """The index in :data:`LAYERS` of the longest pattern naming ``name``."""
    best, length = None, -1
    for index, patterns in enumerate(LAYERS):
        for pattern in patterns:
            prefix = pattern.removesuffix(".*")
            named = name.startswith(prefix + ".") if pattern.endswith(".*") else name == pattern
            if named and len(prefix) > length:
                best, length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{name} is in no layer of tests/test_layers.py: add it")
    return best


def upward(root: Path = ROOT) -> list[str]:
    """Every import that reaches a higher layer, as ``"a (layer i) imports b (layer j)"``."""
    found = modules(root)
    wrong = []
    for name, file in found.items():
        for target in sorted(imports(name, file, set(found))):
            if layer_of(target) > layer_of(name):
                wrong.append(
                    f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
                )
    return wrong


def circles(root: Path = ROOT) -> list[list[str]]:
    """The import circles among the package's modules (each once, from its first module)."""
    found = modules(root)
    graph = {name: imports(name, file, set(found)) for name, file in found.items()}
    seen: set[str] = set()
    result = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in path:
                cycle = path[path.index(target) :]
                if not any(set(cycle) == set(c) for c in result):
                    result.append(cycle)
            elif target not in seen:
                visit(target, [*path, target])
        seen.add(node)

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    return result


def test_every_import_runs_down_the_layers():
    assert upward() == []


def test_no_module_imports_itself_back_through_a_circle():
    assert circles() == []


def test_the_check_fails_on_an_upward_import_and_a_circle(tmp_path):
    """The test above can fail: a copy of the package with one import of the task runner added
    to the trainer (an upward import, which also closes a circle) is caught."""
    import shutil

    for folder in ("titans_sci", "kernels"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.pyc"))
    train = tmp_path / "titans_sci" / "train.py"
    train.write_text(train.read_text() + "\nfrom titans_sci.tasks.runner import run  # noqa\n")
    train_layer, tasks_layer = layer_of("titans_sci.train"), layer_of("titans_sci.tasks.runner")
    message = (
        f"titans_sci.train (layer {train_layer}) imports titans_sci.tasks.runner (layer "
        f"{tasks_layer})"
    )
    assert message in upward(tmp_path)
    assert any("titans_sci.train" in cycle for cycle in circles(tmp_path))


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_has_a_layer(name):
    layer_of(name)
