"""A run folder that holds one run, and files that can be trusted.

``<out>/<task name>/`` holds ``run.json`` (the run's fingerprint: the resolved task config, the
checksums of the data it read and the code version), ``checkpoints/`` (one folder per training
run, each checkpoint carrying the same fingerprint), then ``results.json``, ``runs.csv`` and
``report.md`` with its figures. The rules:

- a second run on the same folder stops at once (an exclusive lock on ``.lock``);
- a folder holding another run's files is refused, unless ``resume`` (same fingerprint: continue
  it; another: refused, naming the first difference) or ``overwrite`` (cleared first);
- every file is written under a temporary name and renamed, so none is ever half-written; a
  resumed run removes the old results first, so ``results.json`` is always of the files beside
  it;
- JSON is strict: a non-finite number is written as ``null`` and listed with its place in
  ``notes``, so no ``NaN`` or ``Infinity`` reaches a results file.

Under ``torchrun`` process 0 owns the folder; the others wait for it.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from titans_sci import distributed
from titans_sci.config import difference, json_safe

RUN_FILE = "run.json"
LOCK = ".lock"
#: What a finished run adds after its checkpoints; removed when a run resumes.
OUTPUTS = ("results.json", "runs.csv", "report.md")


class RunFolder:
    """``with RunFolder(path, fingerprint, resume=..., overwrite=...) as folder:`` owns
    ``path`` for one run (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        fingerprint: Mapping[str, Any],
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        if resume and overwrite:
            raise ValueError("choose one of resume and overwrite")
        self.path = Path(path)
        self.fingerprint = dict(fingerprint)
        self.resume, self.overwrite = resume, overwrite
        self._lock: TextIO | None = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def __enter__(self) -> RunFolder:
        if distributed.is_main():
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire()
            try:
                self._prepare()
            except BaseException:
                self._release()
                raise
        distributed.barrier()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _acquire(self) -> None:
        lock = open(self.path / LOCK, "a+")  # noqa: SIM115 (held for the run)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise ValueError(
                f"{self.path}: another run is using this folder (process {holder}); wait for "
                "it to finish or choose another --out"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _prepare(self) -> None:
        held = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
        if held and self.overwrite:
            for name in held:
                target = self.path / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
        elif held and not self.resume:
            raise ValueError(
                f"{self.path}: holds an earlier run's files ({', '.join(held[:4])}"
                f"{', ...' if len(held) > 4 else ''}); continue it with --resume, replace it "
                "with --overwrite, or choose another --out"
            )
        elif held:
            self._check_same_run()
            for name in OUTPUTS:
                (self.path / name).unlink(missing_ok=True)
            for leftover in self.path.rglob("*.tmp*"):  # a killed run's half-written files
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        write_json(self.path / RUN_FILE, self.fingerprint)

    def _check_same_run(self) -> None:
        try:
            before = json.loads((self.path / RUN_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise ValueError(
                f"{self.path}: holds files but no readable {RUN_FILE}, so nothing says which run "
                "they are of; replace them with --overwrite or choose another --out"
            ) from None
        changed = difference(before, json_safe(self.fingerprint)[0])
        if changed:
            raise ValueError(
                f"{self.path}: cannot resume, the folder holds another run ({changed}); start "
                "afresh with --overwrite or choose another --out"
            )


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Strict JSON, atomically: non-finite numbers become ``null`` and are listed in the
    document's ``notes``. Under torchrun only process 0 writes."""
    if not distributed.is_main():
        return
    safe, places = json_safe(data)
    if places:
        notes = list(safe.get("notes", []))
        notes.append(f"not finite, written as null: {', '.join(p for p, _ in places)}")
        safe["notes"] = notes
    _atomic_write(path, json.dumps(safe, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One row per mapping, columns in order of first appearance; ``None`` and non-finite
    numbers as empty cells; atomically."""
    if not distributed.is_main():
        return
    rows = [json_safe(dict(r))[0] for r in rows]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, text.getvalue())


def _atomic_write(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file renamed at the end; on any error (a full
    disk) the temporary file is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as handle:
            handle.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


@cache
def code_version() -> dict[str, str]:
    """The package version and a SHA-256 over its Python sources (the Triton kernels' folder
    included, wherever the build maps it from): a resumed run must be of the same code."""
    from titans_sci import __version__

    package = Path(__file__).resolve().parents[1]
    roots = [package]
    kernels = importlib.util.find_spec("titans_sci.kernels")  # found, not imported
    for place in (kernels.submodule_search_locations or []) if kernels else []:
        if not Path(place).resolve().is_relative_to(package):
            roots.append(Path(place).resolve())
    digest = hashlib.sha256()
    for root in roots:
        for file in sorted(root.rglob("*.py")):
            digest.update(f"{root.name}/{file.relative_to(root).as_posix()}".encode())
            digest.update(file.read_bytes())
    return {"version": __version__, "source_sha256": digest.hexdigest()}
