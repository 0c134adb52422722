"""The data set registry's two kinds: DNA and time-series manifests, filtering, verification.

(``tests/data/test_datasets.py`` covers the DNA sets and the registry's basics in depth.)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from titans_sci.data import registry
from titans_sci.data.registry import (
    KINDS,
    datasets_dir,
    list_datasets,
    load_manifest,
    read_manifest,
    verify,
)

REPO = Path(__file__).resolve().parents[2]
ROOT = datasets_dir()  # the repo's datasets/ unless $TITANS_SCI_DATASETS says otherwise

EPF = ("NP", "PJM", "BE", "FR")
TIMESERIES = {
    # name: (freq, date_column, split_rule, target, {split: rows})
    "ett/ETTh1": ("h", "date", "ett_hour", "OT", {"data": 17420}),
    "ett/ETTh2": ("h", "date", "ett_hour", "OT", {"data": 17420}),
    "ett/ETTm1": ("15min", "date", "ett_minute", "OT", {"data": 69680}),
    "weather": ("10min", "date", "ratio_70_10_20", "OT", {"data": 52696}),
    "illness": ("W-TUE", "date", "ratio_70_10_20", "OT", {"data": 966}),
    "exchange_rate": ("D", "date", "ratio_70_10_20", "OT", {"data": 7588}),
    "m4/hourly": ("h", "", "m4", "", {"train": 414, "test": 414}),
    **{f"epf/{m}": ("h", "date", "ratio_70_10_20", "OT", {"data": 52416}) for m in EPF},
}
ALL_NAMES = [m.name for m in list_datasets(ROOT)]

TOY_CSV = "date,a,b\n2020-01-01 00:00:00,1.0,2.0\n2020-01-01 01:00:00,3.0,4.0\n"


def _toy_dataset(root: Path, extra: str = "", drop: str = "") -> Path:
    """A one-file time-series data set ``root/toy/ts`` (2 rows); returns its manifest path.

    ``extra`` is appended to the top-level keys; ``drop`` names a key line to leave out.
    """
    folder = root / "toy" / "ts"
    folder.mkdir(parents=True)
    data = folder / "data.csv.gz"
    data.write_bytes(gzip.compress(TOY_CSV.encode(), mtime=0))
    keys = {
        "name": '"toy/ts"',
        "kind": '"timeseries"',
        "description": '"a toy series"',
        "source": '"made up in a test"',
        "license": '"CC0"',
        "freq": '"h"',
        "date_column": '"date"',
        "split_rule": '"ratio_70_10_20"',
        "target": '"b"',
    }
    lines = [f"{k} = {v}" for k, v in keys.items() if k != drop]
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    text = "\n".join(lines) + "\n" + extra
    text += f'\n[splits.data]\nfile = "data.csv.gz"\nrows = 2\nsha256 = "{sha}"\n'
    manifest = folder / "manifest.toml"
    manifest.write_text(text)
    return manifest


def test_valid_timeseries_manifest(tmp_path):
    path = _toy_dataset(tmp_path)
    m = read_manifest(path, tmp_path)
    assert (m.name, m.kind, m.freq, m.date_column, m.split_rule, m.target) == (
        "toy/ts",
        "timeseries",
        "h",
        "date",
        "ratio_70_10_20",
        "b",
    )
    assert m.sequence_length is None and m.num_classes is None
    assert (m.duplicates, m.gaps) == ("error", "error")
    assert list(m.splits) == ["data"]
    assert m.splits["data"].file == tmp_path / "toy" / "ts" / "data.csv.gz"
    assert verify(m) == []
    assert [d.name for d in list_datasets(tmp_path, kind="timeseries")] == ["toy/ts"]
    assert list_datasets(tmp_path, kind="dna") == []


def test_dna_manifest_defaults_to_kind_dna():
    m = load_manifest("gue/prom/prom_core_tata", ROOT)
    assert m.kind == "dna"
    assert (m.sequence_length, m.num_classes) == (70, 2)
    assert m.freq is None and m.split_rule is None and m.target is None


@pytest.mark.parametrize(
    ("drop", "extra", "key"),
    [
        ("freq", "", "freq"),
        ("date_column", "", "date_column"),
        ("split_rule", "", "split_rule"),
        ("target", "", "target"),
        ("kind", 'kind = "audio"\n', "kind"),
        ("split_rule", 'split_rule = "by_year"\n', "split_rule"),
        ("freq", 'freq = "H"\n', "freq"),  # deprecated spelling: "h"
        ("freq", 'freq = "fortnightly"\n', "freq"),
        ("freq", "freq = 1\n", "freq"),
        ("", 'duplicates = "drop"\n', "duplicates"),
        ("", "sequence_length = 10\n", "sequence_length"),
        ("split_rule", 'split_rule = "m4"\n', "splits"),  # m4 needs train and test files
    ],
)
def test_malformed_timeseries_manifest_names_file_and_key(tmp_path, drop, extra, key):
    path = _toy_dataset(tmp_path, extra=extra, drop=drop)
    with pytest.raises(ValueError) as exc:
        read_manifest(path, tmp_path)
    assert str(path) in str(exc.value)
    # the key, as task files name theirs (``key = value: ...``) or quoted in a rule's message
    assert re.search(rf"(^|: ){key} = |'{key}'", str(exc.value)), str(exc.value)
    with pytest.raises(ValueError, match=key):
        list_datasets(tmp_path, kind="dna")  # every manifest is parsed, whatever the filter


def test_missing_freq_message(tmp_path):
    path = _toy_dataset(tmp_path, drop="freq")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: missing key 'freq'$"):
        read_manifest(path)


def test_list_datasets_filters_by_kind():
    dna = list_datasets(ROOT, kind="dna")
    series = list_datasets(ROOT, kind="timeseries")
    assert {m.name for m in series} == set(TIMESERIES)
    genomes = list_datasets(ROOT, kind="genome")
    assert [m.name for m in genomes] == ["genomes/s_cerevisiae_s288c"]
    assert all(m.kind == "dna" and m.sequence_length for m in dna)
    assert sorted(m.name for m in dna + series + genomes) == ALL_NAMES
    with pytest.raises(ValueError, match="'audio'"):
        list_datasets(ROOT, kind="audio")
    assert set(KINDS) == {"dna", "timeseries", "genome"}


def test_the_yeast_genome_verifies_and_a_genome_split_must_be_genbank(tmp_path):
    """Its 16 chromosomes' bases (12,071,326, as its README says) and checksums; a genome's
    split that is not a GenBank file is refused by name."""
    yeast = load_manifest("genomes/s_cerevisiae_s288c", ROOT)
    assert verify(yeast) == []
    assert len(yeast.splits) == 16
    assert sum(info.rows for info in yeast.splits.values()) == 12_071_326
    folder = tmp_path / "genomes" / "g"
    folder.mkdir(parents=True)
    (folder / "manifest.toml").write_text(
        'name = "genomes/g"\nkind = "genome"\ndescription = "d"\nsource = "s"\n'
        'license = "l"\n[splits.chr1]\nfile = "chr1.csv.gz"\nrows = 1\n'
        f'sha256 = "{"0" * 64}"\n'
    )
    with pytest.raises(ValueError, match=r"split 'chr1': 'chr1\.csv\.gz' is not a GenBank file"):
        read_manifest(folder / "manifest.toml")


@pytest.mark.parametrize("name", sorted(TIMESERIES))
def test_bundled_timeseries_manifests(name):
    m = load_manifest(name, ROOT)
    freq, date_column, rule, target, rows = TIMESERIES[name]
    assert m.kind == "timeseries"
    assert (m.freq, m.date_column, m.split_rule, m.target) == (freq, date_column, rule, target)
    assert {s: info.rows for s, info in m.splits.items()} == rows
    assert m.description and m.source and m.license
    assert m.sequence_length is None and m.num_classes is None


def test_weather_is_kept_as_the_benchmark_uses_it():
    """CRLF line endings count once; its repeated timestamp and gap are declared."""
    m = load_manifest("weather", ROOT)
    with gzip.open(m.splits["data"].file, "rb") as f:
        assert f.readline().endswith(b"\r\n")
    assert registry._count_rows(m.splits["data"].file) == 52696
    assert (m.duplicates, m.gaps) == ("keep", "keep")


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_bundled_dataset_verifies(name):
    assert verify(load_manifest(name, ROOT)) == []


def test_cli_lists_timeseries_rows():
    env = {**os.environ, registry.ENV_VAR: str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "titans_sci.data.registry", "list", "--kind", "timeseries"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(TIMESERIES)
    etth1 = next(line for line in lines if line.startswith("ett/ETTh1 "))
    assert "freq=h" in etth1 and "split=ett_hour" in etth1 and "data=17420" in etth1
    m4 = next(line for line in lines if line.startswith("m4/hourly "))
    assert "train=414 / test=414" in m4
    assert not any("gue/" in line for line in lines)


def test_a_manifest_records_the_published_number_beside_its_source():
    gue = load_manifest("gue/tf/0", ROOT).published
    assert gue is not None and (gue.metric, gue.value) == ("DNABERT-2 MCC", 71.99)
    assert "DNABERT-2" in gue.source
    assert load_manifest("ett/ETTh1", ROOT).published is None
