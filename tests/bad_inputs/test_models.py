"""Saved models verified on load, forecasts and metrics checked finite, long records refused
with the hint: one clear line each, nothing written."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import titans_sci
from refusal import refused
from titans_sci.api import MAX_RECORD, _token_batches, save_model
from titans_sci.cli import main
from titans_sci.data.timeseries import TimeSeriesTable, read_series
from titans_sci.evaluation.metrics import classification_metrics


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
    with pytest.raises(ValueError, match="50 bases, more than surprise.. takes whole"):
        model.surprise("ACGTA" * 10, max_length=40)


def test_batches_hold_a_bounded_number_of_padded_bases(models):
    assert list(_token_batches([10, 10, 10, 50, 5], size=8, budget=40)) == [(0, 3), (3, 4), (4, 5)]
    assert list(_token_batches([100, 1], size=8, budget=40)) == [(0, 1), (1, 2)]
    assert list(_token_batches([1] * 5, size=2, budget=100)) == [(0, 2), (2, 4), (4, 5)]
    _, dna, _ = models
    model = titans_sci.load(dna)
    texts = ["ACGTTATAAAAGGC" * k for k in (1, 9, 2, 30, 3)]
    together = model.predict(texts, max_length=450)  # batches cut by padded bases
    alone = pd.concat([model.predict([t]) for t in texts], ignore_index=True)
    np.testing.assert_allclose(together[["p_0", "p_1"]], alone[["p_0", "p_1"]], rtol=1e-5)


def test_a_label_the_model_does_not_know_names_the_record(models, tmp_path, capsys):
    root, dna, _ = models
    frame = pd.read_csv(root / "test.csv")
    frame.loc[6, "label"] = 2
    frame.to_csv(tmp_path / "three.csv", index=False)
    refused(capsys, ["evaluate", str(dna), str(tmp_path / "three.csv")], "three.csv",
            "record row7 has label 2; the model knows classes 0..1")  # fmt: skip


def test_values_outside_float32_are_refused_naming_column_and_row(models, tmp_path, capsys):
    root, _, ts = models
    frame = pd.read_csv(root / "series.csv")
    frame.loc[len(frame) - 5, "OT"] = 1e39
    frame.to_csv(tmp_path / "huge.csv", index=False)
    # The reader refuses it first (the CLI's line)...
    refused(capsys, _predict(ts, tmp_path / "huge.csv", tmp_path), "huge.csv", "'OT'",
            f"data row {len(frame) - 4}")  # fmt: skip
    # ... and so does the forecaster, given a table it did not read.
    good = read_series(root / "series.csv", "date", ["HUFL", "OT"])
    model = titans_sci.load(ts)
    for value, dtype in ((1e39, np.float64), (np.inf, np.float32), (np.nan, np.float32)):
        values = good.values.astype(dtype)
        values[len(good) - 5, 1] = value
        table = TimeSeriesTable("t.csv", good.timestamps, values, good.columns, good.freq)
        with pytest.raises(ValueError, match=rf"t.csv: column 'OT', data row {len(good) - 4} "):
            model.predict(table)
    values = good.values.copy()  # finite in float32, too large once scaled
    values[len(good) - 1, 1] = np.finfo(np.float32).max
    model.scale[1] = 0.5
    table = TimeSeriesTable("t.csv", good.timestamps, values, good.columns, good.freq)
    with pytest.raises(ValueError, match="outside what float32 holds once scaled"):
        model.predict(table)


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
    for argv in (["predict", str(ts), str(tmp_path / "wild.csv")],
                 ["evaluate", str(ts), str(tmp_path / "wild.csv")]):  # fmt: skip
        capsys.readouterr()
        status = main(argv)
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert status in (0, 2) and "Traceback" not in captured.err
        assert "inf" not in captured.out.lower() and "nan" not in captured.out.lower()
        if status == 2:  # refused: one line, no warning besides it
            assert len(lines) == 1 and "not finite" in lines[0] and "'OT'" in lines[0]
        else:  # a warning line naming the column
            assert (
                len(lines) == 1
                and lines[0].startswith("titans-sci: warning: ")
                and "wild.csv" in lines[0]
            )
            assert "'OT'" in lines[0]
        if argv[0] == "evaluate" and status == 0:
            json.loads(captured.out, parse_constant=_no_constant)
    # A milder outlier: the forecast is finite and the warning one line.
    frame.loc[len(frame) - 5, "OT"] = 1e5
    frame.to_csv(tmp_path / "mild.csv", index=False)
    assert main(["predict", str(ts), str(tmp_path / "mild.csv")]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "titans-sci: warning: " + str(tmp_path / "mild.csv") + ": column(s) 'OT' lie more than "
        "100 training standard deviations from the training mean; the forecast is an "
        "extrapolation"
    ]


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} in the JSON")


def test_evaluate_prints_strict_json_with_null_for_undefined(models, tmp_path, capsys):
    root, dna, _ = models
    frame = pd.read_csv(root / "test.csv")
    frame[frame["label"] == 1].to_csv(tmp_path / "ones.csv", index=False)
    capsys.readouterr()
    assert main(["evaluate", str(dna), str(tmp_path / "ones.csv")]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out, parse_constant=_no_constant)
    assert metrics["auroc"] is None and 0 <= metrics["accuracy"] <= 1
    assert captured.err == ""


def test_metrics_refuse_unknown_labels_and_non_finite_probabilities():
    with pytest.raises(ValueError, match=r"labels outside 0..1: found 0..2 \(row 2 has label 2"):
        classification_metrics(np.array([0, 1, 2]), np.eye(2)[[0, 1, 1]])
    probs = np.eye(2)[[0, 1, 1]].astype(float)
    probs[1, 0] = np.nan
    with pytest.raises(FloatingPointError, match="probabilities of row 1 are not finite"):
        classification_metrics(np.array([0, 1, 1]), probs)


def _classifier():
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

    memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=16)
    return DNAClassifier(ClassifierConfig(LMMConfig(dim=16, depth=1, memory=memory)))


def test_a_save_clears_what_a_killed_save_left(tmp_path):
    classifier = _classifier()
    save_model(tmp_path / "model", classifier, {"n": 1})
    # What saves killed mid-way leave: a half-written staging folder, and the older model
    # moved aside while the new one was renamed in. Another model's staging stays.
    stale = Path(tempfile.mkdtemp(prefix=".model-", dir=tmp_path))
    (stale / "model.safetensors").write_bytes(b"half")
    aside = Path(tempfile.mkdtemp(prefix=".model-", dir=tmp_path))
    aside.rename(aside.with_name(aside.name + "-old"))
    other = Path(tempfile.mkdtemp(prefix=".model-2-", dir=tmp_path))
    save_model(tmp_path / "model", classifier, {"n": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", other.name])
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["format"] == 4 and len(info["weights_sha256"]) == 64 and info["meta"] == {"n": 2}
    assert titans_sci.load(tmp_path / "model").model.config == classifier.config


def test_older_formats_load_unverified_and_newer_ones_are_refused(models, tmp_path, capsys):
    root, dna, _ = models
    config = dna / "model.json"
    info = json.loads(config.read_text())
    expected = titans_sci.load(dna).predict(root / "test.csv")
    old = {k: v for k, v in info.items() if k != "weights_sha256"} | {"format": 2}
    config.write_text(json.dumps(old))
    pd.testing.assert_frame_equal(titans_sci.load(dna).predict(root / "test.csv"), expected)
    weights = dna / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # no checksum to catch it: the header does
    refused(capsys, _predict(dna, root / "test.csv", tmp_path), str(weights),
            "not a readable safetensors file")  # fmt: skip
    config.write_text(json.dumps(old | {"format": 3}))
    refused(capsys, _predict(dna, root / "test.csv", tmp_path), str(config),
            "no weights_sha256")  # fmt: skip
    config.write_text(json.dumps(info | {"format": 5}))
    refused(capsys, _predict(dna, root / "test.csv", tmp_path), str(config), "format 5",
            "upgrade titans-sci")  # fmt: skip


def test_weights_with_nan_are_refused_on_load(tmp_path, capsys):
    classifier = _classifier()
    with torch.no_grad():
        classifier.head.linear.weight[0, 0] = float("nan")
    save_model(tmp_path / "model", classifier, {})
    refused(capsys, ["predict", str(tmp_path / "model"), "x.fa"], "model.safetensors",
            "'head.linear.weight' holds non-finite values")  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("scaler_scale", [0.0, 1.0], "meta's scaler_scale for column 'HUFL' is 0.0"),
        ("scaler_mean", [1.0], "meta's scaler_mean must list 2 entries"),
        ("columns", "OT", "meta's columns must be a list of names"),
    ],
)
def test_a_forecaster_with_a_broken_scaler_is_one_line(models, tmp_path, capsys, key, value,
                                                      message):  # fmt: skip
    root, _, ts = models
    info = json.loads((ts / "model.json").read_text())
    info["meta"][key] = value
    (ts / "model.json").write_text(json.dumps(info))
    refused(capsys, _predict(ts, root / "series.csv", tmp_path), str(ts / "model.json"), message)


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


def test_a_mac_model_saved_before_format_4_keeps_its_block(tmp_path):
    """Format 4 made the paper's MAC block the default; a MAC model saved before it (no
    ``form``) loads with the block it was trained with."""
    from titans_sci.models import MACConfig
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

    config = ClassifierConfig(backbone=MACConfig(dim=16, depth=1, segment_len=16))
    classifier = DNAClassifier(config)
    save_model(tmp_path / "model", classifier, {})
    path = tmp_path / "model" / "model.json"
    info = json.loads(path.read_text())
    assert titans_sci.load(tmp_path / "model").model.config.backbone.form == "paper"
    del info["config"]["backbone"]["form"]
    path.write_text(json.dumps(info | {"format": 3}))
    assert titans_sci.load(tmp_path / "model").model.config.backbone.form == "residual"
