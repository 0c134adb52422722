"""A run folder that holds one run, and files that can be trusted.

``<out>/<task name>/`` holds ``run.json`` (the run's fingerprint: the resolved task config, the
checksums of the data it read and the code version), ``checkpoints/`` (one folder per training
run, each checkpoint carrying the same fingerprint), then ``results.json``, ``runs.csv`` and
``report.md`` with its figures. The rules:

- a second run on the same folder stops at once (an exclusive lock on ``.lock``);
- a folder is a run's when it holds ``run.json``; one that holds files and no ``run.json``
  (the user's own) is refused whatever the flags, and nothing in it is touched;
  a symbolic link is refused as a run folder;
- a folder holding another run is refused, unless ``resume`` (same fingerprint: continue it;
  another: refused, naming the first difference) or ``overwrite``, which removes only the
  files a run writes (:data:`OWNED`), never the user's files beside them;
- every file is written through :mod:`titans_sci.files`, under a temporary name and renamed,
  so none is ever half-written; a resumed run removes the old results first, so
  ``results.json`` is always of the files beside it;
- a run that fails before any checkpoint exists removes its ``run.json`` again, so a plain
  rerun is not refused;
- JSON is strict: a non-finite number is written as ``null`` and listed with its place in
  ``notes``, so no ``NaN`` or ``Infinity`` reaches a results file.

Under ``torchrun`` process 0 owns the folder; the others wait for it.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from titans_sci import distributed
from titans_sci.config import difference, json_safe
from titans_sci.files import TMP_SUFFIX, remove_owned, write_text

RUN_FILE = "run.json"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
#: What a finished run adds after its checkpoints; removed when a run resumes.
OUTPUTS = ("results.json", "runs.csv", "report.md")
#: The report's figures (every kind's).
FIGURES = ("learning_curves.png", "test_predictions.png", "surprise.png", "forecast.png")
#: Every entry a run writes at the top of its folder: all that ``overwrite`` removes.
OWNED = (RUN_FILE, LOCK, CHECKPOINTS, *OUTPUTS, *FIGURES)
_LEFTOVER = re.compile(
    "(" + "|".join(re.escape(n) for n in OWNED) + r")(\.\d+)?" + re.escape(TMP_SUFFIX) + "$"
)


def owned(name: str) -> bool:
    """Whether a run writes the top-level entry ``name`` (a killed run's temporary file of one
    included)."""
    return name in OWNED or _LEFTOVER.match(name) is not None


class AnotherRun(ValueError):
    """``resume`` on a folder that holds another run (another config, data or code)."""


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
        return self.path / CHECKPOINTS

    def __enter__(self) -> RunFolder:
        if distributed.is_main():
            if self.path.is_symlink():
                raise ValueError(
                    f"{self.path}: is a symbolic link (to {os.path.realpath(self.path)}); a run "
                    "folder must be a real folder: choose another --out or name the target"
                )
            created = not self.path.exists()
            had_lock = (self.path / LOCK).exists()
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire()
            try:
                self._prepare()
            except BaseException:
                self._release()
                if not had_lock:
                    (self.path / LOCK).unlink(missing_ok=True)
                if created:
                    self.path.rmdir()
                raise
        distributed.barrier()
        return self

    def __exit__(self, failed: object, *exc: object) -> None:
        if failed is not None and distributed.is_main() and not self._has_checkpoints():
            remove_owned(self.path, [RUN_FILE, CHECKPOINTS])  # nothing here to resume
        self._release()

    def _has_checkpoints(self) -> bool:
        return self.checkpoints.is_dir() and any(p.is_file() for p in self.checkpoints.rglob("*"))

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
        if held and RUN_FILE not in held:  # not a run's folder: nothing in it is ours
            raise ValueError(
                f"{self.path}: holds files that are not a titans-sci run's (no {RUN_FILE}): "
                f"{', '.join(held[:4])}{', ...' if len(held) > 4 else ''}; nothing was "
                "changed; choose another --out (or move those files)"
            )
        if held and self.overwrite:
            remove_owned(self.path, [n for n in held if owned(n)])
        elif held and not self.resume:
            raise ValueError(
                f"{self.path}: holds an earlier run ({', '.join(held[:4])}"
                f"{', ...' if len(held) > 4 else ''}); continue it with --resume, replace its "
                "files with --overwrite, or choose another --out"
            )
        elif held:
            self._check_same_run()
            leftovers = [n for n in held if _LEFTOVER.match(n)]
            remove_owned(self.path, [*OUTPUTS, *FIGURES, *leftovers])
            for leftover in self.checkpoints.rglob("*" + TMP_SUFFIX):  # a killed run's
                leftover.unlink()
        write_json(self.path / RUN_FILE, self.fingerprint)

    def _check_same_run(self) -> None:
        try:
            before = json.loads((self.path / RUN_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise ValueError(
                f"{self.path}: holds a run's files but no readable {RUN_FILE}, so nothing says "
                "which run they are of; replace them with --overwrite or choose another --out"
            ) from None
        changed = difference(before, json_safe(self.fingerprint)[0])
        if changed:
            raise AnotherRun(
                f"{self.path}: cannot resume, the folder holds another run ({changed}); start "
                "afresh with --overwrite or choose another --out"
            )


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Strict JSON, atomically: non-finite numbers become ``null`` and are listed in the
    document's ``notes``."""
    safe, places = json_safe(data)
    if places:
        notes = list(safe.get("notes", []))
        notes.append(f"not finite, written as null: {', '.join(p for p, _ in places)}")
        safe["notes"] = notes
    write_text(path, json.dumps(safe, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One row per mapping, columns in order of first appearance; ``None`` and non-finite
    numbers as empty cells; atomically."""
    rows = [json_safe(dict(r))[0] for r in rows]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())
