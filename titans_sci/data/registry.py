"""Registry of the data sets bundled under the repository's ``datasets/`` folder.

Each data set is a folder ``datasets/<collection>/<task path>/`` holding its split files and a
``manifest.toml`` that records where the data come from, the license and, for every split, the
file name, the number of data rows (header excluded) and the sha256 of the file as stored.
:func:`verify` checks the files against their manifest.

Three kinds of data set (manifest key ``kind``, default ``"dna"``):

* ``"dna"``: sequence classification; requires ``sequence_length`` and ``num_classes``; splits
  ``train``/``dev``/``test`` (or only ``test`` with ``test_only = true``).
* ``"timeseries"``: forecasting; requires ``freq`` (pandas offset alias, e.g. ``"h"``),
  ``date_column`` (``""`` for a wide file without one), ``split_rule`` (one of
  :data:`SPLIT_RULES`) and ``target`` (``""`` when there is none). The single file is the split
  ``data``; a ``split_rule = "m4"`` data set has ``train`` and ``test`` files instead. Optional
  ``duplicates`` and ``gaps`` (``"error"`` or ``"keep"``, default ``"error"``) say whether the
  file's repeated timestamps and missing steps are kept as they are (the loaders in
  :mod:`titans_sci.data.timeseries` refuse them otherwise).
* ``"genome"``: an annotated genome, one GenBank file (``.gb.gz``) per split, a split per
  chromosome; a split's ``rows`` are its bases. Which chromosomes train, select and test is the
  task's to say (:mod:`titans_sci.data.annotation` reads them).

The folder is :func:`titans_sci.resources.datasets_dir`: the top-level ``datasets/`` of a source
checkout, or the copy an installed wheel ships inside the package; set ``TITANS_SCI_DATASETS`` to
point somewhere else.

Command line::

    python -m titans_sci.data.registry list [--kind dna|timeseries]
    python -m titans_sci.data.registry verify [--kind dna|timeseries] [NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import os
import sys
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from titans_sci.config import Config, build
from titans_sci.data.dna import GENBANK_SUFFIXES
from titans_sci.data.textfile import split_suffix
from titans_sci.resources import datasets_dir as bundled_datasets_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DATASETS_DIR",
    "KINDS",
    "SPLIT_RULES",
    "DatasetManifest",
    "SplitInfo",
    "datasets_dir",
    "list_datasets",
    "load_manifest",
    "main",
    "read_manifest",
    "verify",
]

ENV_VAR = "TITANS_SCI_DATASETS"
MANIFEST_NAME = "manifest.toml"

Kind = Literal["dna", "timeseries", "genome"]
#: ``"m4"``: the train and test files as given; the others: see
#: :func:`titans_sci.data.timeseries.split_borders`.
SplitRule = Literal["ett_hour", "ett_minute", "ratio_70_10_20", "m4"]
Irregular = Literal["error", "keep"]
#: The values of a manifest's ``kind`` key.
KINDS: tuple[str, ...] = get_args(Kind)
#: The values of a time-series manifest's ``split_rule`` key.
SPLIT_RULES: tuple[str, ...] = get_args(SplitRule)
#: The values of a time-series manifest's optional ``duplicates`` and ``gaps`` keys.
IRREGULAR_POLICIES: tuple[str, ...] = get_args(Irregular)

#: The bundled ``datasets/`` folder, or ``$TITANS_SCI_DATASETS`` when set at import time.
#: Functions below read the environment variable again at each call (see :func:`datasets_dir`).
DATASETS_DIR: Path = Path(os.environ.get(ENV_VAR) or bundled_datasets_dir()).resolve()


def datasets_dir() -> Path:
    """The data set root: ``$TITANS_SCI_DATASETS`` if set now, else the bundled ``datasets/``
    (:func:`titans_sci.resources.datasets_dir`)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).resolve()
    return bundled_datasets_dir()


@dataclass(frozen=True)
class SplitInfo:
    """One split of a data set: absolute file path, data rows (header excluded), sha256."""

    file: Path
    rows: int
    sha256: str


@dataclass(frozen=True)
class DatasetManifest:
    """The parsed ``manifest.toml`` of one bundled data set.

    ``sequence_length`` and ``num_classes`` are set for ``kind == "dna"`` and ``None`` otherwise;
    ``freq``, ``date_column``, ``split_rule`` and ``target`` are set for ``kind == "timeseries"``
    and ``None`` otherwise.
    """

    name: str
    description: str
    source: str
    license: str
    sequence_length: int | None
    num_classes: int | None
    splits: dict[str, SplitInfo]
    test_only: bool = False
    note: str = ""
    path: Path | None = None  # the manifest file itself
    kind: str = "dna"
    freq: str | None = None  # pandas offset alias, e.g. "h", "15min", "W-TUE"
    date_column: str | None = None  # "" for a wide file without a date column (M4)
    split_rule: str | None = None  # one of SPLIT_RULES
    target: str | None = None  # the target column, "" when there is none (M4)
    duplicates: str = "error"  # repeated timestamps in the file: "error" or "keep"
    gaps: str = "error"  # missing steps in the file: "error" or "keep"
    published: Published | None = None  # a published number on the test split, to stand beside

    @property
    def directory(self) -> Path | None:
        return None if self.path is None else self.path.parent


@dataclass(frozen=True)
class SplitEntry(Config):
    """One ``[splits.<name>]`` table: its ``file`` (relative to the manifest), data ``rows``
    (header excluded) and ``sha256`` (64 lowercase hex digits)."""

    file: str
    rows: int
    sha256: str

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError(f"rows={self.rows}; expected >= 0")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")


@dataclass(frozen=True)
class Published(Config):
    """A published number on the data set's test split: ``value`` of ``metric`` (what and
    whose, e.g. ``"DNABERT-2 MCC"``), as ``source`` reports it."""

    metric: str
    value: float
    source: str


@dataclass(frozen=True)
class ManifestFile(Config):
    """A ``manifest.toml`` as written, checked by :func:`titans_sci.config.build` (types,
    choices and unknown keys) and by the rules of its ``kind`` (see the module docstring)."""

    name: str
    description: str
    source: str
    license: str
    splits: dict[str, SplitEntry]
    kind: Kind = "dna"
    sequence_length: int | None = None
    num_classes: int | None = None
    test_only: bool = False
    note: str = ""
    freq: str | None = None
    date_column: str | None = None
    split_rule: SplitRule | None = None
    target: str | None = None
    duplicates: Irregular = "error"
    gaps: Irregular = "error"
    published: Published | None = None

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError("key 'splits' is empty")
        dna = ("sequence_length", "num_classes")
        series = ("freq", "date_column", "split_rule", "target")
        own, other = {"dna": (dna, series), "timeseries": (series, dna)}.get(
            self.kind, ((), (*dna, *series))
        )
        for key in own:
            if getattr(self, key) is None:
                raise ValueError(f"missing key {key!r}")
        for key in other:
            if getattr(self, key) is not None:
                raise ValueError(f"key {key!r} is for the other kind, not {self.kind!r}")
        if self.kind == "dna":
            if self.sequence_length is not None and self.sequence_length <= 0:
                raise ValueError("key 'sequence_length' must be positive")
            if self.num_classes is not None and self.num_classes < 2:
                raise ValueError("key 'num_classes' must be at least 2")
            if self.test_only and set(self.splits) != {"test"}:
                raise ValueError(
                    f"key 'splits' must hold only 'test' when test_only = true, got "
                    f"{sorted(self.splits)}"
                )
            return
        if self.test_only:
            raise ValueError(f"key 'test_only' is for kind 'dna', not {self.kind!r}")
        if self.kind == "genome":
            for split, entry in self.splits.items():
                if split_suffix(Path(entry.file))[0] not in GENBANK_SUFFIXES:
                    raise ValueError(f"split {split!r}: {entry.file!r} is not a GenBank file")
            return
        expected = ["train", "test"] if self.split_rule == "m4" else ["data"]
        if sorted(self.splits) != sorted(expected):
            raise ValueError(
                f"key 'splits' must hold exactly {expected} for split_rule "
                f"{self.split_rule!r}, got {sorted(self.splits)}"
            )
        _check_freq_spelling(self.freq)


def _check_freq_spelling(freq: str | None) -> None:
    """A time series' ``freq`` is a pandas offset alias in its canonical spelling."""
    from pandas.tseries.frequencies import to_offset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a deprecated alias ("H") is refused below
            canonical = to_offset(freq).freqstr
    except ValueError as exc:
        raise ValueError(f"key 'freq' is not a pandas offset alias: {freq!r}") from exc
    if canonical != freq:
        raise ValueError(f"key 'freq' must be spelled {canonical!r}, got {freq!r}")


def read_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> DatasetManifest:
    """Parse one ``manifest.toml`` (:class:`ManifestFile`). Raises ``ValueError`` naming the
    file and the bad key.

    When ``root`` is given, the manifest's ``name`` must equal its folder relative to ``root``.
    """
    path = Path(path).resolve()
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from exc
    written = build(ManifestFile, data, where)
    if root is not None:
        expected = path.parent.relative_to(Path(root).resolve()).as_posix()
        if written.name != expected:
            raise ValueError(
                f"{where}: key 'name' is {written.name!r} but the manifest lives in {expected!r}"
            )
    fields = {f.name: getattr(written, f.name) for f in dataclasses.fields(ManifestFile)}
    splits = {
        split: SplitInfo(file=(path.parent / entry.file).resolve(), rows=entry.rows,
                         sha256=entry.sha256)
        for split, entry in written.splits.items()
    }  # fmt: skip
    return DatasetManifest(**{**fields, "splits": splits, "path": path})


def list_datasets(
    root: str | os.PathLike[str] | None = None, kind: str | None = None
) -> list[DatasetManifest]:
    """Every data set under ``root`` (default :func:`datasets_dir`), sorted by name.

    ``kind`` (``"dna"`` or ``"timeseries"``) keeps only the data sets of that kind; ``None``: all.
    Every manifest is parsed either way, so a malformed one raises whatever the filter.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown data set kind {kind!r}; known: {list(KINDS)}")
    root = Path(root) if root is not None else datasets_dir()
    manifests = [read_manifest(p, root) for p in sorted(root.rglob(MANIFEST_NAME))]
    return sorted((m for m in manifests if kind in (None, m.kind)), key=lambda m: m.name)


def load_manifest(name: str, root: str | os.PathLike[str] | None = None) -> DatasetManifest:
    """The manifest of the data set ``name`` (e.g. ``"gue/prom/prom_core_tata"``)."""
    root = Path(root) if root is not None else datasets_dir()
    path = root / name / MANIFEST_NAME
    if name and not Path(name).is_absolute() and ".." not in Path(name).parts and path.is_file():
        return read_manifest(path, root)
    known = ", ".join(m.name for m in list_datasets(root)) or "(none)"
    raise ValueError(f"unknown data set {name!r} under {root}; known: {known}")


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (read in blocks of 1 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _count_bases(path: Path) -> int:
    """The bases of a GenBank file (optionally gzipped): the letters of its ORIGIN sections."""
    opener = gzip.open if path.suffix == ".gz" else open
    bases, inside = 0, False
    with opener(path, "rb") as f:
        for line in f:
            if line.startswith(b"ORIGIN"):
                inside = True
            elif line.startswith(b"//"):
                inside = False
            elif inside:
                bases += sum(1 for c in line if 65 <= (c & 0xDF) <= 90)
    return bases


def _count_rows(path: Path) -> int:
    """Data rows of a CSV (optionally gzipped): non-empty lines after the header.

    Lines are split on ``\\n``; a ``\\r\\n`` ending (the weather file) counts once, and a line of
    only whitespace (a trailing ``\\r``, say) does not count.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(lines - 1, 0)


def verify(manifest: DatasetManifest) -> list[str]:
    """Problems with the files of ``manifest``: missing file, sha256 or row count mismatch.

    An empty list means every split is present and matches its manifest entry.
    """
    problems: list[str] = []
    for split, info in manifest.splits.items():
        prefix = f"{manifest.name} [{split}] {info.file}"
        if not info.file.is_file():
            problems.append(f"{prefix}: missing file")
            continue
        actual = sha256_of(info.file)
        if actual != info.sha256:
            problems.append(f"{prefix}: sha256 mismatch (expected {info.sha256}, got {actual})")
        try:
            rows = (_count_bases if manifest.kind == "genome" else _count_rows)(info.file)
        except (OSError, EOFError, zlib.error) as exc:
            problems.append(f"{prefix}: cannot read rows ({exc})")
            continue
        if rows != info.rows:
            problems.append(f"{prefix}: row count mismatch (expected {info.rows}, got {rows})")
    return problems


def _describe(m: DatasetManifest) -> str:
    sizes = " / ".join(f"{s}={info.rows}" for s, info in m.splits.items())
    if m.kind == "timeseries":
        target = m.target or "-"
        return f"{m.name:<44} freq={m.freq:<6} split={m.split_rule:<14} target={target:<4} {sizes}"
    if m.kind == "genome":
        bases = sum(info.rows for info in m.splits.values())
        return f"{m.name:<44} {len(m.splits)} chromosomes, {bases} bases"
    extra = "  test-only" if m.test_only else ""
    return f"{m.name:<44} len={m.sequence_length:<4} classes={m.num_classes}  {sizes}{extra}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m titans_sci.data.registry",
        description="List or verify the bundled data sets.",
    )
    parser.add_argument("command", choices=["list", "verify"])
    parser.add_argument("names", nargs="*", help="data set names (default: all)")
    parser.add_argument("--kind", choices=KINDS, default=None, help="only data sets of this kind")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"data set folder (default: ${ENV_VAR} or the bundled one)",
    )
    args = parser.parse_args(argv)

    unreadable: list[str] = []  # verify: a bad manifest fails alone, the others are checked
    try:
        if args.names:
            manifests = [load_manifest(n, args.root) for n in args.names]
            manifests = [m for m in manifests if args.kind in (None, m.kind)]
        elif args.command == "verify":
            root = Path(args.root) if args.root is not None else datasets_dir()
            manifests = []
            for path in sorted(root.rglob(MANIFEST_NAME)):
                try:
                    manifest = read_manifest(path, root)
                except ValueError as exc:
                    unreadable.append(str(exc))
                    continue
                if args.kind in (None, manifest.kind):
                    manifests.append(manifest)
            manifests.sort(key=lambda m: m.name)
        else:
            manifests = list_datasets(args.root, kind=args.kind)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not manifests and not unreadable:
        what = f"no {args.kind} data sets" if args.kind else f"no {MANIFEST_NAME}"
        print(f"error: {what} under {args.root or datasets_dir()}", file=sys.stderr)
        return 2

    if args.command == "list":
        for m in manifests:
            print(_describe(m))
        return 0

    failed = len(unreadable)
    for problem in unreadable:
        print(f"FAIL {problem}")
    for m in manifests:
        problems = verify(m)
        if problems:
            failed += 1
            print(f"FAIL {m.name}")
            for p in problems:
                print(f"  {p}")
        else:
            total = sum(info.rows for info in m.splits.values())
            print(f"ok   {m.name} ({len(m.splits)} splits, {total} rows)")
    total = len(manifests) + len(unreadable)
    print(f"{total - failed}/{total} data sets verified")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
