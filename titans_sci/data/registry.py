"""Registry of the data sets bundled under the repository's ``datasets/`` folder.

Each data set is a folder ``datasets/<collection>/<task path>/`` holding its split files and a
``manifest.toml`` that records where the data come from, the license and, for every split, the
file name, the number of data rows (header excluded) and the sha256 of the file as stored.
:func:`verify` checks the files against their manifest.

Two kinds of data set (manifest key ``kind``, default ``"dna"``):

* ``"dna"``: sequence classification; requires ``sequence_length`` and ``num_classes``; splits
  ``train``/``dev``/``test`` (or only ``test`` with ``test_only = true``).
* ``"timeseries"``: forecasting; requires ``freq`` (pandas offset alias, e.g. ``"h"``),
  ``date_column`` (``""`` for a wide file without one), ``split_rule`` (one of
  :data:`SPLIT_RULES`) and ``target`` (``""`` when there is none). The single file is the split
  ``data``; a ``split_rule = "m4"`` data set has ``train`` and ``test`` files instead. Optional
  ``duplicates`` and ``gaps`` (``"error"`` or ``"keep"``, default ``"error"``) say whether the
  file's repeated timestamps and missing steps are kept as they are (the loaders in
  :mod:`titans_sci.data.timeseries` refuse them otherwise).

The folder is :func:`titans_sci.resources.datasets_dir`: the top-level ``datasets/`` of a source
checkout, or the copy an installed wheel ships inside the package; set ``TITANS_SCI_DATASETS`` to
point somewhere else.

Command line::

    python -m titans_sci.data.registry list [--kind dna|timeseries]
    python -m titans_sci.data.registry verify [--kind dna|timeseries] [NAME ...]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

#: The values of a manifest's ``kind`` key.
KINDS = ("dna", "timeseries")
#: The values of a time-series manifest's ``split_rule`` key (see
#: :func:`titans_sci.data.timeseries.split_borders`; ``"m4"``: the train and test files as given).
SPLIT_RULES = ("ett_hour", "ett_minute", "ratio_70_10_20", "m4")
#: The values of a time-series manifest's optional ``duplicates`` and ``gaps`` keys.
IRREGULAR_POLICIES = ("error", "keep")

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

    @property
    def directory(self) -> Path | None:
        return None if self.path is None else self.path.parent


def _require(table: dict[str, Any], key: str, kind: type, where: str, label: str) -> Any:
    if key not in table:
        raise ValueError(f"{where}: missing key {label!r}")
    value = table[key]
    # bool is a subclass of int: do not accept true/false where a number is required.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(
            f"{where}: key {label!r} must be {kind.__name__}, got {type(value).__name__} "
            f"({value!r})"
        )
    return value


def _optional_str(table: dict[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{where}: key {key!r} must be str, got {type(value).__name__}")
    return value


def _choice(value: str, choices: Sequence[str], where: str, key: str) -> str:
    if value not in choices:
        raise ValueError(f"{where}: key {key!r} must be one of {list(choices)}, got {value!r}")
    return value


def _dna_fields(data: dict[str, Any], where: str) -> dict[str, Any]:
    sequence_length = _require(data, "sequence_length", int, where, "sequence_length")
    num_classes = _require(data, "num_classes", int, where, "num_classes")
    if sequence_length <= 0:
        raise ValueError(f"{where}: key 'sequence_length' must be positive")
    if num_classes < 2:
        raise ValueError(f"{where}: key 'num_classes' must be at least 2")
    return {"sequence_length": sequence_length, "num_classes": num_classes}


def _timeseries_fields(data: dict[str, Any], where: str) -> dict[str, Any]:
    freq = _require(data, "freq", str, where, "freq")
    from pandas.tseries.frequencies import to_offset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a deprecated alias ("H") is refused below
            canonical = to_offset(freq).freqstr
    except ValueError as exc:
        raise ValueError(f"{where}: key 'freq' is not a pandas offset alias: {freq!r}") from exc
    if canonical != freq:
        raise ValueError(f"{where}: key 'freq' must be spelled {canonical!r}, got {freq!r}")
    fields = {
        "freq": freq,
        "date_column": _require(data, "date_column", str, where, "date_column"),
        "split_rule": _choice(
            _require(data, "split_rule", str, where, "split_rule"), SPLIT_RULES, where, "split_rule"
        ),
        "target": _require(data, "target", str, where, "target"),
    }
    for key in ("duplicates", "gaps"):
        fields[key] = _choice(
            _optional_str(data, key, "error", where), IRREGULAR_POLICIES, where, key
        )
    for key in ("sequence_length", "num_classes"):
        if key in data:
            raise ValueError(f"{where}: key {key!r} is for kind 'dna', not 'timeseries'")
    return fields


def _check_split_names(
    splits: dict[str, SplitInfo], kind: str, fields: dict[str, Any], test_only: bool, where: str
) -> None:
    if kind == "dna":
        if test_only and set(splits) != {"test"}:
            raise ValueError(
                f"{where}: key 'splits' must hold only 'test' when test_only = true, "
                f"got {sorted(splits)}"
            )
        return
    if test_only:
        raise ValueError(f"{where}: key 'test_only' is for kind 'dna', not 'timeseries'")
    expected = ["train", "test"] if fields["split_rule"] == "m4" else ["data"]
    if sorted(splits) != sorted(expected):
        raise ValueError(
            f"{where}: key 'splits' must hold exactly {expected} for split_rule "
            f"{fields['split_rule']!r}, got {sorted(splits)}"
        )


def read_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> DatasetManifest:
    """Parse one ``manifest.toml``. Raises ``ValueError`` naming the file and the bad key.

    When ``root`` is given, the manifest's ``name`` must equal its folder relative to ``root``.
    """
    path = Path(path).resolve()
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from exc

    name = _require(data, "name", str, where, "name")
    if root is not None:
        expected = path.parent.relative_to(Path(root).resolve()).as_posix()
        if name != expected:
            raise ValueError(
                f"{where}: key 'name' is {name!r} but the manifest lives in {expected!r}"
            )
    description = _require(data, "description", str, where, "description")
    source = _require(data, "source", str, where, "source")
    license_ = _require(data, "license", str, where, "license")
    kind = _choice(_optional_str(data, "kind", "dna", where), KINDS, where, "kind")
    fields = _dna_fields(data, where) if kind == "dna" else _timeseries_fields(data, where)
    test_only = data.get("test_only", False)
    if not isinstance(test_only, bool):
        raise ValueError(f"{where}: key 'test_only' must be bool, got {type(test_only).__name__}")
    note = data.get("note", "")
    if not isinstance(note, str):
        raise ValueError(f"{where}: key 'note' must be str, got {type(note).__name__}")

    raw_splits = _require(data, "splits", dict, where, "splits")
    if not raw_splits:
        raise ValueError(f"{where}: key 'splits' is empty")
    splits: dict[str, SplitInfo] = {}
    for split, table in raw_splits.items():
        label = f"splits.{split}"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: key {label!r} must be a table")
        file = _require(table, "file", str, where, f"{label}.file")
        rows = _require(table, "rows", int, where, f"{label}.rows")
        sha256 = _require(table, "sha256", str, where, f"{label}.sha256")
        if rows < 0:
            raise ValueError(f"{where}: key '{label}.rows' must be non-negative")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{where}: key '{label}.sha256' must be 64 lowercase hex digits")
        splits[split] = SplitInfo(file=(path.parent / file).resolve(), rows=rows, sha256=sha256)
    _check_split_names(splits, kind, fields, test_only, where)

    return DatasetManifest(
        name=name,
        description=description,
        source=source,
        license=license_,
        sequence_length=fields.get("sequence_length"),
        num_classes=fields.get("num_classes"),
        splits=splits,
        test_only=test_only,
        note=note,
        path=path,
        kind=kind,
        **{k: v for k, v in fields.items() if k not in ("sequence_length", "num_classes")},
    )


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
            rows = _count_rows(info.file)
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
