"""The wheel, installed into a fresh virtual environment, runs ``titans-sci`` from any folder.

The wheel is built once per session (offline: ``pip wheel --no-build-isolation --no-index`` on a
copy of the source tree, so the checkout gets no ``build/`` folder) and installed with
``--no-deps`` into a new virtual environment under pytest's temporary folder. That environment
sees this one's third-party packages (torch, numpy, ...) through a ``.pth`` file naming their
site-packages folder; a path listed in a ``.pth`` file is not itself scanned for ``.pth`` files,
so the checkout's editable install (a finder hooked in by ``__editable__.titans_sci-*.pth``) does
not come along, and the tests check that ``titans_sci`` is the installed copy. Every command
runs from a temporary folder outside the repository, without ``$TITANS_SCI_DATASETS``, so the
data sets and task files can only come from the wheel.

Under pytest-xdist the workers share one build (a file lock in the session's temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from filelock import FileLock

import titans_sci
from titans_sci.data.registry import list_datasets

REPO = Path(__file__).resolve().parents[1]
#: What the build reads: the project file, the readme it names, the package and the folders
#: that pyproject.toml maps into it.
SOURCES = ("pyproject.toml", "README.md", "titans_sci", "kernels", "datasets", "tasks")
TIMEOUT = 120  # seconds for one command (the main job takes ~40 s on one core)
RUN_TIMEOUT = 300


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: int = TIMEOUT):
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TITANS_SCI_DATASETS")
        and not k.startswith("PIP_")
    }
    env.update(OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


class Installed:
    """The built wheel and the fresh environment it is installed in (see :func:`_build`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "env" / "bin" / "python"
        self.cli = root / "env" / "bin" / "titans-sci"
        self.wheel = next((root / "dist").glob("titans_sci-*.whl"), None)
        marker = root / "site-packages.txt"
        self.site_packages = Path(marker.read_text().strip()) if marker.is_file() else None

    @property
    def ready(self) -> bool:
        return self.wheel is not None and self.site_packages is not None


def _build(root: Path) -> None:
    """The wheel in ``root/dist``, installed into a new environment ``root/env``; last of all
    ``root/site-packages.txt`` names its site-packages folder."""
    shutil.rmtree(root, ignore_errors=True)
    source, dist, env_dir = root / "source", root / "dist", root / "env"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    env = _clean_env()
    offline = ["--no-deps", "--no-index", "-q"]
    pip_wheel = [sys.executable, "-m", "pip", "wheel", str(source), "--no-build-isolation"]
    _run([*pip_wheel, *offline, "-w", str(dist)], cwd=source, env=env)
    (wheel,) = dist.glob("titans_sci-*.whl")

    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=root, env=env)
    python = str(env_dir / "bin" / "python")
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=root,
        env=env,
    ).stdout.strip()
    # This environment's third-party packages (and pip) for the fresh one, appended to its
    # sys.path after its own site-packages.
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "_titans_sci_test_deps.pth").write_text("\n".join(ours) + "\n")
    # --ignore-installed: the editable install's dist-info is visible through the .pth file, and
    # pip would otherwise take titans-sci for installed already.
    pip_install = [python, "-m", "pip", "install", "--ignore-installed", "--no-compile"]
    _run([*pip_install, *offline, str(wheel)], cwd=root, env=env)
    (root / "site-packages.txt").write_text(purelib)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    pytest.importorskip("setuptools", minversion="70.1", reason="builds without isolation")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "titans_sci_wheel"
    with FileLock(str(shared / "titans_sci_wheel.lock")):
        if not Installed(root).ready:
            _build(root)
    found = Installed(root)
    assert found.ready
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert REPO not in folder.resolve().parents
    return folder


def test_wheel_holds_every_module_the_data_sets_and_the_task_files(installed: Installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        version = next(
            line.split(":", 1)[1].strip()
            for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Version:")
        )
    assert version == titans_sci.__version__  # single-sourced from titans_sci/version.py

    expected = {
        f"titans_sci/{p.relative_to(REPO / 'titans_sci').as_posix()}"
        for p in (REPO / "titans_sci").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    expected |= {f"titans_sci/kernels/{p.name}" for p in (REPO / "kernels").glob("*.py")}
    missing = sorted(expected - names)
    assert not missing, (
        f"source modules not in the wheel (a subpackage missing from [tool.setuptools] packages "
        f"in pyproject.toml?): {missing}"
    )
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"titans_sci", f"titans_sci-{version}.dist-info"}, top_level

    bundled = set()
    for manifest in list_datasets(REPO / "datasets"):
        for path in [manifest.path, *(info.file for info in manifest.splits.values())]:
            bundled.add(path.relative_to(REPO / "datasets").as_posix())
    missing = sorted(p for p in bundled if f"titans_sci/_bundled/datasets/{p}" not in names)
    assert not missing, f"data set files not in the wheel: {missing}"
    tasks = {p.name for p in (REPO / "tasks").glob("*.toml")}
    assert {"demo_genomics.toml", "demo_forecasting.toml"} <= tasks
    missing = sorted(t for t in tasks if f"titans_sci/_bundled/tasks/{t}" not in names)
    assert not missing, f"task files not in the wheel: {missing}"
    pretrained = {
        p.relative_to(REPO / "tasks").as_posix() for p in (REPO / "tasks" / "pretrained").rglob("*")
        if p.is_file()
    }  # fmt: skip
    assert "pretrained/dna_lm/model.safetensors" in pretrained
    missing = sorted(p for p in pretrained if f"titans_sci/_bundled/tasks/{p}" not in names)
    assert not missing, f"pretrained models not in the wheel: {missing}"


def test_installed_wheel_imports_its_own_copy(installed: Installed, workdir: Path):
    probe = (
        "import json, titans_sci, titans_sci.kernels, titans_sci.kernels.linear, "
        "titans_sci.kernels.mlp\n"
        "from titans_sci import resources\n"
        "from titans_sci.data import registry\n"
        "from titans_sci.kernels import supports, triton_chunked\n"
        "print(json.dumps({'package': titans_sci.__file__, 'kernels': titans_sci.kernels.__file__,"
        " 'linear': titans_sci.kernels.linear.__file__, 'mlp': titans_sci.kernels.mlp.__file__,"
        " 'datasets': str(resources.datasets_dir()), 'tasks': str(resources.tasks_dir()),"
        " 'registry': str(registry.datasets_dir()), 'version': titans_sci.__version__}))\n"
    )
    out = _run([str(installed.python), "-c", probe], cwd=workdir, env=_clean_env()).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found.pop("version") == titans_sci.__version__
    site_packages = installed.site_packages.resolve()
    for what, path in found.items():
        assert site_packages in Path(path).resolve().parents, (
            f"{what} comes from {path}, not from the fresh environment's {site_packages}"
        )
    assert Path(found["datasets"]) == site_packages / "titans_sci" / "_bundled" / "datasets"
    assert Path(found["tasks"]) == site_packages / "titans_sci" / "_bundled" / "tasks"
    assert found["registry"] == found["datasets"]


def test_installed_wheel_verifies_its_data_and_lists_its_tasks(installed: Installed, workdir: Path):
    env = _clean_env()
    verified = _run([str(installed.cli), "data", "verify"], cwd=workdir, env=env).stdout
    summary = verified.strip().splitlines()[-1]
    assert summary.endswith("data sets verified"), verified
    good, total = summary.split()[0].split("/")
    assert good == total and int(total) == len(list_datasets(REPO / "datasets"))

    listed = _run([str(installed.cli), "tasks"], cwd=workdir, env=env).stdout
    assert "demo_genomics.toml" in listed and "demo_forecasting.toml" in listed, listed


def test_installed_wheel_runs_the_main_job(installed: Installed, workdir: Path):
    runs = workdir / "runs"
    cmd = [str(installed.cli), "run", "-q", "--out", str(runs)]
    _run(cmd, cwd=workdir, env=_clean_env(), timeout=RUN_TIMEOUT)
    for task in ("demo_genomics", "demo_forecasting"):
        assert (runs / task / "results.json").is_file(), sorted(p.name for p in runs.iterdir())
