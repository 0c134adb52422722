"""Every ``titans-sci`` command on bundled data with tiny budgets, and bad input through it:
one clear line, exit status 2, no traceback unless ``--debug``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from titans_sci.cli import main


def test_train_saves_models_and_skips_baselines(workspace):
    root, dna_model, ts_model = workspace
    assert (dna_model / "model.safetensors").exists() and (ts_model / "model.json").exists()
    result = json.loads((root / "runs" / "cli_dna" / "results.json").read_text())
    assert set(result["summary"]) == {"titans"}


def test_predict_a_fasta_with_lowercase_and_n_and_a_csv(workspace, capsys):
    root, dna_model, ts_model = workspace
    fasta = root / "new.fa"
    fasta.write_text(">a first\nACGTACGTnnnnACGTTATAAAAGGCgcgc\n>b\nNNNNACGTRYACGTTTTT\n")
    out = root / "pred" / "dna.csv"
    assert main(["predict", str(dna_model), str(fasta), "-o", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["id"].tolist() == ["a", "b"] and {"p_0", "p_1", "prediction"} <= set(table)
    assert main(["predict", str(dna_model), str(root / "test.csv")]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].count(",") == 4 and "row40" in printed
    assert main(["predict", str(ts_model), str(root / "series.csv"), "-o", str(out)]) == 0
    forecast = pd.read_csv(out)
    assert len(forecast) == 12 and list(forecast.columns) == ["step", "timestamp", "HUFL", "OT"]


def test_evaluate_on_a_file_and_on_the_task_data(workspace, capsys):
    root, dna_model, ts_model = workspace
    assert main(["evaluate", str(dna_model), str(root / "test.csv")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 40 and 0 <= metrics["accuracy"] <= 1
    assert main(["evaluate", str(ts_model), str(root / "series.csv")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 900 - 48 - 12 + 1 and metrics["mse"] > 0
    # A model trained on user files has no bundled test split to fall back on.
    assert main(["evaluate", str(dna_model)]) == 2
    assert "give a file to evaluate on" in capsys.readouterr().err


def test_tasks_data_and_bench(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "forecast_etth1.toml" in out and "gue_prom_core_tata.toml" in out
    assert main(["data", "list", "--kind", "timeseries"]) == 0
    out = capsys.readouterr().out
    assert "ett/ETTh1" in out and "gue/" not in out
    assert main(["data", "verify", "ett/ETTh1"]) == 0
    assert main(["bench", "--lengths", "64", "-q"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "MODEL", "missing.fa"], "missing.fa: no such file"),
        (["predict", "MODEL", "bad.fa"], "bad.fa"),
        (["run", "unknown_key.toml"], "colour"),
        (["run", "wrong_type.toml"], "training.epochs = 'two': Input should be a valid integer"),
        (["run", "old_format.toml"], "no 'format' key; add format = 2 at the top"),
        (["run", "unknown_key.toml", "--set", "epochs"], "--set 'epochs': expected KEY=VALUE"),
        (["predict", "OTHER", "new.fa"], "do not fit the model"),
        (["evaluate", "nowhere"], "model.json: not a saved titans-sci model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workspace, tmp_path, capsys, argv, message):
    root, dna_model, _ = workspace
    (tmp_path / "bad.fa").write_text(">x\nACGTXACGT\n")
    (tmp_path / "new.fa").write_text(">x\nACGTACGT\n")
    head = 'format = 2\nname = "x"\n[data]\ndataset = "d"\n'
    (tmp_path / "unknown_key.toml").write_text(head + "colour = 1\n")
    (tmp_path / "wrong_type.toml").write_text(head + '[training]\nepochs = "two"\n')
    (tmp_path / "old_format.toml").write_text('[task]\nname = "x"\ndataset = "d"\n')
    other = tmp_path / "other"
    other.mkdir()
    info = json.loads((dna_model / "model.json").read_text())
    info["config"]["num_classes"] = 3
    (other / "model.json").write_text(json.dumps(info))
    (other / "model.safetensors").write_bytes((dna_model / "model.safetensors").read_bytes())
    names = {"MODEL": str(dna_model), "OTHER": str(other)}
    argv = [names.get(a, str(tmp_path / a) if a.endswith((".fa", ".toml")) else a) for a in argv]
    argv = [str(tmp_path / a) if a == "nowhere" else a for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("titans-sci: ") and message in lines[0]
    assert "Traceback" not in captured.err
    assert main([argv[0], "--debug", *argv[1:]]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cli_dna", "cli_ts"])
def test_runs_write_a_report_with_valid_images(workspace, name):
    from matplotlib.image import imread

    root, _, _ = workspace
    directory = root / "runs" / name
    report = (directory / "report.md").read_text()
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if "](" in line]
    assert {"learning_curves.png", "surprise.png"} <= set(images) and len(images) == 3
    for image in images:
        pixels = imread(directory / image)
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.std() > 0
    assert not list(directory.glob("*.tmp*"))


def test_run_directory_holds_config_log_and_results(workspace):
    root, _, _ = workspace
    directory = root / "runs" / "cli_ts"
    config = json.loads((directory / "run.json").read_text())["task"]
    assert config["model"]["lookback"] == 48 and config["training"]["val_stride"] == 1  # a default
    assert config["model"]["horizon"] == 96  # the config's; each run's is its protocol horizon
    log = (directory / "checkpoints/h12_seed1/titans/train.log").read_text().splitlines()
    assert log and log[0].startswith("epoch 1/1: training loss")
    assert {"results.json", "runs.csv", "report.md"} <= {p.name for p in directory.iterdir()}


def test_predict_windows_through_the_cli(workspace, capsys):
    root, dna_model, ts_model = workspace
    fasta = root / "long.fa"
    fasta.write_text(">chr\n" + "ACGTTATAAAAGGCGCGCAT" * 30 + "\n")  # 600 bases
    out = root / "pred" / "windows.csv"
    argv = ["predict", "-q", str(dna_model), str(fasta), "--window", "70", "--stride", "35"]
    assert main([*argv, "-o", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 17 and table["end"].iloc[-1] == 600
    assert "17 windows" in capsys.readouterr().out
    assert main(["predict", str(ts_model), str(root / "series.csv"), "--window", "70"]) == 2
    assert "--window needs a sequence classifier and --output" in capsys.readouterr().err


def test_predict_surprise_through_the_cli(workspace, capsys):
    root, dna_model, ts_model = workspace
    fasta = root / "long_surprise.fa"
    fasta.write_text(">chr\n" + "ACGTTATAAAAGGCGCGCAT" * 30 + "\n")  # 600 bases
    out = root / "pred" / "surprise.csv"
    argv = ["predict", "-q", str(dna_model), str(fasta), "--surprise", "--segment", "128"]
    assert main([*argv, "-o", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 600 and table["position"].iloc[-1] == 599
    assert (table.filter(like="layer") > 0).all().all()
    assert "600 positions" in capsys.readouterr().out
    assert main(["predict", str(ts_model), str(root / "series.csv"), "--surprise"]) == 2
    assert "--surprise needs a sequence classifier and --output" in capsys.readouterr().err
