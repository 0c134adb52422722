"""DNA adapter: sequence readers, tokenizers, reverse complement, batching and embedding.

Readers turn FASTA, FASTQ, GenBank, CSV and TSV files (plain or gzip) into
:class:`SequenceRecord` lists, validating every base against the IUPAC nucleotide alphabet and
refusing every bad file (truncated gzip, not UTF-8 text, malformed rows, repeated ids...) with one
``ValueError`` line that names the file and, where it can, the record, line or row.
Tokenizers map sequences to integer ids that share five special tokens
(``[PAD]=0, [CLS]=1, [SEP]=2, [MASK]=3, [UNK]=4``). Batching helpers pad id lists and group
sequences of similar length; :class:`DNAEmbedding` embeds the ids, optionally with a
soft-mask (lowercase) channel.
"""

from __future__ import annotations

import codecs
import gzip
import re
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from Bio import BiopythonParserWarning, SeqIO
from Bio.Seq import Seq
from Bio.Seq import reverse_complement as _bio_reverse_complement
from torch import Tensor, nn

from titans_sci.padding import reversal

__all__ = [
    "SPECIAL_TOKENS",
    "PAD_ID",
    "CLS_ID",
    "SEP_ID",
    "MASK_ID",
    "UNK_ID",
    "BASES",
    "BASE_CODE",
    "canonical",
    "SequenceRecord",
    "read_sequences",
    "validate_sequence",
    "NucleotideTokenizer",
    "reverse_complement",
    "reverse_complement_ids",
    "pad_batch",
    "DNAEmbedding",
]

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
PAD_ID, CLS_ID, SEP_ID, MASK_ID, UNK_ID = range(len(SPECIAL_TOKENS))

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
_TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t"}
_GZIP_MAGIC = b"\x1f\x8b"
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


def _split_suffix(path: Path) -> tuple[str, bool]:
    """Return the format suffix (lowercase, ``.gz`` stripped) and whether the file is gzip."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), compressed


# How reading a file fails, turned into one ValueError naming the file (these helpers are
# shared with titans_sci.data.timeseries).


def _check_file(path: Path) -> None:
    """Refuse a missing path or a directory, naming it."""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a file; give the file inside it")
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    compression = _OTHER_COMPRESSION.get(path.suffix.lower())
    if compression:
        raise ValueError(
            f"{path}: {compression}-compressed; titans-sci reads plain or gzip files: "
            f"decompress it, or recompress it with gzip (name ending in .gz)"
        )


_OTHER_COMPRESSION = {".bz2": "bzip2", ".zip": "zip", ".xz": "xz", ".zst": "zstd", ".7z": "7z"}


def _open_text(path: Path, compressed: bool) -> IO[str]:
    """Open ``path`` for reading UTF-8 text (a leading byte-order mark is dropped), through
    gzip when ``compressed``; a missing file, a directory or an unreadable file is refused."""
    _check_file(path)
    try:
        if compressed:
            return gzip.open(path, "rt", encoding="utf-8-sig")
        return open(path, encoding="utf-8-sig")
    except OSError as err:
        raise ValueError(f"{path}: cannot open it: {err.strerror or err}") from err


@contextmanager
def _reading(path: Path, compressed: bool) -> Iterator[None]:
    """Turn the failures of reading ``path`` (however lazily, inside the ``with`` body) into one
    ValueError naming the file: bad gzip data, bytes that are not UTF-8 text, an I/O error."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise ValueError(_not_text(path, compressed, err)) from err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(_bad_gzip(path)) from err
    except OSError as err:
        raise ValueError(f"{path}: cannot read it: {err.strerror or err}") from err


def _starts_with_gzip_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as raw:
            return raw.read(2) == _GZIP_MAGIC
    except OSError:
        return False


def _bad_gzip(path: Path) -> str:
    if not _starts_with_gzip_magic(path):
        return (
            f"{path}: not a gzip file, though its name ends in .gz; compress it with gzip, or "
            f"rename it without .gz"
        )
    return f"{path}: truncated or corrupt gzip file; re-download or re-compress it"


def _not_text(path: Path, compressed: bool, err: UnicodeDecodeError | None = None) -> str:
    """The message for a file that is not UTF-8 text: the first offending byte and its offset
    (in the uncompressed data of a gzip file)."""
    if not compressed and _starts_with_gzip_magic(path):
        return (
            f"{path}: gzip-compressed, but its name does not end in .gz; rename it to "
            f"{path.name}.gz"
        )
    found = _first_non_text_byte(path, compressed)
    if found is None:  # cannot locate it again: fall back on the decoder's own words
        detail = str(err) if err is not None else "not UTF-8"
    else:
        offset, byte = found
        where = "of the uncompressed data " if compressed else ""
        what = "a NUL byte" if byte == 0 else "not UTF-8"
        detail = f"byte 0x{byte:02x} at offset {offset} {where}is {what}"
    return f"{path}: not a text file ({detail}); if it is text, save it as UTF-8"


def _first_non_text_byte(path: Path, compressed: bool) -> tuple[int, int] | None:
    """``(offset, byte)`` of the first byte of the (uncompressed) file that is NUL or not
    UTF-8, read in chunks; ``None`` if there is none or the file cannot be read again."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    fed = 0
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as raw:
            while True:
                chunk = raw.read1(1 << 16) if compressed else raw.read(1 << 20)
                pending = len(decoder.getstate()[0])
                nul = chunk.find(b"\x00")
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as err:
                    offset = fed - pending + err.start
                    if nul >= 0 and fed + nul < offset:
                        return fed + nul, 0
                    return offset, err.object[err.start]
                if nul >= 0:
                    return fed + nul, 0
                if not chunk:
                    return None
                fed += len(chunk)
    except (OSError, EOFError, zlib.error):
        return None


class _NoNul:
    """A text stream that reads ``handle`` and refuses a NUL character: pandas' C parser
    silently cuts a field short at one, so a binary file would otherwise parse as text."""

    def __init__(self, handle: IO[str], path: Path, compressed: bool) -> None:
        self._handle, self._path, self._compressed = handle, path, compressed

    def _checked(self, text: str) -> str:
        if "\x00" in text:
            raise ValueError(_not_text(self._path, self._compressed))
        return text

    def read(self, size: int = -1) -> str:
        return self._checked(self._handle.read(size))

    def readline(self, size: int = -1) -> str:
        return self._checked(self._handle.readline(size))

    def __iter__(self) -> Iterator[str]:
        return iter(self.readline, "")


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def _read_csv(path: Path, sep: str, compressed: bool, **options: Any) -> pd.DataFrame:
    """``pd.read_csv`` of a UTF-8 (optionally gzip) CSV/TSV file, every failure one ValueError
    naming the file (and the line, for a row with the wrong number of fields)."""
    named = "a tab" if sep == "\t" else repr(sep)
    with _reading(path, compressed), _open_text(path, compressed) as handle:
        try:
            frame = pd.read_csv(_NoNul(handle, path, compressed), sep=sep, **options)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"{path}: empty file (no header, no rows)") from err
        except pd.errors.ParserError as err:
            text = str(err).strip()
            fields, quote = _FIELDS.search(text), _OPEN_QUOTE.search(text)
            if fields and _semicolons(path, compressed):
                raise ValueError(_semicolon_message(path)) from err
            if fields:
                expected, line, saw = fields.groups()
                raise ValueError(
                    f"{path}: line {line}: expected {expected} fields, saw {saw}; remove the "
                    f"extra field, or quote a field that holds {named}"
                ) from err
            if quote:
                raise ValueError(
                    f"{path}: line {int(quote.group(1)) + 1}: a quoted field is never closed; "
                    f"close the quote (or remove the stray '\"')"
                ) from err
            detail = text.removeprefix("Error tokenizing data. C error: ")
            raise ValueError(f"{path}: cannot parse as CSV: {detail}") from err
    if len(frame.columns) == 1 and ";" in str(frame.columns[0]):
        raise ValueError(_semicolon_message(path))
    if not isinstance(frame.index, pd.RangeIndex):
        if _semicolons(path, compressed):
            raise ValueError(_semicolon_message(path))
        # The first data row had more fields than the header: pandas took them as an index.
        columns = len(frame.columns)
        raise ValueError(
            f"{path}: line {_first_data_line(path, compressed)}: expected {columns} fields, "
            f"saw {columns + frame.index.nlevels}; remove the extra field, or quote a field that "
            f"holds {named}"
        )
    return frame


def _semicolons(path: Path, compressed: bool) -> bool:
    """Whether the header line is separated by semicolons (a CSV saved with a decimal
    comma)."""
    with _open_text(path, compressed) as handle:
        header = next((line for line in handle if line.strip()), "")
    return header.count(";") > header.count(",")


def _semicolon_message(path: Path) -> str:
    return (
        f"{path}: fields separated by ';' (a spreadsheet's export with a decimal comma?); "
        "save it as CSV with ',' between fields and '.' as the decimal point"
    )


def _first_data_line(path: Path, compressed: bool) -> int:
    """The 1-based line number of a table's first data row: its second non-blank line."""
    with _open_text(path, compressed) as handle:
        seen = 0
        for number, line in enumerate(handle, start=1):
            seen += bool(line.strip())
            if seen == 2:
                return number
    return 2


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
    suffix, compressed = _split_suffix(path)
    _check_file(path)
    if suffix in _SEQIO_FORMATS:
        empty = True
        records = _iter_seqio(path, _SEQIO_FORMATS[suffix], compressed, allow_duplicate_ids)
        for record in records:
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


def _iter_seqio(
    path: Path, fmt: str, compressed: bool, allow_duplicate_ids: bool
) -> Iterator[SequenceRecord]:
    """The records of a FASTA/FASTQ/GenBank file, parsed lazily with ``Bio.SeqIO``."""
    seen: dict[str, int] = {}
    with _reading(path, compressed), _open_text(path, compressed) as handle:
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
                raise  # the file itself, not its format: _reading names it
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
            yield SequenceRecord(id=name, sequence=sequence)


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
    frame = _read_csv(path, sep, compressed, dtype=str, keep_default_na=False)
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
# Tokenizers
# --------------------------------------------------------------------------------------------


def _as_id_list(ids: Sequence[int] | Tensor) -> list[int]:
    """Turn a 1-D tensor or a sequence of ints into a list of Python ints."""
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise ValueError(f"expected 1-D ids, got shape {tuple(ids.shape)}")
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


class NucleotideTokenizer:
    """One token per base: specials ``0..4``, then ``A=5, C=6, G=7, T=8, N=9``.

    ``U`` maps to ``T``; IUPAC ambiguity codes ``RYKMSWBDHV`` map to ``N``; lowercase
    (soft-masked) bases map to the id of their uppercase form. With ``keep_soft_mask=True``,
    :meth:`encode_with_mask` also reports which positions were lowercase.
    """

    BASES: tuple[str, ...] = ("A", "C", "G", "T", "N")

    def __init__(self, keep_soft_mask: bool = False) -> None:
        self.keep_soft_mask = keep_soft_mask
        self.tokens: tuple[str, ...] = SPECIAL_TOKENS + self.BASES
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        upper = {base: self.token_to_id[base] for base in self.BASES}
        upper["U"] = upper["T"]  # as BASE_CODE reads it
        upper.update(dict.fromkeys("RYKMSWBDHV", upper["N"]))
        self._char_to_id = {**upper, **{c.lower(): i for c, i in upper.items()}}

    @property
    def vocab_size(self) -> int:
        """Number of ids (specials + ``ACGTN``): 10."""
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        """Id of ``[PAD]``."""
        return PAD_ID

    def encode(self, seq: str) -> list[int]:
        """Map each base of ``seq`` to its id; length ``len(seq)``.

        Raises:
            ValueError: a character that is not an IUPAC nucleotide code (1-based position).
        """
        try:
            return [self._char_to_id[c] for c in seq]
        except KeyError:
            validate_sequence(seq, source="NucleotideTokenizer.encode", record="<input>")
            raise  # unreachable: validate_sequence raises for every unknown character

    def encode_with_mask(self, seq: str) -> tuple[list[int], list[bool]]:
        """Return ``(ids, soft_mask)``, both of length ``len(seq)``; True = lowercase base.

        Raises:
            ValueError: if the tokenizer was built with ``keep_soft_mask=False``.
        """
        if not self.keep_soft_mask:
            raise ValueError("encode_with_mask needs NucleotideTokenizer(keep_soft_mask=True)")
        return self.encode(seq), [c.islower() for c in seq]

    def decode(self, ids: Sequence[int] | Tensor, soft_mask: Sequence[bool] | None = None) -> str:
        """Map ids back to bases (uppercase, or lowercase where ``soft_mask`` is True).

        ``[PAD]``, ``[CLS]`` and ``[SEP]`` are skipped; ``[MASK]`` and ``[UNK]`` stand for an
        unknown base and decode to ``N``. Ambiguity codes and ``U`` do not survive a round trip
        (they decode to ``N`` and ``T``).
        """
        id_list = _as_id_list(ids)
        mask = [False] * len(id_list) if soft_mask is None else list(soft_mask)
        if len(mask) != len(id_list):
            raise ValueError(f"soft_mask has length {len(mask)}, ids have {len(id_list)}")
        out = []
        for i, lower in zip(id_list, mask, strict=True):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i in (PAD_ID, CLS_ID, SEP_ID):
                continue
            base = "N" if i in (MASK_ID, UNK_ID) else self.tokens[i]
            out.append(base.lower() if lower else base)
        return "".join(out)


# --------------------------------------------------------------------------------------------
# Reverse complement
# --------------------------------------------------------------------------------------------


def reverse_complement(seq: str) -> str:
    """IUPAC-aware reverse complement that keeps case (``"acgTR"`` -> ``"YAcgt"``)."""
    return _bio_reverse_complement(seq)


def _complement_table(tokenizer: NucleotideTokenizer) -> Tensor:
    """Lookup ``[vocab_size]`` long: id -> id of its complement (specials and N unchanged)."""
    table = torch.arange(tokenizer.vocab_size)
    for a, b in (("A", "T"), ("C", "G")):
        ia, ib = tokenizer.token_to_id[a], tokenizer.token_to_id[b]
        table[ia], table[ib] = ib, ia
    return table


def reverse_complement_ids(
    ids: Tensor, tokenizer: NucleotideTokenizer, mask: Tensor | None = None
) -> Tensor:
    """Reverse complement single-nucleotide ids within the real (unpadded) part of each row.

    Args:
        ids: ``[B, T]`` long ids from a :class:`NucleotideTokenizer`.
        tokenizer: the tokenizer that produced ``ids``.
        mask: ``[B, T]`` bool, True = real token; ``None`` = every position is real. Only the
            real positions are reversed (in their own order), so left or right padding stays
            where it is.

    Returns:
        ``[B, T]`` long: A<->T, C<->G, N and special ids unchanged, real tokens reversed.
    """
    if not isinstance(tokenizer, NucleotideTokenizer):
        raise TypeError("reverse_complement_ids needs single-nucleotide ids (NucleotideTokenizer)")
    if ids.dim() != 2:
        raise ValueError(f"ids must be [B, T], got shape {tuple(ids.shape)}")
    if mask is None:
        mask = torch.ones_like(ids, dtype=torch.bool)
    if mask.shape != ids.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool of shape {tuple(ids.shape)}")
    complemented = _complement_table(tokenizer).to(ids.device)[ids]
    reversed_ids = complemented.gather(1, reversal(mask, ids.shape[1]))
    return torch.where(mask, reversed_ids, ids)


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def pad_batch(
    id_lists: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[Tensor, Tensor]:
    """Pad id lists to a common length.

    Args:
        id_lists: ``B`` lists of ids (may differ in length).
        pad_id: id written into padding positions.
        side: ``"right"`` (pad after the tokens) or ``"left"`` (pad before).

    Returns:
        ``(ids, mask)``: ``[B, T]`` long and ``[B, T]`` bool (True = real token), with ``T``
        the longest length.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if len(id_lists) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    width = max(len(ids) for ids in id_lists)
    out = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.bool)
    for row, ids in enumerate(id_lists):
        n = len(ids)
        start = 0 if side == "right" else width - n
        out[row, start : start + n] = torch.as_tensor(list(ids), dtype=torch.long)
        mask[row, start : start + n] = True
    return out, mask


# --------------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------------


class DNAEmbedding(nn.Module):
    """Token embedding with an optional soft-mask (lowercase) channel.

    The soft-mask channel is an ``nn.Embedding(2, dim, padding_idx=0)`` added to the token
    embedding: uppercase positions add zero, soft-masked positions add a learned vector. So
    ``soft_mask=None`` equals an all-False mask, and padding positions stay zero.
    """

    def __init__(
        self, vocab_size: int, dim: int, pad_id: int = PAD_ID, soft_mask_channel: bool = False
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.soft_mask = nn.Embedding(2, dim, padding_idx=0) if soft_mask_channel else None

    def forward(self, ids: Tensor, soft_mask: Tensor | None = None) -> Tensor:
        """Embed ``ids [B, T]`` (and ``soft_mask [B, T]`` bool, True = lowercase) to
        ``[B, T, dim]``."""
        out = self.tokens(ids)
        if soft_mask is not None:
            if self.soft_mask is None:
                raise ValueError("soft_mask given but DNAEmbedding has soft_mask_channel=False")
            if soft_mask.shape != ids.shape:
                raise ValueError(
                    f"soft_mask shape {tuple(soft_mask.shape)} != ids shape {tuple(ids.shape)}"
                )
            out = out + self.soft_mask(soft_mask.long())
        return out
