"""DNA sequences: the alphabet, records and their readers.

The alphabet is defined once (:data:`BASES`, :data:`BASE_CODE`, :func:`canonical`, IUPAC
validation, the reverse complement of text). Readers turn FASTA, FASTQ, GenBank, CSV and TSV
files (plain or gzip) into :class:`SequenceRecord` lists, validating every base and refusing
every bad file (truncated gzip, not UTF-8 text, malformed rows, repeated ids...) with one
``ValueError`` line that names the file and, where it can, the record, line or row (the
file-level checks are :mod:`.textfile`'s). Token ids are :mod:`.tokens`'.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from Bio import BiopythonParserWarning, SeqIO
from Bio.Seq import Seq
from Bio.Seq import reverse_complement as _bio_reverse_complement
from Bio.SeqRecord import SeqRecord

from titans_sci.data.textfile import check_file, open_text, read_csv, reading, split_suffix

__all__ = [
    "BASES",
    "BASE_CODE",
    "GENBANK_SUFFIXES",
    "base_codes",
    "canonical",
    "SequenceRecord",
    "read_sequences",
    "iter_sequences",
    "iter_genbank",
    "validate_sequence",
    "reverse_complement",
]

IUPAC_NUCLEOTIDES = "ACGTUNRYKMSWBDHV"
#: The four bases in code order (A=0, C=1, G=2, T=3). RNA's ``U`` is ``T`` and case does not
#: matter (lowercase is soft-masking) everywhere: the tokenizer, every k-mer count and check.
BASES = "ACGT"
#: Byte -> base code: 0..3 for ``ACGTU`` in either case (``U`` as ``T``), 4 for anything else
#: (an IUPAC ambiguity code, ``N``).
BASE_CODE = np.full(256, 4, dtype=np.uint8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "TtUu")):
    for _letter in _letters:
        BASE_CODE[ord(_letter)] = _code


def base_codes(text: str) -> np.ndarray:
    """The base code (:data:`BASE_CODE`) of every letter of ``text``: ``[len(text)]`` uint8
    (a non-ASCII letter is ``4``, as any letter that is not a base)."""
    return BASE_CODE[np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8)]


def canonical(sequence: str) -> str:
    """``sequence`` as every comparison of bases reads it: upper case, ``U`` as ``T``."""
    return sequence.upper().replace("U", "T")


_INVALID_BASE = re.compile(f"[^{IUPAC_NUCLEOTIDES}{IUPAC_NUCLEOTIDES.lower()}]")

_SEQIO_FORMATS = {
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".fq": "fastq",
    ".fastq": "fastq",
    ".gb": "genbank",
    ".gbk": "genbank",
    ".genbank": "genbank",
}
#: The suffixes of a GenBank file (optionally + ``.gz``).
GENBANK_SUFFIXES = tuple(suffix for suffix, fmt in _SEQIO_FORMATS.items() if fmt == "genbank")
_TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t"}
# What Bio.SeqIO raises on a malformed file (its messages are reported with the file name).
_PARSER_ERRORS = (ValueError, IndexError, KeyError, AssertionError, TypeError, AttributeError)


# --------------------------------------------------------------------------------------------
# Records and readers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceRecord:
    """One named DNA sequence, as read from a file.

    Attributes:
        id: record identifier (FASTA/FASTQ/GenBank id, or ``"row<n>"`` for CSV/TSV, 1-based).
        sequence: the bases as written in the file; case is kept (lowercase = soft-masked).
        label: integer class label from a CSV/TSV ``label`` column, else ``None``.
    """

    id: str
    sequence: str
    label: int | None = None


def validate_sequence(sequence: str, *, source: str, record: str, start: int = 0) -> str:
    """Check that ``sequence`` is non-empty IUPAC nucleotide text and return it unchanged.

    Allowed letters are ``ACGTUNRYKMSWBDHV`` in either case (lowercase = soft-masked).
    ``start``: where ``sequence`` begins in its record (a piece of a long record), so that a
    bad character's position is the record's.

    Raises:
        ValueError: naming ``source`` (the file), ``record`` and, for a bad character, its
            1-based position and the character itself.
    """
    if not sequence:
        raise ValueError(f"{source}: record {record!r} has an empty sequence")
    bad = _INVALID_BASE.search(sequence)
    if bad is not None:
        raise ValueError(
            f"{source}: record {record!r} has invalid character {bad.group()!r} at position "
            f"{start + bad.start() + 1} (allowed: IUPAC nucleotide codes {IUPAC_NUCLEOTIDES}, "
            "any case)"
        )
    return sequence


# Readers


def read_sequences(path: str | Path, *, allow_duplicate_ids: bool = False) -> list[SequenceRecord]:
    """Read every record of a FASTA, FASTQ, GenBank, CSV or TSV file (optionally ``.gz``).

    The format is chosen by suffix: ``.fa/.fasta/.fna``, ``.fq/.fastq``,
    ``.gb/.gbk/.genbank``, ``.csv``, ``.tsv``, each optionally followed by ``.gz``. Files are
    read as UTF-8 text; a leading UTF-8 byte-order mark is accepted (and dropped), and so are
    blank lines before a FASTA file's first ``>`` header. Every sequence is validated with
    :func:`validate_sequence`; nothing is dropped. Case is kept as read, except that Biopython
    reads GenBank bases uppercase (no soft mask there). CSV/TSV records are named
    ``row1, row2, ...``.

    Args:
        path: the file.
        allow_duplicate_ids: accept two records with the same id (FASTA/FASTQ/GenBank);
            by default that is an error, since the id names a record's rows in the output.

    Raises:
        ValueError: one line naming the file (and the record, line or row): a missing file, a
            directory, an unknown suffix, a file with no records, a truncated or corrupt gzip
            file, a file that is not UTF-8 text, text before a FASTA file's first header, a
            parse error (e.g. a CSV row with extra fields), a repeated record id, an empty
            record, an invalid character, or (CSV/TSV) a missing ``sequence`` column or a
            non-integer label.
    """
    path = Path(path)
    return list(iter_sequences(path, allow_duplicate_ids=allow_duplicate_ids))


def iter_sequences(
    path: str | Path, *, allow_duplicate_ids: bool = False
) -> Iterator[SequenceRecord]:
    """The records of a sequence file one at a time (as :func:`read_sequences`, but a FASTA,
    FASTQ or GenBank file is parsed lazily, so only one record is in memory at a time; the ids
    seen so far are remembered to refuse a repeated one). An error in the file is raised when
    the iteration reaches it."""
    path = Path(path)
    suffix, compressed = split_suffix(path)
    check_file(path)
    if suffix in _SEQIO_FORMATS:
        empty = True
        records = _iter_seqio(path, _SEQIO_FORMATS[suffix], compressed, allow_duplicate_ids)
        for record, _ in records:
            empty = False
            yield record
        if empty:
            raise ValueError(f"{path}: no records found; is it empty?")
    elif suffix in _TABLE_SEPARATORS:
        table = _read_table(path, _TABLE_SEPARATORS[suffix], compressed, allow_duplicate_ids)
        if not table:
            raise ValueError(f"{path}: no records found (a header but no rows)")
        yield from table
    else:
        known = ", ".join(sorted([*_SEQIO_FORMATS, *_TABLE_SEPARATORS]))
        raise ValueError(
            f"{path}: unknown sequence file suffix {suffix!r}; rename it to one of: {known} "
            f"(optionally + .gz)"
        )


def iter_genbank(path: str | Path) -> Iterator[tuple[SequenceRecord, SeqRecord]]:
    """The records of a GenBank file (optionally ``.gz``) one at a time, each checked as
    :func:`iter_sequences` checks it, with Biopython's parsed record beside it (for its
    features)."""
    path = Path(path)
    check_file(path)
    suffix, compressed = split_suffix(path)
    if suffix not in GENBANK_SUFFIXES:
        known = ", ".join(GENBANK_SUFFIXES)
        raise ValueError(f"{path}: not a GenBank file name (expected {known}, optionally + .gz)")
    empty = True
    for pair in _iter_seqio(path, "genbank", compressed, allow_duplicate_ids=False):
        empty = False
        yield pair
    if empty:
        raise ValueError(f"{path}: no records found; is it empty?")


def _iter_seqio(
    path: Path, fmt: str, compressed: bool, allow_duplicate_ids: bool
) -> Iterator[tuple[SequenceRecord, SeqRecord]]:
    """The records of a FASTA/FASTQ/GenBank file, parsed lazily with ``Bio.SeqIO``, each with
    Biopython's record."""
    seen: dict[str, int] = {}
    with reading(path, compressed), open_text(path, compressed) as handle:
        if fmt == "fasta":
            _skip_to_first_header(handle, path)
        parser = SeqIO.parse(handle, fmt)
        index = 0
        while True:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", BiopythonParserWarning)
                    rec = next(parser)
            except StopIteration:
                return
            except (UnicodeDecodeError, EOFError, zlib.error, OSError):
                raise  # the file itself, not its format: reading names it
            except _PARSER_ERRORS as err:
                detail = " ".join(str(err).split()) or type(err).__name__
                raise ValueError(
                    f"{path}: cannot parse as {fmt} (after {index} records): {detail}"
                ) from err
            index += 1
            name = rec.id or f"#{index}"
            _refuse_cut_record(caught, path, name)
            sequence = _sequence_text(rec.seq, path, name)
            validate_sequence(sequence, source=str(path), record=name)
            if not allow_duplicate_ids:
                first = seen.setdefault(name, index)
                if first != index:
                    raise duplicate_id(path, name, first, index)
            yield SequenceRecord(id=name, sequence=sequence), rec


#: What Biopython says of a GenBank record cut short; any of them refuses the record.
_CUT_SHORT = ("Premature end of file", "Expected sequence length")


def _refuse_cut_record(caught: list[warnings.WarningMessage], path: Path, name: str) -> None:
    """Refuse a record that Biopython warned was cut short (a GenBank record with fewer bases
    than its LOCUS line states, a file ending inside its sequence); other warnings are passed
    on as they came."""
    for warning in caught:
        text = " ".join(str(warning.message).split())
        if issubclass(warning.category, BiopythonParserWarning) and text.startswith(_CUT_SHORT):
            raise ValueError(
                f"{path}: record {name!r} is cut short ({text.rstrip('.')}); the file is "
                "truncated: copy or download it again"
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)  # fmt: skip


def duplicate_id(path: Path, name: str, first: int, again: int) -> ValueError:
    """The error for a record id seen twice (records ``first`` and ``again``, 1-based)."""
    return ValueError(
        f"{path}: record id {name!r} appears twice (records {first} and {again}); give each "
        "record its own id (or accept repeats with --allow-duplicate-ids; "
        "allow_duplicate_ids=True in Python)"
    )


def _skip_to_first_header(handle: IO[str], path: Path) -> None:
    """Leave ``handle`` at its first non-blank line, which must be a FASTA ``>`` header (an
    empty file is left as it is)."""
    number = 0
    while True:
        position = handle.tell()
        line = handle.readline()
        number += 1
        if not line:
            return
        if line.strip():
            break
    if not line.startswith(">"):
        shown = line.strip()
        shown = shown[:40] + "..." if len(shown) > 40 else shown
        raise ValueError(
            f"{path}: line {number}: text before the first '>' header ({shown!r}); a FASTA "
            f"file starts with a '>' header line: remove the text before it"
        )
    handle.seek(position)


def _sequence_text(seq: Seq, path: Path, name: str) -> str:
    """The bases of a parsed record as text."""
    try:
        return str(seq)
    except UnicodeDecodeError:  # non-ASCII letters: validate_sequence names the first bad one
        return bytes(seq).decode("utf-8", "replace")
    except ValueError as err:  # e.g. a GenBank CONTIG record without bases
        raise ValueError(f"{path}: record {name!r}: {err}") from err


def _read_table(
    path: Path, sep: str, compressed: bool, allow_duplicate_ids: bool = False
) -> list[SequenceRecord]:
    """Read a CSV/TSV file with a ``sequence`` column, an optional integer ``label`` and an
    optional ``id`` (the record ids; else ``row1``, ``row2``, ...)."""
    frame = read_csv(path, sep, compressed, dtype=str, keep_default_na=False)
    if "sequence" not in frame.columns:
        columns = ", ".join(repr(str(c)) for c in frame.columns)
        raise ValueError(
            f"{path}: no 'sequence' column (columns: {columns}); name the column of bases "
            f"'sequence'"
        )
    labels = frame["label"] if "label" in frame.columns else [None] * len(frame)
    ids = frame["id"] if "id" in frame.columns else [f"row{i}" for i in range(1, len(frame) + 1)]
    records: list[SequenceRecord] = []
    seen: dict[str, int] = {}
    for row, (name, sequence, label) in enumerate(
        zip(ids, frame["sequence"], labels, strict=True), 1
    ):
        if not name.strip():
            raise ValueError(f"{path}: data row {row}: an empty id")
        first = seen.setdefault(name, row)
        if first != row and not allow_duplicate_ids:
            raise duplicate_id(path, name, first, row)
        validate_sequence(sequence, source=str(path), record=name)
        records.append(
            SequenceRecord(id=name, sequence=sequence, label=_parse_label(label, path, name))
        )
    return records


def _parse_label(value: str | None, path: Path, record: str) -> int | None:
    """Parse a CSV/TSV label cell as an integer (``None`` when there is no label column)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"{path}: record {record!r} has label {value!r}, which is not an integer"
        ) from None


# --------------------------------------------------------------------------------------------
# Reverse complement
# --------------------------------------------------------------------------------------------


def reverse_complement(seq: str) -> str:
    """IUPAC-aware reverse complement that keeps case (``"acgTR"`` -> ``"YAcgt"``)."""
    return _bio_reverse_complement(seq)
