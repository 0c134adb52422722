"""Shared test configuration."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels run on the CPU through Triton's interpreter; it must be set before Triton
    # is first imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per xdist worker: the workers already use all cores, and more threads per
    # worker only oversubscribe the machine.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """Real data (bundled GUE and ETTh1 subsets) and two tiny tasks trained with ``titans-sci
    train``: ``(root, classifier folder, forecaster folder)``, shared by the CLI and API tests."""
    import pandas as pd

    from tiny_tasks import classification_task, forecast_task
    from titans_sci.cli import main
    from titans_sci.data.registry import load_manifest

    dna_task = "# tiny genomics\n" + classification_task(
        "cli_dna", 'train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"'
    ).replace("epochs = 2", "epochs = 1")

    ts_task = "# tiny forecasting\n" + forecast_task(
        "cli_ts",
        'file = "series.csv"\nsplit_rule = "ratio_70_10_20"\ncolumns = ["HUFL", "OT"]',
        "[protocol]\nhorizons = [12]\n",
    ).replace("epochs = 2", "epochs = 1\npatience = 3").replace("= 256", "= 128")

    root = tmp_path_factory.mktemp("cli")
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["train"].file)
    frame.groupby("label").head(48).to_csv(root / "train.csv", index=False)
    frame.iloc[200:240].to_csv(root / "dev.csv", index=False)
    frame.iloc[300:340].to_csv(root / "test.csv", index=False)
    series = pd.read_csv(load_manifest("ett/ETTh1").splits["data"].file).head(900)
    series.to_csv(root / "series.csv", index=False)
    (root / "dna.toml").write_text(dna_task)
    (root / "ts.toml").write_text(ts_task)
    out = str(root / "runs")
    assert main(["train", "-q", "--out", out, str(root / "dna.toml")]) == 0
    assert main(["train", "-q", "--out", out, str(root / "ts.toml")]) == 0
    dna_model = root / "runs" / "cli_dna" / "checkpoints" / "seed1" / "titans" / "model"
    ts_model = root / "runs" / "cli_ts" / "checkpoints" / "h12_seed1" / "titans" / "model"
    return root, dna_model, ts_model
