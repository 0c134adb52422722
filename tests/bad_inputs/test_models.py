"""Saved models verified on load, forecasts and metrics checked finite, long records refused
with the hint: one clear line each, nothing written."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import titans_sci
from refusal import refused
from titans_sci.api import MAX_RECORD, save_model
from titans_sci.cli import main


@pytest.fixture
def models(workspace, tmp_path):
    """Copies of the workspace's saved classifier and forecaster, free to spoil."""
    root, dna_model, ts_model = workspace
    dna, ts = tmp_path / "dna", tmp_path / "ts"
    shutil.copytree(dna_model, dna)
    shutil.copytree(ts_model, ts)
    return root, dna, ts


def _predict(model, data, tmp_path):
    return ["predict", str(model), str(data), "-o", str(tmp_path / "out" / "p.csv")]


@pytest.mark.parametrize("spoil", ["flip", "truncate", "empty"])
def test_a_changed_weights_file_is_one_line(models, tmp_path, capsys, spoil):
    root, dna, _ = models
    weights = dna / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if spoil == "flip":
        data[len(data) // 2] ^= 0x10
    kept = {"flip": bytes(data), "truncate": bytes(data[: len(data) // 3]), "empty": b""}
    weights.write_bytes(kept[spoil])
    (tmp_path / "out").mkdir()
    refused(capsys, _predict(dna, root / "test.csv", tmp_path), str(weights),
            "do not match the checksum in model.json", watch=[tmp_path / "out"])  # fmt: skip


def test_a_forecaster_without_its_scaler_is_one_line(models, tmp_path, capsys):
    root, _, ts = models
    info = json.loads((ts / "model.json").read_text())
    del info["meta"]["scaler_mean"]
    (ts / "model.json").write_text(json.dumps(info))
    refused(capsys, _predict(ts, root / "series.csv", tmp_path), str(ts / "model.json"),
            "meta has no scaler_mean")  # fmt: skip


def test_a_record_too_long_to_score_whole_gets_the_hint(models, tmp_path, capsys):
    _, dna, _ = models
    long = tmp_path / "long.fa"
    long.write_text(">chr\n" + "ACGT" * (MAX_RECORD // 4) + "A\n")
    (tmp_path / "out").mkdir()
    refused(capsys, _predict(dna, long, tmp_path), str(long), "record chr has 100,001 bases",
            "--window", watch=[tmp_path / "out"])  # fmt: skip
    model = titans_sci.load(dna)
    with pytest.raises(ValueError, match="record seq1 has 50 bases"):
        model.predict(["ACGTA" * 10], max_length=40)


def test_a_label_the_model_does_not_know_names_the_record(models, tmp_path, capsys):
    root, dna, _ = models
    frame = pd.read_csv(root / "test.csv")
    frame.loc[6, "label"] = 2
    frame.to_csv(tmp_path / "three.csv", index=False)
    refused(capsys, ["evaluate", str(dna), str(tmp_path / "three.csv")], "three.csv",
            "record row7 has label 2; the model knows classes 0..1")  # fmt: skip


def test_inputs_far_outside_the_training_data_warn_or_refuse(models, tmp_path, capsys):
    root, _, ts = models
    frame = pd.read_csv(root / "series.csv")
    frame.loc[len(frame) - 5, "OT"] = 1e30
    frame.to_csv(tmp_path / "wild.csv", index=False)
    model = titans_sci.load(ts)
    with pytest.warns(UserWarning, match="'OT' lie more than 100 training standard deviations"):
        try:
            forecast = model.predict(tmp_path / "wild.csv")
        except FloatingPointError as error:
            assert "not finite" in str(error) and "'OT'" in str(error)
        else:
            assert forecast.drop(columns=["step", "timestamp"]).abs().max().max() < float("inf")
    assert main(["evaluate", str(ts), str(tmp_path / "wild.csv")]) in (0, 2)
    captured = capsys.readouterr()
    assert "Infinity" not in captured.out and "NaN" not in captured.out


def test_a_save_clears_what_a_killed_save_left(tmp_path):
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

    memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=16)
    classifier = DNAClassifier(ClassifierConfig(LMMConfig(dim=16, depth=1, memory=memory)))
    stale = tmp_path / ".model-abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    save_model(tmp_path / "model", classifier, {})
    assert not stale.exists()
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["format"] == 3 and len(info["weights_sha256"]) == 64
    assert titans_sci.load(tmp_path / "model").model.config == classifier.config


def test_duplicate_ids_are_refused_unless_allowed(models, tmp_path, capsys):
    _, dna, _ = models
    fasta = tmp_path / "twice.fa"
    fasta.write_text(">a\nACGTTATAAAAGGC\n>b\nACGTACGT\n>a\nTTTTACGTAC\n")
    out = tmp_path / "out" / "p.csv"
    (tmp_path / "out").mkdir()
    for extra in ([], ["--window", "8"], ["--surprise"]):
        refused(capsys, ["predict", "-q", str(dna), str(fasta), "-o", str(out), *extra],
                str(fasta), "record id 'a' appears twice", watch=[tmp_path / "out"],
                debug=False)  # fmt: skip
        flag = ["--allow-duplicate-ids"]
        assert main(["predict", "-q", str(dna), str(fasta), "-o", str(out), *extra, *flag]) == 0
        assert pd.read_csv(out).iloc[:, 0].astype(str).str.fullmatch("a|b").all()
        out.unlink()
