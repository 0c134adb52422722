"""The public API: models saved by task runs load, predict and show their surprise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import titans_sci
from titans_sci.data.registry import load_manifest


@pytest.fixture
def classifier_dir(workspace):
    return workspace[1]


@pytest.fixture
def forecaster_dir(workspace):
    return workspace[0], workspace[2]


def test_classifier_predicts_a_fasta_with_lowercase_and_n(classifier_dir, tmp_path):
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["test"].file).head(3)
    seqs = frame["sequence"].tolist()
    seqs[1] = seqs[1][:20].lower() + "NNNN" + seqs[1][24:]  # soft-masked bases and Ns
    fasta = tmp_path / "new.fa"
    fasta.write_text("".join(f">r{i} test\n{s}\n" for i, s in enumerate(seqs)))
    model = titans_sci.load(classifier_dir)
    table = model.predict(fasta)
    assert table["id"].tolist() == ["r0", "r1", "r2"]
    np.testing.assert_allclose(table[["p_0", "p_1"]].sum(axis=1), 1.0, rtol=1e-6)
    again = model.predict(seqs)  # strings give the same numbers
    np.testing.assert_allclose(again[["p_0", "p_1"]], table[["p_0", "p_1"]], rtol=1e-6)
    trace = model.surprise(seqs[0])
    assert trace.shape == (len(seqs[0]), 1, 2) and np.isfinite(trace).all()
    meta = json.loads((classifier_dir / "model.json").read_text())
    assert meta["meta"]["task"] == "cli_dna" and "mcc" in meta["meta"]


def test_forecaster_predicts_the_next_steps_in_data_units(forecaster_dir):
    root, model_dir = forecaster_dir
    model = titans_sci.load(model_dir)
    out = model.predict(root / "series.csv")
    assert list(out.columns) == ["step", "timestamp", "HUFL", "OT"]
    assert len(out) == 12
    last = pd.read_csv(root / "series.csv")["date"].iloc[-1]
    assert out["timestamp"].iloc[0] == pd.Timestamp(last) + pd.Timedelta(hours=1)
    # In data units: near the series' own level, not the scaled one.
    ot = pd.read_csv(root / "series.csv")["OT"]
    assert abs(out["OT"].mean() - ot.tail(48).mean()) < 3 * ot.std()
    assert model.surprise(root / "series.csv").shape[:2] == (2, 12)


def test_bad_model_folders_are_named(classifier_dir, tmp_path):
    with pytest.raises(ValueError, match=r"model.json: not a saved titans-sci model"):
        titans_sci.load(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    info = json.loads((classifier_dir / "model.json").read_text())
    info["config"]["backbone"]["dim"] = 32
    (other / "model.json").write_text(json.dumps(info))
    (other / "model.safetensors").write_bytes((classifier_dir / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="do not fit the model"):
        titans_sci.load(other)
    with pytest.raises(ValueError, match="record 'seq1'"):
        titans_sci.load(classifier_dir).predict(["ACGTXACGT"])


def test_saving_is_atomic_and_replaces(classifier_dir, tmp_path):
    from titans_sci.api import save_model

    model = titans_sci.load(classifier_dir).model
    target = tmp_path / "saved"
    save_model(target, model, {"n": 1})
    save_model(target, model, {"n": 2})
    assert json.loads((target / "model.json").read_text())["meta"] == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]  # no staging left behind
    with pytest.raises(TypeError, match="cannot save a Linear"):
        save_model(tmp_path / "x", torch.nn.Linear(2, 2), {})


def _long_fasta(path, length: int, soft: int, n_run: int, n_count: int, short: int) -> str:
    """Write a FASTA of a ``chrom`` record (``length`` real promoter bases end to end,
    lowercase from ``soft`` to ``n_run``, then ``n_count`` N) and a ``short`` record, its first
    bases; return the ``chrom`` text."""
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["test"].file)
    long = "".join(frame["sequence"])[:length]
    long = long[:soft] + long[soft:n_run].lower() + "N" * n_count + long[n_run + n_count :]
    path.write_text(f">chrom\n{long}\n>short\n{long[:short]}\n")
    return long


def test_long_records_stream_through_windows(classifier_dir, tmp_path):
    """A 20,000-base record (real promoters end to end, soft-masked and N runs included) is
    scored window by window into a CSV: the windows tile the record, the last one ends at its
    end, and each window's probabilities equal a direct prediction of that window."""
    fasta = tmp_path / "chrom.fa"
    long = _long_fasta(fasta, 20_000, soft=5000, n_run=5300, n_count=100, short=150)
    model = titans_sci.load(classifier_dir)
    out = tmp_path / "windows.csv"
    count = model.predict_windows(fasta, out, window=70, stride=50, batch_size=64, progress=False)
    table = pd.read_csv(out)
    assert count == len(table) == 400 + 3
    chrom = table[table["record"] == "chrom"]
    assert chrom["start"].iloc[0] == 0 and chrom["end"].iloc[-1] == 20_000
    assert (chrom["start"].diff().dropna() <= 50).all()
    picked = chrom.iloc[[0, 101, 399]]
    direct = model.predict([long[s:e] for s, e in zip(picked["start"], picked["end"], strict=True)])
    np.testing.assert_allclose(picked[["p_0", "p_1"]], direct[["p_0", "p_1"]], rtol=1e-4)
    assert not (tmp_path / "windows.csv.tmp").exists()


def test_surprise_streams_along_a_long_record(classifier_dir, tmp_path):
    """Per-base surprise of long records, streamed in segments with the memory's state
    carried: one CSV row per base, equal to the surprise of the whole record in one call.

    In float64: in float32 the two differ by rounding, which this trained memory's dynamics
    amplify (about 1e-4 relative after 900 bases, 1e-1 after 2,500), so exactness is checked
    where rounding is negligible."""
    fasta = tmp_path / "chrom.fa"
    long = _long_fasta(fasta, 3001, soft=1000, n_run=1200, n_count=50, short=97)
    model = titans_sci.load(classifier_dir)
    model.model.double()
    out = tmp_path / "surprise.csv"
    count = model.stream_surprise(fasta, out, segment=256, progress=False)
    table = pd.read_csv(out)
    assert count == len(table) == 3001 + 97
    assert list(table.columns) == ["record", "position", "base", "layer0_head0", "layer0_head1"]
    chrom = table[table["record"] == "chrom"]
    assert chrom["position"].tolist() == list(range(3001))
    assert "".join(chrom["base"]) == long
    whole = model.surprise(long)  # [T, layers, heads]
    np.testing.assert_allclose(chrom.iloc[:, 3:], whole.reshape(3001, -1), rtol=1e-4)
    assert not (tmp_path / "surprise.csv.tmp").exists()
