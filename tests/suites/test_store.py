"""The benchmark result store: entries merge into one JSON file and its table, and a NaN or
infinity is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from titans_sci.suites.store import save


def render(store: dict[str, dict]) -> str:
    return "\n".join(f"{key}: {entry['mse']}" for key, entry in sorted(store.items()))


def test_entries_merge_into_the_store_and_its_table(tmp_path: Path):
    store, table = tmp_path / "r.json", tmp_path / "r.md"
    save({"a": {"mse": 0.5}}, store, table, render)
    save({"b": {"mse": 0.25}}, store, table, render)
    assert json.loads(store.read_text()) == {"a": {"mse": 0.5}, "b": {"mse": 0.25}}
    assert table.read_text() == "a: 0.5\nb: 0.25"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_is_refused_naming_key_and_field(tmp_path: Path, bad: float):
    store, table = tmp_path / "r.json", tmp_path / "r.md"
    save({"a": {"mse": 0.5}}, store, table, render)
    before = store.read_text(), table.read_text()
    entry = {"mse": 0.1, "seeds": {"2": {"val_mse": 0.2, "worst": [["H1", bad]]}}}
    with pytest.raises(ValueError, match=r"entry 'b', field seeds\.2\.worst\[0\]\[1\] holds"):
        save({"b": entry}, store, table, render)
    assert (store.read_text(), table.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.lock", "r.md"]
