"""Every task file in tasks/ runs end to end (a tiny budget set with overrides) and leaves a run
folder with valid results.json, runs.csv and report.md: the 4-horizon forecasting files too."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from titans_sci.tasks import load_task, run

TASK_FILES = sorted(Path("tasks").glob("*.toml"))

#: The budget of a smoke run: one epoch on a few items, scored on a few dev and test items.
TINY = {
    "classification": {
        "training.epochs": 1,
        "data.max_train": 48,
        "data.max_eval": 24,
        "protocol.folds": 2,
        "protocol.seeds": [1],
    },
    "forecasting": {
        "training.epochs": 1,
        "training.windows_per_epoch": 32,
        "data.max_eval": 16,
        "protocol.seeds": [1],
    },
    "history_forecasting": {
        "training.epochs": 1,
        "data.max_eval": 16,
        "protocol.seeds": [1],
    },
    "annotation": {
        "training.epochs": 1,
        "training.stretch": 2048,
        "data.max_train": 4096,
        "data.max_eval": 4096,
        "protocol.seeds": [1],
        "protocol.reset_every": [1024],
    },
    "pretraining": {
        "training.epochs": 1,
        "training.steps_per_epoch": 2,
        "training.batch_size": 8,
        "data.max_eval": 16,
        "protocol.seeds": [1],
    },
}


def _strict(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("path", TASK_FILES, ids=[p.stem for p in TASK_FILES])
def test_the_task_file_runs_end_to_end(path: Path, tmp_path):
    task = load_task(path)
    task = load_task(path, TINY[task.kind])
    result = run(task, tmp_path)
    folder = tmp_path / task.name
    saved = _strict(folder / "results.json")
    assert saved["summary"] == json.loads(json.dumps(result["summary"]))
    assert saved["task"]["name"] == task.name
    with open(folder / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(saved["runs"]) > 0
    if task.kind in ("forecasting", "history_forecasting"):
        horizons = [str(h) for h in task.protocol.horizons]
        assert list(saved["summary"]["titans"]["horizons"]) == horizons
        assert {r["horizon"] for r in rows} == set(horizons)
        saved_models = sorted((folder / "checkpoints").glob("*/titans/model"))
        assert len(saved_models) == len(horizons)
    else:
        switched_on = {name for name, on in vars(task.baselines).items() if on is True}
        assert set(saved["summary"]) == {"titans"} | switched_on
    report = (folder / "report.md").read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    # learning curves, predictions, surprise (pretraining: learning curves)
    assert len(images) >= (1 if task.kind == "pretraining" else 3)
    for image in images:
        assert (folder / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
