"""Bad sequence and series files through the commands that read them (issue 18): each is
refused with one line, ``titans-sci: <file>[: where]: <what is wrong>; <what to do>``, exit
status 2, no traceback (unless ``--debug``) and nothing written. Readers that no command reaches
(or options that only the API has) are called directly."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pandas as pd
import pytest

from refusal import refused
from titans_sci.cli import main
from titans_sci.data.dna import SequenceRecord, iter_sequences, read_sequences
from titans_sci.data.timeseries import read_series

TATA = "GCAATAAAAGGCTTAGCCACATAGTGCATGCAGAGCTCTGACTTCTAGGGCAAAACATAAGCATGTACAC"  # 70 bp


def _fasta(records: int, length: int = 200, seed: int = 0) -> str:
    """``records`` FASTA records ``r1, r2, ...`` of random bases (random so that gzip cannot
    squeeze them much, and a cut at half the compressed bytes falls half way through)."""
    rng = random.Random(seed)
    return "".join(
        f">r{i} random\n{''.join(rng.choices('ACGT', k=length))}\n" for i in range(1, records + 1)
    )


def _truncated_gzip(text: str) -> bytes:
    data = gzip.compress(text.encode())
    return data[: len(data) * 6 // 10]


def _series_lines(workspace) -> list[str]:
    """The workspace's series.csv (date, HUFL, ..., OT of ETTh1; 900 rows) as lines."""
    root, _, _ = workspace
    return (root / "series.csv").read_text().splitlines()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The output folder (-o goes here), holding one earlier file: nothing may change in it."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "earlier.csv").write_text("id\nold\n")
    return folder


def _sequence_commands(model: Path, bad: Path, out: Path) -> list[list[str]]:
    """Every command that reads a sequence file: predict (table, --window, --surprise) and
    evaluate."""
    output = str(out / "pred.csv")
    return [
        ["predict", str(model), str(bad), "-o", output],
        ["predict", "-q", str(model), str(bad), "--window", "70", "-o", output],
        ["predict", "-q", str(model), str(bad), "--surprise", "--segment", "64", "-o", output],
        ["evaluate", str(model), str(bad)],
    ]


def _series_commands(model: Path, bad: Path, out: Path) -> list[list[str]]:
    """Every command that reads a series file: predict and evaluate."""
    return [
        ["predict", str(model), str(bad), "-o", str(out / "forecast.csv")],
        ["evaluate", str(model), str(bad)],
    ]


# ------------------------------------------------------------------------------ gzip


def test_truncated_fasta_gz_is_refused_by_every_sequence_command(workspace, tmp_path, out, capsys):
    _, dna_model, _ = workspace
    bad = tmp_path / "reads.fa.gz"
    bad.write_bytes(_truncated_gzip(_fasta(40, length=100)))
    for argv in _sequence_commands(dna_model, bad, out):
        refused(
            capsys, argv, str(bad), "truncated or corrupt gzip file", "re-download", watch=[out]
        )


def test_truncated_fasta_gz_fails_lazily_after_the_good_records(tmp_path):
    bad = tmp_path / "reads.fa.gz"
    bad.write_bytes(_truncated_gzip(_fasta(40, length=100)))
    records = iter_sequences(bad)
    first = next(records)
    assert first.id == "r1" and len(first.sequence) == 100
    with pytest.raises(ValueError, match=r"reads\.fa\.gz: truncated or corrupt gzip file"):
        list(records)


def test_corrupt_and_non_gzip_fa_gz_are_refused(workspace, tmp_path, out, capsys):
    _, dna_model, _ = workspace
    data = bytearray(gzip.compress(_fasta(50).encode()))
    data[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.fa.gz"
    corrupt.write_bytes(bytes(data))
    refused(
        capsys,
        _sequence_commands(dna_model, corrupt, out)[0],
        str(corrupt),
        "corrupt gzip",
        watch=[out],
    )
    plain = tmp_path / "plain.fa.gz"
    plain.write_text(_fasta(3))
    refused(
        capsys,
        ["evaluate", str(dna_model), str(plain)],
        str(plain),
        "not a gzip file",
        "rename it without .gz",
        watch=[out],
    )
    unnamed = tmp_path / "zipped.fa"
    unnamed.write_bytes(gzip.compress(_fasta(3).encode()))
    refused(
        capsys,
        _sequence_commands(dna_model, unnamed, out)[1],
        str(unnamed),
        "gzip-compressed",
        "zipped.fa.gz",
        watch=[out],
    )


def test_truncated_sequence_csv_gz_is_refused(workspace, tmp_path, out, capsys):
    root, dna_model, _ = workspace
    bad = tmp_path / "test.csv.gz"
    bad.write_bytes(_truncated_gzip((root / "train.csv").read_text()))
    for argv in (
        _sequence_commands(dna_model, bad, out)[0],
        _sequence_commands(dna_model, bad, out)[3],
    ):
        refused(capsys, argv, str(bad), "truncated or corrupt gzip file", watch=[out])


def test_truncated_series_csv_gz_is_refused(workspace, tmp_path, out, capsys):
    _, _, ts_model = workspace
    bad = tmp_path / "series.csv.gz"
    bad.write_bytes(_truncated_gzip("\n".join(_series_lines(workspace)) + "\n"))
    for argv in _series_commands(ts_model, bad, out):
        refused(capsys, argv, str(bad), "truncated or corrupt gzip file", watch=[out])


# ------------------------------------------------------------------------------ text


def test_fasta_with_a_byte_order_mark_is_read(workspace, tmp_path, capsys):
    """A UTF-8 byte-order mark (as Windows editors write) is accepted and dropped."""
    _, dna_model, _ = workspace
    path = tmp_path / "bom.fa"
    path.write_bytes(b"\xef\xbb\xbf" + f">first\n{TATA}\n>second\n{TATA.lower()}\n".encode())
    assert [r.id for r in read_sequences(path)] == ["first", "second"]
    output = tmp_path / "pred.csv"
    assert main(["predict", str(dna_model), str(path), "-o", str(output)]) == 0
    assert pd.read_csv(output)["id"].tolist() == ["first", "second"]
    gz = tmp_path / "bom.csv.gz"  # and in a CSV, compressed
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + f"sequence,label\n{TATA},1\n".encode()))
    assert read_sequences(gz) == [SequenceRecord("row1", TATA, 1)]


def test_text_before_the_first_header_is_named_with_its_line(workspace, tmp_path, out, capsys):
    _, dna_model, _ = workspace
    bad = tmp_path / "notes.fa"
    bad.write_text(f"\nmy promoters, 2024\n>first\n{TATA}\n")
    for argv in _sequence_commands(dna_model, bad, out):
        refused(
            capsys,
            argv,
            str(bad),
            "line 2",
            "text before the first '>' header",
            "my promoters",
            watch=[out],
        )
    blank = tmp_path / "blank_first.fa"  # blank lines before the first header are fine
    blank.write_text(f"\n\n>first\n{TATA}\n")
    assert read_sequences(blank) == [SequenceRecord("first", TATA)]


def test_binary_and_non_utf8_files_are_not_text(workspace, tmp_path, out, capsys):
    _, dna_model, ts_model = workspace
    binary = tmp_path / "image.fa"
    binary.write_bytes(f">a\n{TATA}\n".encode() + bytes(range(0x80, 0x100)))
    offset = len(f">a\n{TATA}\n")
    for argv in _sequence_commands(dna_model, binary, out):
        refused(
            capsys,
            argv,
            str(binary),
            "not a text file",
            f"byte 0x80 at offset {offset}",
            "not UTF-8",
            watch=[out],
        )
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"sequence,label,note\n{TATA},1,caf".encode() + b"\xe9\n")
    refused(
        capsys,
        ["evaluate", str(dna_model), str(latin1)],
        str(latin1),
        "byte 0xe9",
        "save it as UTF-8",
        watch=[out],
    )
    nul = tmp_path / "nul.csv"  # pandas would silently cut the field at the NUL
    nul.write_bytes(f"sequence,label\n{TATA[:10]}".encode() + b"\x00" + f"{TATA[10:]},1\n".encode())
    refused(
        capsys,
        ["predict", str(dna_model), str(nul)],
        str(nul),
        "not a text file",
        "NUL byte",
        watch=[out],
    )
    series = tmp_path / "series.csv"
    series.write_bytes("\n".join(_series_lines(workspace)[:100]).encode() + b"\n\xff\xfe\x00\x01")
    for argv in _series_commands(ts_model, series, out):
        refused(capsys, argv, str(series), "not a text file", "0xff", watch=[out])


# ------------------------------------------------------------------------------ CSV fields


def test_sequence_csv_row_with_an_extra_field_names_the_line(workspace, tmp_path, out, capsys):
    root, dna_model, _ = workspace
    lines = (root / "train.csv").read_text().splitlines()
    assert lines[0] == "sequence,label" and len(lines) > 60
    lines[50] += ",3"  # line 51 of the file
    bad = tmp_path / "extra.csv"
    bad.write_text("\n".join(lines) + "\n")
    for argv in (
        _sequence_commands(dna_model, bad, out)[0],
        _sequence_commands(dna_model, bad, out)[3],
    ):
        refused(capsys, argv, str(bad), "line 51", "expected 2 fields, saw 3", watch=[out])
    tsv = tmp_path / "extra.tsv"
    tsv.write_text(f"sequence\tlabel\n{TATA}\t1\n{TATA}\t1\tx\n")
    refused(
        capsys,
        ["evaluate", str(dna_model), str(tsv)],
        str(tsv),
        "line 3",
        "expected 2 fields, saw 3",
        "a tab",
        watch=[out],
    )
    first = tmp_path / "first_row.csv"  # pandas would take the first field as an index
    first.write_text(f"sequence,label\nx,{TATA},1\ny,{TATA},0\n")
    refused(
        capsys,
        ["evaluate", str(dna_model), str(first)],
        str(first),
        "line 2",
        "expected 2 fields, saw 3",
        watch=[out],
    )
    quote = tmp_path / "quote.csv"
    quote.write_text(f'sequence,label\n{TATA},1\n"{TATA},0\n')
    refused(
        capsys,
        ["predict", str(dna_model), str(quote)],
        str(quote),
        "line 3",
        "quoted field is never closed",
        watch=[out],
    )


def test_series_csv_row_with_an_extra_field_names_the_line(workspace, tmp_path, out, capsys):
    _, _, ts_model = workspace
    lines = _series_lines(workspace)
    lines[50] += ",3"
    bad = tmp_path / "series.csv"
    bad.write_text("\n".join(lines) + "\n")
    fields = lines[0].count(",") + 1
    for argv in _series_commands(ts_model, bad, out):
        refused(
            capsys,
            argv,
            str(bad),
            "line 51",
            f"expected {fields} fields, saw {fields + 1}",
            watch=[out],
        )


# ------------------------------------------------------------------------------ timestamps


def test_daylight_saving_offsets_name_file_column_and_rows(workspace, tmp_path, out, capsys):
    _, _, ts_model = workspace
    header, *rows = _series_lines(workspace)
    rows = [
        f"{row.split(',', 1)[0]}{'+02:00' if i < 500 else '+01:00'},{row.split(',', 1)[1]}"
        for i, row in enumerate(rows)
    ]
    bad = tmp_path / "local.csv"
    bad.write_text("\n".join([header, *rows]) + "\n")
    for argv in _series_commands(ts_model, bad, out):
        refused(
            capsys,
            argv,
            str(bad),
            "column 'date'",
            "mixed UTC offsets",
            "data row 1",
            "data row 501",
            "daylight-saving",
            "give them in UTC",
            watch=[out],
        )


def test_repeated_local_hour_is_named(workspace, tmp_path, out, capsys):
    """Naive local time across the autumn switch repeats an hour."""
    _, _, ts_model = workspace
    header, *rows = _series_lines(workspace)
    stamp = rows[99].split(",", 1)[0]
    rows[100] = stamp + "," + rows[100].split(",", 1)[1]
    bad = tmp_path / "repeated.csv"
    bad.write_text("\n".join([header, *rows]) + "\n")
    for argv in _series_commands(ts_model, bad, out):
        refused(
            capsys,
            argv,
            str(bad),
            "column 'date'",
            "duplicate timestamp",
            "data rows 100 and 101",
            "daylight-saving",
            watch=[out],
        )


# ------------------------------------------------------------------------------ values


def test_values_outside_float32_are_refused(workspace, tmp_path, out, capsys):
    _, _, ts_model = workspace
    header, *rows = _series_lines(workspace)
    assert header.endswith(",OT")
    rows[16] = rows[16].rsplit(",", 1)[0] + ",1e300"  # data row 17
    bad = tmp_path / "huge.csv"
    bad.write_text("\n".join([header, *rows]) + "\n")
    for argv in _series_commands(ts_model, bad, out):
        refused(
            capsys,
            argv,
            str(bad),
            "column 'OT'",
            "data row 17",
            "1e+300 is outside float32's range",
            watch=[out],
        )


# ------------------------------------------------------------------------------ record ids


def test_duplicate_fasta_ids_are_refused_by_default(workspace, tmp_path, out, capsys):
    _, dna_model, _ = workspace
    bad = tmp_path / "dups.fa"
    bad.write_text(f">a\n{TATA}\n>b\n{TATA}\n>a second copy\n{TATA.lower()}\n")
    for argv in _sequence_commands(dna_model, bad, out):
        refused(
            capsys, argv, str(bad), "record id 'a' appears twice", "records 1 and 3", watch=[out]
        )


def test_duplicate_ids_can_be_allowed(tmp_path):
    """Only the API has the option (the command's output names rows by id)."""
    path = tmp_path / "dups.fa"
    path.write_text(f">a\n{TATA}\n>b\n{TATA}\n>a\n{TATA.lower()}\n")
    with pytest.raises(ValueError, match=r"dups\.fa: record id 'a' appears twice"):
        read_sequences(path)
    records = iter_sequences(path)
    assert [next(records).id, next(records).id] == ["a", "b"]  # lazily: refused on reaching it
    with pytest.raises(ValueError, match="records 1 and 3"):
        next(records)
    assert [r.id for r in read_sequences(path, allow_duplicate_ids=True)] == ["a", "b", "a"]
    assert [r.id for r in iter_sequences(path, allow_duplicate_ids=True)] == ["a", "b", "a"]


def test_csv_record_ids_are_unique_by_construction(tmp_path):
    path = tmp_path / "same.csv"
    path.write_text(f"sequence,label\n{TATA},1\n{TATA},1\n")
    assert [r.id for r in read_sequences(path)] == ["row1", "row2"]


# ------------------------------------------------------- cases that already passed


def test_invalid_base_names_record_and_position(workspace, tmp_path, out, capsys):
    _, dna_model, _ = workspace
    bad = tmp_path / "bad.fa"
    bad.write_text(f">good\n{TATA}\n>broken\n{TATA[:4]}X{TATA[5:]}\n")
    for argv in _sequence_commands(dna_model, bad, out):
        refused(capsys, argv, str(bad), "'broken'", "'X' at position 5", watch=[out])


def test_missing_label_column(workspace, tmp_path, out, capsys):
    _, dna_model, _ = workspace
    bad = tmp_path / "unlabelled.csv"
    bad.write_text(f"sequence\n{TATA}\n")
    refused(
        capsys, ["evaluate", str(dna_model), str(bad)], str(bad), "without a label", watch=[out]
    )


def test_unknown_suffix(workspace, tmp_path, out, capsys):
    _, dna_model, ts_model = workspace
    bad = tmp_path / "reads.bam"
    bad.write_bytes(b"BAM\x01")
    for argv in _sequence_commands(dna_model, bad, out):
        refused(capsys, argv, str(bad), "unknown sequence file suffix '.bam'", ".fa", watch=[out])
    for argv in _series_commands(ts_model, bad, out):
        refused(capsys, argv, str(bad), "unknown file type '.bam'", ".csv", watch=[out])


def test_empty_files(workspace, tmp_path, out, capsys):
    _, dna_model, ts_model = workspace
    for name, expected in [
        ("empty.fa", "no records found"),
        ("empty.fa.gz", "no records found"),
        ("empty.csv", "empty file"),
        ("header.csv", "no records found"),
    ]:
        bad = tmp_path / name
        if name.endswith(".gz"):
            bad.write_bytes(gzip.compress(b""))
        else:
            bad.write_text("sequence,label\n" if name == "header.csv" else "")
        for argv in _sequence_commands(dna_model, bad, out):
            refused(capsys, argv, str(bad), expected, watch=[out])
    series = tmp_path / "series.csv"
    series.write_text("")
    for argv in _series_commands(ts_model, series, out):
        refused(capsys, argv, str(series), "empty file", watch=[out])


def test_directory_and_missing_file(workspace, tmp_path, out, capsys):
    _, dna_model, ts_model = workspace
    folder = tmp_path / "reads.fa"
    folder.mkdir()
    refused(
        capsys,
        ["evaluate", str(dna_model), str(folder)],
        str(folder),
        "is a directory",
        watch=[out],
    )
    refused(capsys, ["predict", str(dna_model), str(folder)], str(folder), watch=[out])
    missing = tmp_path / "missing.fa"
    refused(
        capsys,
        ["evaluate", str(dna_model), str(missing)],
        str(missing),
        "no such file",
        watch=[out],
    )
    series_folder = tmp_path / "series.csv"
    series_folder.mkdir()
    refused(
        capsys,
        ["evaluate", str(ts_model), str(series_folder)],
        str(series_folder),
        "is a directory",
        watch=[out],
    )
    refused(
        capsys,
        ["evaluate", str(ts_model), str(tmp_path / "none.csv")],
        "none.csv",
        "no such file",
        watch=[out],
    )
    for reader in (read_sequences, read_series):
        with pytest.raises(ValueError, match="is a directory"):
            reader(folder if reader is read_sequences else series_folder)


def test_corrupt_parquet_series(workspace, tmp_path, out, capsys):
    _, _, ts_model = workspace
    bad = tmp_path / "series.parquet"
    bad.write_bytes(b"PAR1 not really")
    for argv in _series_commands(ts_model, bad, out):
        refused(capsys, argv, str(bad), "cannot read it as Parquet", watch=[out])


# ------------------------------------------------------------------------------ task data


def test_task_data_files_are_read_with_the_same_checks(workspace, tmp_path, capsys):
    """``titans-sci train`` reads a task's files with the same readers: a truncated training
    CSV and a series with a value outside float32 are one line, and no run is written."""
    from tiny_tasks import classification_task, forecast_task

    root, _, _ = workspace
    runs = tmp_path / "runs"
    runs.mkdir()
    train = tmp_path / "train.csv.gz"
    train.write_bytes(_truncated_gzip((root / "train.csv").read_text()))
    (tmp_path / "dev.csv").write_text((root / "dev.csv").read_text())
    task = tmp_path / "dna.toml"
    task.write_text(classification_task("bad_dna", 'train = "train.csv.gz"\ndev = "dev.csv"'))
    argv = ["train", "-q", "--out", str(runs), str(task)]
    refused(capsys, argv, str(train), "truncated or corrupt gzip file", watch=[runs])
    header, *rows = _series_lines(workspace)
    rows[16] = rows[16].rsplit(",", 1)[0] + ",-1e300"
    (tmp_path / "series.csv").write_text("\n".join([header, *rows]) + "\n")
    task = tmp_path / "ts.toml"
    data = 'file = "series.csv"\nsplit_rule = "ratio_70_10_20"\ncolumns = ["HUFL", "OT"]'
    task.write_text(forecast_task("bad_ts", data, "[protocol]\nhorizons = [12]\n"))
    argv = ["train", "-q", "--out", str(runs), str(task)]
    refused(capsys, argv, "series.csv", "column 'OT'", "data row 17", "float32", watch=[runs])
