"""Property tests of the readers: any bytes in a file either parse to records (or a table) that
keep their promises, or are refused with a ``ValueError`` naming the file, never another
exception (issue 18: every bad input is one clear line)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titans_sci.data.dna import SequenceRecord, read_sequences
from titans_sci.data.timeseries import read_series

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------ strategies
# Each file strategy builds a well-formed file most of the time and then perhaps spoils it
# (one bad cell, an extra field, a cut, a flipped byte, raw garbage), so that both outcomes,
# parsed and refused, are common.

BOM = "\ufeff"
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
GOOD_BASES = st.text(alphabet="ACGTUNRYKMSWBDHVacgtn", min_size=1, max_size=40)
STRAY_BASES = st.text(alphabet="ACGTacgt" + "X- \t\x00é*>", max_size=8)
ANY_IDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
PLAIN_IDS = st.text(alphabet="abcXYZ019_.|:-#>", min_size=1, max_size=10)


def _spoil(data: bytes, draw: st.DrawFn) -> bytes:
    """``data`` as it is (most often), cut short, or with one byte changed."""
    how = draw(st.sampled_from(["keep", "keep", "keep", "cut", "flip"]))
    if how == "keep" or not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    if how == "cut":
        return data[:at]
    return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]


def _preamble(draw: st.DrawFn) -> str:
    return BOM if draw(st.booleans()) else ""


@st.composite
def fasta_text(draw: st.DrawFn) -> str:
    """Text shaped like a FASTA file, sometimes broken: text before the first header, empty
    records, repeated ids, odd ids, stray characters in the bases."""
    newline = draw(NEWLINES)
    lines = []
    if draw(st.integers(0, 3)) == 0:
        lines += draw(st.lists(st.sampled_from(["", "  ", "# comment", "ACGT", ";x"]), max_size=2))
    names = draw(st.lists(st.one_of(PLAIN_IDS, PLAIN_IDS, PLAIN_IDS, ANY_IDS), max_size=5))
    bases = st.one_of(*[GOOD_BASES] * 7, STRAY_BASES)
    for name in names:
        lines.append(f">{name}" + draw(st.sampled_from(["", " some description", "\tx=1"])))
        lines += draw(st.lists(bases, min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=3))
    return _preamble(draw) + newline.join(lines) + draw(st.sampled_from(["", newline]))


@st.composite
def fasta_bytes(draw: st.DrawFn) -> bytes:
    """A FASTA file's bytes: FASTA-shaped text (UTF-8, maybe spoilt) or raw garbage."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=200))
    return _spoil(draw(fasta_text()).encode("utf-8"), draw)


@st.composite
def fasta_gz_bytes(draw: st.DrawFn) -> bytes:
    """A ``.fa.gz`` file's bytes: gzip of FASTA-shaped text (maybe truncated or corrupted),
    uncompressed text, or raw garbage."""
    kind = draw(st.sampled_from(["gzip", "gzip", "gzip", "plain", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    text = draw(fasta_text()).encode("utf-8")
    return text if kind == "plain" else _spoil(gzip.compress(text), draw)


@st.composite
def valid_fasta(draw: st.DrawFn) -> tuple[list[SequenceRecord], str]:
    """Records with unique ids and valid bases, and a FASTA text of them (wrapped at any width,
    any newline, perhaps a byte-order mark and blank lines before the first header)."""
    names = draw(st.lists(PLAIN_IDS, max_size=5, unique=True))
    sequences = draw(st.lists(GOOD_BASES, min_size=len(names), max_size=len(names)))
    newline, width = draw(NEWLINES), draw(st.integers(1, 60))
    text = _preamble(draw) + newline * draw(st.integers(0, 2))
    for name, sequence in zip(names, sequences, strict=True):
        text += f">{name} description{newline}"
        text += "".join(sequence[i : i + width] + newline for i in range(0, len(sequence), width))
    records = [SequenceRecord(n, s) for n, s in zip(names, sequences, strict=True)]
    return records, text


BAD_CSV_CELLS = st.sampled_from(["", "yes", "1.5", '"A,C"', '"', "X", "\x00", "A,C", "é", "-1"])


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    """A sequence CSV's bytes: a header and rows, perhaps with a bad cell (a quote, an extra
    field, a bad label or base, a NUL), a missing column, a byte-order mark, or raw garbage."""
    if draw(st.integers(0, 6)) == 0:
        return draw(st.binary(max_size=200))
    header = draw(st.sampled_from(["sequence,label", "sequence", "label,sequence", "seq,label"]))
    columns = header.split(",")
    rows = [
        [
            draw(GOOD_BASES) if c in ("sequence", "seq") else str(draw(st.integers(0, 3)))
            for c in columns
        ]
        for _ in range(draw(st.integers(0, 6)))
    ]
    if rows and draw(st.booleans()):
        row = draw(st.integers(0, len(rows) - 1))
        if draw(st.booleans()):
            rows[row].append(draw(BAD_CSV_CELLS))  # an extra field
        else:
            rows[row][draw(st.integers(0, len(columns) - 1))] = draw(BAD_CSV_CELLS)
    newline = draw(NEWLINES)
    text = newline.join([header, *map(",".join, rows)]) + newline
    return _spoil((_preamble(draw) + text).encode("utf-8"), draw)


BAD_VALUES = st.sampled_from(
    ["", "nan", "inf", "-inf", "1e300", "-1e39", "3.5e38", "x", "1,5", '"2"', "\x00", "é"]
)
BAD_DATES = st.sampled_from(
    ["yesterday", "", "2020-02-30", "NaT", "1e9", "2020-03-01 01:00+02:00", "2020-03-01Z"]
)


@st.composite
def series_bytes(draw: st.DrawFn) -> bytes:
    """A series CSV's bytes: ``date`` and value columns of hourly rows, perhaps spoilt by a bad
    value (missing, huge, infinite, non-numeric), a bad or repeated or out-of-order timestamp,
    a switch of UTC offset (daylight saving), an extra field, or raw garbage."""
    if draw(st.integers(0, 6)) == 0:
        return draw(st.binary(max_size=200))
    header = draw(st.sampled_from(["date,a,b", "date,a", "time,a", "date"]))
    width = header.count(",")
    zone = draw(st.sampled_from(["", "", "+01:00", "Z"]))
    start = pd.Timestamp("2020-10-24 22:00")
    floats = st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr)
    rows = [
        [f"{start + pd.Timedelta(hours=i):%Y-%m-%d %H:%M}{zone}"]
        + [draw(floats) for _ in range(width)]
        for i in range(draw(st.integers(0, 8)))
    ]
    if rows and draw(st.booleans()):
        row = draw(st.integers(0, len(rows) - 1))
        how = draw(st.sampled_from(["value", "date", "extra", "repeat", "swap", "offset"]))
        if how == "value" and width:
            rows[row][draw(st.integers(1, width))] = draw(BAD_VALUES)
        elif how == "date":
            rows[row][0] = draw(BAD_DATES)
        elif how == "extra":
            rows[row].append("1")
        elif how == "repeat":
            rows.insert(row, list(rows[row]))
        elif how == "swap" and row:
            rows[row - 1], rows[row] = rows[row], rows[row - 1]
        elif how == "offset":  # a daylight-saving switch: +02:00 until this row, then +01:00
            rows = [
                [r[0] + ("+02:00" if i < row else "+01:00"), *r[1:]] for i, r in enumerate(rows)
            ]
    newline = draw(NEWLINES)
    text = newline.join([header, *map(",".join, rows)]) + newline
    return _spoil((_preamble(draw) + text).encode("utf-8"), draw)


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reader_properties")


def _read_or_refuse(path: Path) -> list[SequenceRecord] | None:
    """The records of ``path``, or ``None`` when the reader refuses it with a ValueError that
    names the file (any other exception fails the test)."""
    try:
        return read_sequences(path)
    except ValueError as err:
        assert str(path) in str(err), str(err)
        assert "\n" not in str(err).strip(), str(err)
        return None


def _check_fasta_round_trip(records: list[SequenceRecord], folder: Path) -> None:
    """Records written back as FASTA read again as the same ids and sequences."""
    assert records and len({r.id for r in records}) == len(records)
    again = folder / "again.fa"
    again.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in records), encoding="utf-8")
    assert read_sequences(again) == records


# ------------------------------------------------------------------------------ properties


@SETTINGS
@given(data=fasta_bytes())
def test_any_fasta_bytes_parse_and_round_trip_or_are_refused(folder: Path, data: bytes) -> None:
    path = folder / "input.fa"
    path.write_bytes(data)
    records = _read_or_refuse(path)
    if records is not None:
        _check_fasta_round_trip(records, folder)


@SETTINGS
@given(data=fasta_gz_bytes())
def test_any_fasta_gz_bytes_parse_and_round_trip_or_are_refused(folder: Path, data: bytes) -> None:
    path = folder / "input.fa.gz"
    path.write_bytes(data)
    records = _read_or_refuse(path)
    if records is not None:
        _check_fasta_round_trip(records, folder)


@SETTINGS
@given(case=valid_fasta(), gz=st.booleans())
def test_valid_fasta_reads_exactly_as_written(
    folder: Path, case: tuple[list[SequenceRecord], str], gz: bool
) -> None:
    records, text = case
    path = folder / ("valid.fa.gz" if gz else "valid.fa")
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    if not records:
        with pytest.raises(ValueError, match="no records"):
            read_sequences(path)
    else:
        assert read_sequences(path) == records


@SETTINGS
@given(data=csv_bytes())
def test_any_csv_bytes_parse_and_round_trip_or_are_refused(folder: Path, data: bytes) -> None:
    path = folder / "input.csv"
    path.write_bytes(data)
    records = _read_or_refuse(path)
    if records is None:
        return
    assert [r.id for r in records] == [f"row{i}" for i in range(1, len(records) + 1)]
    again = folder / "again.csv"
    frame = pd.DataFrame({"sequence": [r.sequence for r in records]})
    if records[0].label is not None:
        frame["label"] = [r.label for r in records]
    frame.to_csv(again, index=False)
    assert read_sequences(again) == records


@SETTINGS
@given(data=series_bytes(), gz=st.booleans())
def test_any_series_bytes_parse_to_finite_sorted_float32_or_are_refused(
    folder: Path, data: bytes, gz: bool
) -> None:
    path = folder / ("input.csv.gz" if gz else "input.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        table = read_series(path)
    except ValueError as err:
        assert str(path) in str(err), str(err)
        assert "\n" not in str(err).strip(), str(err)
        return
    assert table.values.dtype == np.float32 and table.values.ndim == 2
    assert np.isfinite(table.values).all()
    assert len(table.timestamps) == len(table) > 0
    assert table.timestamps.is_monotonic_increasing and table.timestamps.is_unique
