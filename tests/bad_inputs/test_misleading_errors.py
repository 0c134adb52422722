"""Issue 36, items 13 and 17: a truncated GenBank record, other compressions, semicolon CSVs,
the duplicate-id hint, a broken pipe, a CSV ``id`` column and a split given twice each get the
right line (or the right behaviour), not a wrong or misleading one."""

from __future__ import annotations

import bz2
import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from refusal import refused
from tiny_tasks import classification_task, gue_csv, write
from titans_sci.data.dna import read_sequences
from titans_sci.data.timeseries import read_series

#: The real annotated yeast genome beside the checkout (``../shared/data``).
GENOME = Path(__file__).resolve().parents[3] / "shared/data/genomes/s_cerevisiae_s288c"


@pytest.fixture(scope="module")
def chr01() -> str:
    with gzip.open(GENOME / "chr01.gb.gz", "rt") as handle:
        return handle.read()


@pytest.mark.parametrize("ending", ["", "//\n"])
def test_a_genbank_record_cut_before_its_locus_length_is_refused(tmp_path, chr01, ending):
    """Item 13: the record was read as a fragment of 6,000 of its 230,218 bases."""
    lines = chr01.splitlines(keepends=True)
    origin = next(i for i, line in enumerate(lines) if line.startswith("ORIGIN"))
    path = tmp_path / "cut.gb"
    path.write_text("".join(lines[: origin + 101]) + ending)
    with pytest.raises(ValueError, match=r"cut\.gb: record 'BK006935\.2' is cut short .*truncated"):
        read_sequences(path)
    whole = tmp_path / "whole.gb"
    whole.write_text(chr01)
    assert len(read_sequences(whole)[0].sequence) == 230218


def test_other_compressions_are_named_not_renamed(tmp_path):
    text = "sequence,label\nACGTACGT,0\n"
    (tmp_path / "a.csv.bz2").write_bytes(bz2.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "a.csv.zip", "w") as archive:
        archive.writestr("a.csv", text)
    for name, what in (("a.csv.bz2", "bzip2"), ("a.csv.zip", "zip")):
        for read in (read_sequences, read_series):
            with pytest.raises(ValueError, match=rf"{name}: {what}-compressed; .*recompress"):
                read(tmp_path / name)


def test_a_semicolon_csv_is_named_as_such(tmp_path):
    (tmp_path / "s.csv").write_text("date;OT\n2016-07-01 00:00;1,5\n2016-07-01 01:00;2,5\n")
    with pytest.raises(ValueError, match=r"s\.csv: fields separated by ';'"):
        read_series(tmp_path / "s.csv")
    (tmp_path / "q.csv").write_text("sequence;label\nACGT;0\n")
    with pytest.raises(ValueError, match=r"q\.csv: fields separated by ';'"):
        read_sequences(tmp_path / "q.csv")


def test_the_duplicate_id_hint_names_the_flag(tmp_path):
    (tmp_path / "d.fa").write_text(">a\nACGT\n>a\nACGT\n")
    with pytest.raises(ValueError, match="--allow-duplicate-ids"):
        read_sequences(tmp_path / "d.fa")


def test_a_csv_id_column_names_the_records(tmp_path):
    (tmp_path / "i.csv").write_text("id,sequence,label\nchr1:5-9,ACGT,0\nchr2:1-4,ACGA,1\n")
    assert [r.id for r in read_sequences(tmp_path / "i.csv")] == ["chr1:5-9", "chr2:1-4"]
    (tmp_path / "j.csv").write_text("id,sequence\nx,ACGT\nx,ACGA\n")
    with pytest.raises(ValueError, match="record id 'x' appears twice"):
        read_sequences(tmp_path / "j.csv")


def test_tasks_into_a_closed_pipe_ends_quietly():
    """``titans-sci tasks | head -1`` printed a broken-pipe error and exited 2."""
    shell = f"{sys.executable} -m titans_sci.cli tasks | head -1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_a_file_given_as_two_splits_is_refused(tmp_path, capsys):
    gue_csv(tmp_path, "train", 32)
    gue_csv(tmp_path, "dev", 16)
    text = classification_task("s", 'train = "train.csv"\ndev = "dev.csv"\ntest = "train.csv"')
    task = write(tmp_path / "s.toml", text)
    refused(capsys, ["run", str(task), "--out", str(tmp_path / "runs")], "train.csv",
            "is both the train and the test split", watch=[tmp_path], debug=False)  # fmt: skip
    assert pd.read_csv(tmp_path / "train.csv").shape[0] == 32
