"""The bundled data sets under datasets/: manifests parse, files match them, errors are clear."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from titans_sci.data import registry
from titans_sci.data.registry import (
    DatasetManifest,
    SplitInfo,
    datasets_dir,
    list_datasets,
    load_manifest,
    read_manifest,
    verify,
)

REPO = Path(__file__).resolve().parents[2]

GUE = {
    "gue/prom/prom_core_all": (70, {"train": 47356, "dev": 5920, "test": 5920}),
    "gue/prom/prom_core_notata": (70, {"train": 42452, "dev": 5307, "test": 5307}),
    "gue/prom/prom_core_tata": (70, {"train": 4904, "dev": 613, "test": 613}),
    "gue/prom/prom_300_tata": (300, {"train": 4904, "dev": 613, "test": 613}),
    "gue/tf/0": (101, {"train": 32378, "dev": 1000, "test": 1000}),
    "gue/tf/1": (101, {"train": 30672, "dev": 1000, "test": 1000}),
    "gue/tf/2": (101, {"train": 19000, "dev": 1000, "test": 1000}),
    "gue/tf/3": (101, {"train": 27294, "dev": 1000, "test": 1000}),
    "gue/tf/4": (101, {"train": 19000, "dev": 1000, "test": 1000}),
    "gue/mouse/0": (101, {"train": 6478, "dev": 810, "test": 810}),
    "gue/mouse/2": (101, {"train": 2620, "dev": 328, "test": 328}),
    "gue/mouse/3": (101, {"train": 1904, "dev": 239, "test": 239}),
    "gue/mouse/4": (101, {"train": 15064, "dev": 1883, "test": 1883}),
}
GENOMIC_BENCHMARKS = {
    "genomic_benchmarks/human_enhancers_cohn": (500, {"test": 6948}),
    "genomic_benchmarks/human_nontata_promoters": (251, {"test": 9034}),
}
EXPECTED = {**GUE, **GENOMIC_BENCHMARKS}
SMALL = "gue/mouse/3"  # the smallest bundled data set, for the copy-and-corrupt tests


@pytest.fixture(scope="module")
def manifests() -> dict[str, DatasetManifest]:
    return {m.name: m for m in list_datasets(REPO / "datasets", kind="dna")}


def _copy_dataset(name: str, root: Path) -> Path:
    """Copy one bundled data set (manifest and files) into ``root``; returns its folder."""
    dst = root / name
    shutil.copytree(REPO / "datasets" / name, dst)
    return dst


def test_default_root_is_the_repo_datasets_folder(monkeypatch):
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    assert datasets_dir() == REPO / "datasets"
    assert registry.DATASETS_DIR.name == "datasets"


def test_bundled_set_is_exactly_the_expected_one(manifests):
    assert sorted(manifests) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_manifest_parses_and_verifies(manifests, name):
    m = manifests[name]
    seq_len, rows = EXPECTED[name]
    assert m.path == REPO / "datasets" / name / "manifest.toml"
    assert m.sequence_length == seq_len
    assert m.num_classes == 2
    assert m.description and m.license and m.source
    assert {s: info.rows for s, info in m.splits.items()} == rows
    for split, info in m.splits.items():
        assert isinstance(info, SplitInfo)
        assert info.file.is_absolute()
        assert info.file == REPO / "datasets" / name / f"{split}.csv.gz"
    assert verify(m) == []


def test_gue_has_train_dev_test(manifests):
    for name in GUE:
        m = manifests[name]
        assert list(m.splits) == ["train", "dev", "test"], name
        assert not m.test_only
        assert m.license.startswith("Apache-2.0")
        assert m.source.startswith("wds-seu/DeepGene @ 486343e : data/GUE/")


def test_genomic_benchmarks_are_test_only(manifests):
    for name in GENOMIC_BENCHMARKS:
        m = manifests[name]
        assert list(m.splits) == ["test"], name
        assert m.test_only
        assert "stratified K-fold" in m.note
        assert m.source.startswith("BioGeMT/agentomics-ml @ ")


def test_first_rows_are_sequence_label_csv(manifests):
    for name, m in manifests.items():
        with gzip.open(m.splits["test"].file, "rt") as f:
            assert f.readline().strip() == "sequence,label", name
            seq, label = f.readline().strip().split(",")
        assert len(seq) == m.sequence_length, name
        assert int(label) in range(m.num_classes), name


def test_load_manifest_by_name_and_env_var(tmp_path, monkeypatch):
    m = load_manifest(SMALL, REPO / "datasets")
    assert m.name == SMALL
    _copy_dataset(SMALL, tmp_path)
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path))
    moved = load_manifest(SMALL)
    assert moved.splits["train"].file == tmp_path / SMALL / "train.csv.gz"
    assert [d.name for d in list_datasets()] == [SMALL]


def test_unknown_name_raises_listing_known_names():
    with pytest.raises(ValueError, match="no/such/task") as exc:
        load_manifest("no/such/task", REPO / "datasets")
    assert "gue/prom/prom_core_tata" in str(exc.value)
    assert "genomic_benchmarks/human_enhancers_cohn" in str(exc.value)


def test_corrupted_copy_is_reported(tmp_path, monkeypatch):
    folder = _copy_dataset(SMALL, tmp_path)
    target = folder / "dev.csv.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path))
    problems = verify(load_manifest(SMALL))
    assert problems, "a flipped byte must be reported"
    assert all("[dev]" in p for p in problems)
    assert any("sha256 mismatch" in p for p in problems)

    proc = subprocess.run(
        [sys.executable, "-m", "titans_sci.data.registry", "verify"],
        cwd=REPO,
        env={**os.environ, registry.ENV_VAR: str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAIL {SMALL}" in proc.stdout


def test_missing_file_and_wrong_row_count_are_reported(tmp_path):
    folder = _copy_dataset(SMALL, tmp_path)
    (folder / "test.csv.gz").unlink()
    m = load_manifest(SMALL, tmp_path)
    problems = verify(m)
    assert len(problems) == 1 and "[test]" in problems[0] and "missing file" in problems[0]

    # A file rewritten with one row fewer, and its sha256 updated in the manifest:
    # only the row count gives it away.
    train = folder / "train.csv.gz"
    with gzip.open(train, "rt") as f:
        lines = f.readlines()
    with gzip.open(train, "wt") as f:
        f.writelines(lines[:-1])
    manifest = folder / "manifest.toml"
    text = manifest.read_text()
    old_sha = m.splits["train"].sha256
    manifest.write_text(text.replace(old_sha, registry.sha256_of(train)))
    (folder / "test.csv.gz").write_bytes((REPO / "datasets" / SMALL / "test.csv.gz").read_bytes())
    problems = verify(load_manifest(SMALL, tmp_path))
    assert len(problems) == 1, problems
    assert "row count mismatch (expected 1904, got 1903)" in problems[0]


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda t: t.replace("sequence_length = 101\n", ""), "sequence_length"),
        (lambda t: t.replace("num_classes = 2", 'num_classes = "2"'), "num_classes"),
        (lambda t: t.replace("rows = 239\n", "", 1), "splits.dev.rows"),
        (lambda t: t.replace('license = "', 'licence = "'), "license"),
    ],
)
def test_malformed_manifest_names_file_and_key(tmp_path, edit, key):
    folder = _copy_dataset(SMALL, tmp_path)
    manifest = folder / "manifest.toml"
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(ValueError) as exc:
        load_manifest(SMALL, tmp_path)
    assert str(manifest) in str(exc.value)
    # the key, as task files name theirs (``key = value: ...``) or quoted in a rule's message
    assert re.search(rf"(^|: ){key} = |'{key}'", str(exc.value)), str(exc.value)
    with pytest.raises(ValueError, match="sequence_length|num_classes|rows|license"):
        list_datasets(tmp_path)
    with pytest.raises(ValueError):
        read_manifest(manifest)


def test_manifest_name_must_match_its_folder(tmp_path):
    folder = _copy_dataset(SMALL, tmp_path)
    manifest = folder / "manifest.toml"
    manifest.write_text(manifest.read_text().replace(f'name = "{SMALL}"', 'name = "gue/x"'))
    with pytest.raises(ValueError, match="'name'"):
        list_datasets(tmp_path)


def test_cli_verify_and_list_exit_zero():
    env = {k: v for k, v in os.environ.items() if k != registry.ENV_VAR}
    for command in ("verify", "list"):
        proc = subprocess.run(
            [sys.executable, "-m", "titans_sci.data.registry", command, "--kind", "dna"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        for name in EXPECTED:
            assert any(name in line for line in lines), (command, name)
        if command == "verify":
            assert f"{len(EXPECTED)}/{len(EXPECTED)} data sets verified" in proc.stdout
