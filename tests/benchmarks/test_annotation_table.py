"""The annotation benchmark's table: the parts of every seed (one run per seed and model) merge
into one row per model, mean +- std over the seeds present, the context curve from the Titans
parts alone and a budget line per part."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_annotation import render  # noqa: E402

TASK = {"model": {"patch": 8, "stem_kernel": 9, "front": 2, "conv_kernel": 9, "window": 512},
        "training": {"epochs": 8, "stretch": 32768, "lr": 2e-3, "weight_decay": 0.01,
                     "clip_norm": 1.0, "patience": 2}}  # fmt: skip


def part(seed: int, name: str, cds_f1: float, **extra: float) -> dict:
    row = {"seed": seed, "model": name, "cds_f1": cds_f1, "exon_f1": cds_f1 / 2,
           "cds_exact_f1": cds_f1 / 4, **extra}  # fmt: skip
    if name != "augustus":
        row.update(parameters=1000, epochs_run=4, best_epoch=2)
    return {"seed": seed, "part": name, "seconds": 600, "date": "d", "machine": "m",
            "overrides": {}, "result": {"task": TASK, "protocol": f"{name} protocol",
                                        "fingerprint": {"code": {}}, "runs": [row]}}  # fmt: skip


def test_parts_of_each_seed_merge_into_one_row_per_model():
    store = {
        "2|titans": part(2, "titans", 0.8, cds_f1_reset_1024=0.6),
        "1|cnn": part(1, "cnn", 0.7),
        "1|titans": part(1, "titans", 0.9, cds_f1_reset_1024=0.5),
        "1|augustus": part(1, "augustus", 0.95),
    }
    text = render(store)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "| 2 | 1,000 | 0.850 +- 0.071 |" in rows["| Titans (memory)"]
    assert "| 1 | 1,000 | 0.700 |" in rows["| CNN"]
    assert "| 1 | - | 0.950 |" in rows["| AUGUSTUS (yeast-trained parameters, test genes included)"]
    assert "| 1,024 bases | 0.550 +- 0.071 |" in text  # the Titans parts' reset scores
    assert "| never (whole chromosome) | 0.850 +- 0.071 |" in text
    assert "as the seed 1 titans run states it): titans protocol." in text
    budget = [line for line in text.splitlines() if line.startswith("- seed ")]
    assert [line.split(":")[0] for line in budget] == [
        "- seed 1, Titans (memory)", "- seed 1, CNN", "- seed 1, AUGUSTUS",
        "- seed 2, Titans (memory)"]  # fmt: skip
    assert render({}).endswith("No part has finished yet.\n")
