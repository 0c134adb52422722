"""The one place through which titans-sci writes and deletes files.

Rules, for every command and API call that writes:

- a file appears complete or not at all: it is written under a temporary name beside it
  (``<name>.<pid>.tmp``, so two processes never share one) and renamed at the end; on any
  error the temporary file is removed and the target is left as it was;
- an output never lands on one of the command's own inputs, inside a saved model's folder, on
  a folder or through a symbolic link (:func:`check_output`);
- a deletion removes only what the project wrote, by name, and never follows a link
  (:func:`remove_owned`); a link is removed as a link;
- a folder (a saved model) is written whole into a staging folder and renamed into place
  (:func:`staged_folder`), and never over a folder holding anything else.

``.gz`` outputs are written gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: What every temporary file's name ends with (a killed run's leftovers are found by it).
TMP_SUFFIX = ".tmp"


def tmp_path(path: Path) -> Path:
    """The temporary name ``path`` is written under: ``<name>.<pid>.tmp`` in its folder."""
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """The temporary file the block writes; it becomes ``path`` when the block ends without
    error, and is removed otherwise (``path`` left as it was)."""
    _refuse_link_or_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def save_with(path: str | Path, save: Callable[[Path], Any]) -> Path:
    """``save(tmp)`` writes the file (``figure.savefig``, ``torch.save``); it becomes ``path``
    only once complete. On any error the temporary file is removed and ``path`` is left as it
    was."""
    with _replacing(Path(path)) as tmp:
        save(tmp)
    return Path(path)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file opened for writing (text ``"w"`` or binary ``"wb"``) under a temporary name and
    renamed to ``path`` when the block ends without error (gzip-compressed for ``.gz``)."""
    path = Path(path)
    opener: Callable[..., IO[Any]] = gzip.open if path.suffix == ".gz" else open
    text = "b" not in mode
    with (
        _replacing(path) as tmp,
        opener(
            tmp,
            mode + ("t" if text and opener is gzip.open else ""),
            **({"newline": ""} if text else {}),
        ) as handle,
    ):
        yield handle


def write_text(path: str | Path, text: str) -> Path:
    """``text`` to ``path``, atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


@contextmanager
def staged_folder(directory: str | Path, names: Iterable[str]) -> Iterator[Path]:
    """A folder that appears complete or not at all: the block writes the entries ``names``
    into a staging folder ``.<name>-XXXXXXXX`` beside ``directory``, which then replaces
    ``directory`` (an older one is moved aside first, so the target is missing only briefly).

    A ``directory`` holding anything but ``names`` (the user's files) is refused, and so is a
    link or a file. Every staging folder of the same ``<name>`` that exists when a save starts
    is what a killed earlier save left, and is removed first (one save of a folder at a time,
    which a task run guarantees; other folders' staging, e.g. ``<name>-2``'s, is left)."""
    directory = Path(directory)
    names = set(names)
    if directory.is_symlink() or directory.is_file():
        raise ValueError(f"{directory}: is a link or a file, not a folder to save in")
    if directory.exists():
        others = sorted(p.name for p in directory.iterdir() if p.name not in names)
        if others:
            raise ValueError(
                f"{directory}: holds files that are not the ones saved there "
                f"({', '.join(others[:4])}); a save replaces the folder, so choose another"
            )
    _remove_stale_staging(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        yield staging
        old = staging.with_name(staging.name + "-old")
        if directory.exists():
            os.replace(directory, old)
        staging.replace(directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(directory: Path) -> None:
    """Remove the staging folders (``tempfile.mkdtemp``'s ``.<name>-`` + 8 characters, and the
    ``-old`` copy of a replaced folder) that killed saves of ``directory`` left."""
    if not directory.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(directory.name)}-[a-z0-9_]{{8}}(-old)?")
    for stale in directory.parent.iterdir():
        if pattern.fullmatch(stale.name) and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def check_output(
    output: str | Path, inputs: Iterable[str | Path] = (), protected: Iterable[str | Path] = ()
) -> Path:
    """``output`` if a command may write it: not an existing folder or link, not one of its
    ``inputs`` (the same file by any name), not inside a ``protected`` folder (a saved model).
    Raises ``ValueError`` with the fix otherwise."""
    output = Path(output)
    _refuse_link_or_folder(output)
    for source in inputs:
        if _same_file(output, Path(source)):
            raise ValueError(
                f"{output}: is the command's input {source}; writing there would destroy it, "
                "so name another output file"
            )
    for folder in protected:
        if output.resolve().is_relative_to(Path(folder).resolve()):
            raise ValueError(
                f"{output}: lies inside the saved model {folder}, whose files must stay as "
                "saved; name an output outside it"
            )
    return output


def remove_owned(folder: Path, names: Iterable[str]) -> None:
    """Remove the entries ``names`` of ``folder`` (files, folders, links) that exist, and
    nothing else; a link is unlinked, never followed."""
    for name in names:
        target = folder / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)  # rmtree unlinks the links inside, never following them


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _refuse_link_or_folder(path: Path) -> None:
    if path.is_symlink():
        raise ValueError(
            f"{path}: is a symbolic link; titans-sci does not write through links, so name "
            f"its target ({os.path.realpath(path)}) or another file"
        )
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; name a file to write")
