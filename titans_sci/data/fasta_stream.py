"""Long FASTA records read piece by piece, so that memory stays flat in the record's length.

:func:`iter_sequences` holds one whole record at a time: fine for reads and promoters, 1.2 GB
of RSS for a 50 Mb chromosome in windowed prediction. Here a record is never held whole:

- :func:`iter_pieces` yields consecutive pieces of at most ``size`` bases of each record;
- :func:`iter_windows` yields ``window``-base windows every ``stride`` bases (the last one
  ending at the record's end), from a rolling buffer of about ``window + stride`` bases;
- :func:`with_context` adds ``margin`` bases of the neighbouring pieces on either side (what a
  convolutional stem needs to see across piece borders).

FASTA files (plain or gzip) are parsed line by line, with the checks of the whole-record
readers (IUPAC letters with the record's position, text before the first header, empty records,
duplicate ids). Other formats (FASTQ, GenBank, CSV) are read record by record through
:func:`titans_sci.data.dna.iter_sequences` and cut into pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from titans_sci.data.dna import duplicate_id, iter_sequences, validate_sequence
from titans_sci.data.textfile import open_text, reading, split_suffix

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".ffn", ".frn", ".fas")


def iter_pieces(
    path: str | Path, size: int, *, allow_duplicate_ids: bool = False
) -> Iterator[tuple[str, int, str]]:
    """``(record id, start, piece)`` for consecutive pieces of at most ``size`` bases of every
    record of a sequence file, in order (0-based ``start``; only a record's last piece may be
    shorter). Errors name the file, the record and the position in the record; a repeated
    record id is one unless ``allow_duplicate_ids``."""
    if size < 1:
        raise ValueError(f"size={size}; expected >= 1")
    path = Path(path)
    suffix, compressed = split_suffix(path)
    if suffix not in FASTA_SUFFIXES:
        for record in iter_sequences(path, allow_duplicate_ids=allow_duplicate_ids):
            text = record.sequence
            for start in range(0, len(text), size):
                yield record.id, start, text[start : start + size]
        return
    yield from _fasta_pieces(path, compressed, size, allow_duplicate_ids)


def _fasta_pieces(
    path: Path, compressed: bool, size: int, allow_duplicate_ids: bool
) -> Iterator[tuple[str, int, str]]:
    seen: dict[str, int] = {}  # record id -> its number (1-based)
    record: str | None = None
    buffer: list[str] = []
    held = done = 0  # bases in the buffer; bases of the record already yielded

    with reading(path, compressed), open_text(path, compressed) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if line.startswith(">"):
                if record is not None:
                    if not done + held:
                        raise ValueError(f"{path}: record {record!r} has an empty sequence")
                    if held:
                        yield record, done, "".join(buffer)
                header = line[1:].split(maxsplit=1)
                record = header[0] if header else ""
                if not record:
                    raise ValueError(f"{path}: line {number}: a '>' header without an id")
                index = len(seen) + 1
                first = seen.setdefault(record, index) if not allow_duplicate_ids else index
                if first != index:
                    raise duplicate_id(path, record, first, index)
                buffer, held, done = [], 0, 0
                continue
            if not line:
                continue
            if record is None:
                shown = line[:40] + "..." if len(line) > 40 else line
                raise ValueError(
                    f"{path}: line {number}: text before the first '>' header ({shown!r}); a "
                    "FASTA file starts with a '>' header line: remove the text before it"
                )
            line = line.replace(" ", "")  # as biopython's FASTA parser
            validate_sequence(line, source=str(path), record=record, start=done + held)
            buffer.append(line)
            held += len(line)
            while held >= size:
                text = "".join(buffer)
                yield record, done, text[:size]
                buffer, held, done = [text[size:]], held - size, done + size
        if record is None:
            raise ValueError(f"{path}: no records found; is it empty?")
        if not done + held:
            raise ValueError(f"{path}: record {record!r} has an empty sequence")
        if held:
            yield record, done, "".join(buffer)


def iter_windows(
    path: str | Path,
    window: int,
    stride: int | None = None,
    piece: int = 1 << 20,
    *,
    allow_duplicate_ids: bool = False,
) -> Iterator[tuple[str, int, str]]:
    """``(record id, start, text)`` of every ``window``-base window of every record, every
    ``stride`` bases (default ``window``), plus one ending at the record's end when the stride
    does not reach it; a record shorter than ``window`` is one window of its own length. The
    record is read ``piece`` bases at a time and never held whole."""
    stride = stride or window
    if window < 1 or stride < 1:
        raise ValueError(f"window={window} and stride={stride} must be >= 1")
    record: str | None = None
    buffer, origin, next_start, last = "", 0, 0, -1

    def finish() -> Iterator[tuple[str, int, str]]:
        end = origin + len(buffer)
        if last < 0:  # shorter than a window
            yield str(record), 0, buffer
        elif last + window < end:
            yield str(record), end - window, buffer[-window:]

    for name, start, text in iter_pieces(path, piece, allow_duplicate_ids=allow_duplicate_ids):
        if name != record or start == 0:
            if record is not None:
                yield from finish()
            record, buffer, origin, next_start, last = name, "", 0, 0, -1
        buffer += text
        while next_start + window <= origin + len(buffer):
            offset = next_start - origin
            yield name, next_start, buffer[offset : offset + window]
            last, next_start = next_start, next_start + stride
        # keep what later windows (and a final one ending at the record's end) may need
        keep = max(min(next_start, origin + len(buffer) - window), origin)
        buffer, origin = buffer[keep - origin :], keep
    if record is not None:
        yield from finish()


def with_context(
    pieces: Iterable[tuple[str, int, str]], margin: int
) -> Iterator[tuple[str, int, str, str, str]]:
    """``(record id, start, before, piece, after)``: each piece of :func:`iter_pieces` with up
    to ``margin`` bases of the same record on either side (fewer at the record's ends). Pieces
    must be at least ``margin`` long except a record's last."""
    previous: tuple[str, int, str] | None = None
    before = ""
    for current in pieces:
        if previous is not None:
            same = current[0] == previous[0] and current[1] > previous[1]
            after = current[2][:margin] if same else ""
            yield previous[0], previous[1], before, previous[2], after
            before = previous[2][-margin:] if same and margin else ""
        previous = current
    if previous is not None:
        yield previous[0], previous[1], before, previous[2], ""
