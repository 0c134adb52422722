"""Long FASTA records piece by piece: the same bases, windows and context as the whole record."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titans_sci.data.dna import read_sequences
from titans_sci.data.fasta_stream import iter_pieces, iter_windows, with_context
from titans_sci.data.registry import load_manifest


def _real_bases(n: int) -> str:
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["train"].file)
    return "".join(frame["sequence"])[:n]


def _fasta(path: Path, records: dict[str, str], width: int = 60) -> Path:
    lines = []
    for name, text in records.items():
        lines.append(f">{name} a description")
        lines += [text[i : i + width] for i in range(0, len(text), width)]
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _expected_windows(text: str, window: int, stride: int) -> list[tuple[int, str]]:
    """The windows ``SequenceClassifier.predict_windows`` has always scored."""
    starts = list(range(0, max(len(text) - window, 0) + 1, stride))
    if starts[-1] + window < len(text):
        starts.append(len(text) - window)
    return [(s, text[s : s + window]) for s in starts]


@pytest.mark.parametrize("suffix", [".fa", ".fa.gz"])
def test_pieces_and_windows_match_the_whole_records(tmp_path, suffix):
    bases = _real_bases(5000)
    records = {"a": bases[:1234], "b": bases[1234:1300], "c": bases[1300:4999].lower()}
    path = _fasta(tmp_path / f"x{suffix}", records)
    whole = {r.id: r.sequence for r in read_sequences(path)}
    assert whole == records
    pieces = list(iter_pieces(path, 100))
    for name, text in records.items():
        mine = [(s, p) for n, s, p in pieces if n == name]
        assert "".join(p for _, p in mine) == text
        assert [s for s, _ in mine] == list(range(0, len(text), 100))
    for window, stride in ((200, 200), (200, 70), (70, 35), (1500, 100)):
        got = list(iter_windows(path, window, stride, piece=97))
        for name, text in records.items():
            assert [(s, w) for n, s, w in got if n == name] == _expected_windows(
                text, window, stride
            )


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 400), min_size=1, max_size=4),
    window=st.integers(1, 120),
    stride=st.integers(1, 130),
    piece=st.integers(1, 150),
    width=st.integers(1, 90),
)
def test_windows_and_context_match_slicing_for_any_sizes(lengths, window, stride, piece, width):
    bases = _real_bases(sum(lengths))
    records, at = {}, 0
    for i, n in enumerate(lengths):
        records[f"r{i}"], at = bases[at : at + n], at + n
    with tempfile.TemporaryDirectory() as tmp:
        path = _fasta(Path(tmp) / "x.fa", records, width)
        got = list(iter_windows(path, window, stride, piece=piece))
        expected = [
            (n, s, w) for n, t in records.items() for s, w in _expected_windows(t, window, stride)
        ]
        assert got == expected
        margin = min(4, piece)
        for name, start, before, text, after in with_context(iter_pieces(path, piece), margin):
            whole = records[name]
            assert text == whole[start : start + len(text)]
            assert before == whole[max(start - margin, 0) : start]
            assert after == whole[start + len(text) : start + len(text) + margin]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ACGT\n>a\nACGT\n", "line 1: text before the first '>' header"),
        (">a\nACGT\n>a\nACGA\n", r"record id 'a' appears twice \(records 1 and 2\)"),
        (">a\nACGT\n>b\n>c\nAC\n", "record 'b' has an empty sequence"),
        (">a\n" + "A" * 70 + "\nACXT\n", "record 'a' has invalid character 'X' at position 73"),
        ("", "no records found"),
    ],
)
def test_bad_fasta_is_one_line_with_the_record_and_its_position(tmp_path, text, message):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        list(iter_windows(path, 10, piece=16))
    assert str(info.value).startswith(str(path))


def test_a_truncated_gzip_is_named(tmp_path):
    path = _fasta(tmp_path / "x.fa.gz", {"a": _real_bases(20000)})
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="x.fa.gz: truncated or corrupt gzip file"):
        list(iter_pieces(path, 1000))
