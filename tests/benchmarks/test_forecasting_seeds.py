"""The forecasting benchmark's ``--add-seeds`` merge: a run of other seeds joins the stored
Titans entry of the same budget; anything else is refused or replaced, never dropped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_forecasting import merge_seeds  # noqa: E402

BUDGET = "10 epochs max (patience 3), dim 64, seeds {}, selected on every 4th validation window"


def entry(seeds: dict[str, tuple[float, float]], seconds: float) -> dict:
    """A Titans entry with per seed (mse, val_mse), as ``titans_long`` writes it."""
    rows = {s: {"mse": m, "mae": m / 2, "val_mse": v} for s, (m, v) in seeds.items()}
    return {
        "mse": sum(r["mse"] for r in rows.values()) / len(rows),
        "mae": sum(r["mae"] for r in rows.values()) / len(rows),
        "val_mse": sum(r["val_mse"] for r in rows.values()) / len(rows),
        "seeds": rows,
        "budget": BUDGET.format([int(s) for s in seeds]),
        "seconds": seconds,
        "date": "2026-12-03",
    }


def test_new_seeds_join_the_stored_ones():
    stored = entry({"1": (0.2, 0.5)}, 100.0)
    del stored["seeds"]["1"]["val_mse"]  # an older entry: the mean only
    merged = merge_seeds(stored, entry({"3": (0.4, 0.7), "2": (0.3, 0.6)}, 50.0))
    assert list(merged["seeds"]) == ["1", "2", "3"]
    assert merged["mse"] == pytest.approx(0.3)
    assert merged["mae"] == pytest.approx(0.15)
    assert merged["val_mse"] == pytest.approx(0.6)
    assert merged["seeds"]["1"]["val_mse"] == pytest.approx(0.5)
    assert merged["budget"] == BUDGET.format([1, 2, 3])
    assert merged["seconds"] == 150.0


def test_an_entry_of_another_budget_is_refused():
    stored = entry({"1": (0.2, 0.5)}, 100.0)
    other = entry({"2": (0.3, 0.6)}, 50.0)
    other["budget"] = other["budget"].replace("dim 64", "dim 128")
    with pytest.raises(ValueError, match="cannot take these seeds"):
        merge_seeds(stored, other)


def test_entries_without_seeds_replace_and_a_first_entry_is_kept():
    last_value = {"mse": 1.0, "mae": 0.5, "budget": "no training"}
    assert merge_seeds({"mse": 2.0, "mae": 1.0, "budget": "no training"}, last_value) is last_value
    first = entry({"2": (0.3, 0.6)}, 50.0)
    assert merge_seeds(None, first) is first
