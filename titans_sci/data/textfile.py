"""Reading the text files data come in (plain or gzip): one ``ValueError`` line naming the file
(and the line or byte) for everything that can go wrong below the format itself: a missing file
or a folder, another compression, a truncated gzip, bytes that are not UTF-8 text, a NUL byte,
a CSV row with the wrong number of fields, a semicolon-separated export. Shared by the DNA
readers (:mod:`.dna`, :mod:`.fasta_stream`) and the series reader (:mod:`.timeseries`)."""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

_GZIP_MAGIC = b"\x1f\x8b"


def split_suffix(path: Path) -> tuple[str, bool]:
    """Return the format suffix (lowercase, ``.gz`` stripped) and whether the file is gzip."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), compressed


def check_file(path: Path) -> None:
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


def open_text(path: Path, compressed: bool) -> IO[str]:
    """Open ``path`` for reading UTF-8 text (a leading byte-order mark is dropped), through
    gzip when ``compressed``; a missing file, a directory or an unreadable file is refused."""
    check_file(path)
    try:
        if compressed:
            return gzip.open(path, "rt", encoding="utf-8-sig")
        return open(path, encoding="utf-8-sig")
    except OSError as err:
        raise ValueError(f"{path}: cannot open it: {err.strerror or err}") from err


@contextmanager
def reading(path: Path, compressed: bool) -> Iterator[None]:
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


def read_csv(path: Path, sep: str, compressed: bool, **options: Any) -> pd.DataFrame:
    """``pd.read_csv`` of a UTF-8 (optionally gzip) CSV/TSV file, every failure one ValueError
    naming the file (and the line, for a row with the wrong number of fields)."""
    named = "a tab" if sep == "\t" else repr(sep)
    with reading(path, compressed), open_text(path, compressed) as handle:
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


def header_line(path: Path, compressed: bool) -> str:
    """A table's header: its first non-blank line (``""`` for an empty file)."""
    with reading(path, compressed), open_text(path, compressed) as handle:
        return next((line for line in handle if line.strip()), "")


def _semicolons(path: Path, compressed: bool) -> bool:
    """Whether the header line is separated by semicolons (a CSV saved with a decimal
    comma)."""
    header = header_line(path, compressed)
    return header.count(";") > header.count(",")


def _semicolon_message(path: Path) -> str:
    return (
        f"{path}: fields separated by ';' (a spreadsheet's export with a decimal comma?); "
        "save it as CSV with ',' between fields and '.' as the decimal point"
    )


def _first_data_line(path: Path, compressed: bool) -> int:
    """The 1-based line number of a table's first data row: its second non-blank line."""
    with open_text(path, compressed) as handle:
        seen = 0
        for number, line in enumerate(handle, start=1):
            seen += bool(line.strip())
            if seen == 2:
                return number
    return 2
