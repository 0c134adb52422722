"""Tiny task files on real data, shared by the task, CLI and API tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from titans_sci.data.registry import load_manifest

#: ``load_task`` overrides that shrink a shipped task's backbone to a tiny one.
TINY_BACKBONE = {
    "model.backbone.dim": 16,
    "model.backbone.memory": {
        "preset": "titans",
        "num_heads": 2,
        "head_dim": 8,
        "chunk_size": 16,
    },  # fmt: skip
}

TINY_CLASSIFIER = """
[model.backbone]
dim = 16
depth = 1
bidirectional = true
memory = { preset = "titans", num_heads = 2, head_dim = 8, chunk_size = 16 }
[training]
epochs = 2
batch_size = 32
"""

TINY_FORECASTER = """
[model.backbone]
dim = 16
depth = 1
memory = { preset = "titans", num_heads = 2, head_dim = 8, chunk_size = 4 }
[training]
epochs = 2
batch_size = 32
windows_per_epoch = 256
"""


def classification_task(name: str, data: str, extra: str = "", model: str = "") -> str:
    """A format-2 classification task: ``data`` is the body of its [data] table."""
    return (
        f'format = 2\nkind = "classification"\nname = "{name}"\n[data]\n{data}\n'
        f"[model]\n{model}\n{TINY_CLASSIFIER}{extra}"
    )


def forecast_task(name: str, data: str, extra: str = "", model: str = "lookback = 48") -> str:
    """A format-2 forecasting task with patches of 8 every 4 steps."""
    return (
        f'format = 2\nkind = "forecasting"\nname = "{name}"\n[data]\n{data}\n'
        f"[model]\npatch_len = 8\nstride = 4\n{model}\n{TINY_FORECASTER}{extra}"
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def gue_csv(folder: Path, split: str, rows: int, name: str | None = None) -> str:
    """A real, class-balanced subset of bundled GUE prom_core_tata as a user CSV."""
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits[split].file)
    path = folder / (name or f"{split}.csv")
    frame.groupby("label").head(rows // 2).to_csv(path, index=False)
    return path.name


def etth1_csv(folder: Path, rows: int = 1500) -> str:
    """The first ``rows`` hours of the bundled ETTh1 as a user CSV."""
    frame = pd.read_csv(load_manifest("ett/ETTh1").splits["data"].file).head(rows)
    frame.to_csv(folder / "etth1_head.csv", index=False)
    return "etth1_head.csv"


FILES = 'train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"'


def user_classification_task(
    folder: Path, name: str, rows: tuple[int, int, int] = (32, 16, 16), extra: str = ""
) -> Path:
    """A one-epoch classification task ``<folder>/<name>.toml`` on real GUE sequences written
    as the user's own train/dev/test CSV files of ``rows`` records."""
    for split, count in zip(("train", "dev", "test"), rows, strict=True):
        gue_csv(folder, split, count)
    text = classification_task(name, FILES, extra)
    return write(folder / f"{name}.toml", text.replace("epochs = 2", "epochs = 1"))
