"""The whole-history benchmark's table: each row's setting chosen on mean validation MSE over
seeds (never on test), and the never-writes ablation placed at the memory model's choice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_history import (  # noqa: E402
    Setting,
    _chosen_memory_setting,
    grid,
    render,
    windows_for,
)


def entry(val: float, test: float, frozen: float | None = None) -> dict:
    return {"val_mse": val, "test_mse": test, "test_mae": test / 2, "frozen_mse": frozen,
            "frozen_mae": None if frozen is None else frozen / 2, "origins": 10, "epochs": 3,
            "best_epoch": 1, "seconds": 1.0, "budget": "b", "machine": "m", "date": "d",
            "code": {}}  # fmt: skip


def test_the_choice_is_on_mean_validation_and_never_writes_sits_at_it(tmp_path: Path):
    store = {
        # L96 has the lowest test MSE but the higher mean validation MSE: L336 is chosen.
        "ett/ETTh2|96|memory|L96|d0.1|1": entry(0.30, 0.10, 0.11),
        "ett/ETTh2|96|memory|L96|d0.1|2": entry(0.20, 0.10, 0.11),
        "ett/ETTh2|96|memory|L336|d0.3|1": entry(0.24, 0.40, 0.41),
        "ett/ETTh2|96|memory|L336|d0.3|2": entry(0.24, 0.20, 0.21),
        "ett/ETTh1|96|memory|L96|d0.1|1": entry(0.10, 0.90, 0.90),
    }
    path = tmp_path / "store.json"
    path.write_text(json.dumps(store))
    assert _chosen_memory_setting(path, "ett/ETTh2|96|") == Setting(True, 336, 0.3)
    assert _chosen_memory_setting(path, "ett/ETTh1|192|") is None
    store["ett/ETTh2|96|never writes|L336|d0.3|1"] = entry(0.5, 0.6)
    assert Setting(True, 336, 0.3, writes=False).key == "never writes|L336|d0.3"
    (row,) = [line for line in render(store).splitlines() if line.startswith("| ett/ETTh2")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:4] == ["L336 d0.3", "2"]
    assert cells[5] == "0.300 +- 0.141 / 0.150 +- 0.071"  # writes: the chosen setting's seeds
    assert cells[6] == "0.310 +- 0.141 / 0.155 +- 0.071"  # frozen
    assert cells[7] == "0.600 +- 0.000 / 0.300 +- 0.000"  # never writes
    assert cells[8:] == ["-"] * 4  # no window-only, lookback-96 or peer cells yet


def test_never_writes_at_another_setting_is_not_shown():
    """After the memory model's choice moves (a wider window grid), the never-writes cells at
    the old choice are not its ablation: the row shows none, though their validation is lower."""
    store = {
        "illness|24|memory|L36|d0.1|1": entry(0.30, 2.5, 2.4),
        "illness|24|memory|L104|d0.3|1": entry(0.25, 2.2, 2.3),
        "illness|24|never writes|L36|d0.1|1": entry(0.10, 3.0),
    }
    (row,) = [line for line in render(store).splitlines() if line.startswith("| illness")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "L104 d0.3"
    assert cells[7] == "-"
    store["illness|24|never writes|L104|d0.3|1"] = entry(0.40, 2.6)
    (row,) = [line for line in render(store).splitlines() if line.startswith("| illness")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[7] == "2.600 +- 0.000 / 1.300 +- 0.000"


def test_short_lookbacks_choose_among_a_year_and_two():
    assert windows_for(96) == [96, 336, 720]
    assert windows_for(36) == [36, 52, 104]


def test_longer_horizons_train_the_first_horizons_choice_alone(tmp_path: Path):
    """Past the first horizon only the setting chosen there on validation is trained (per
    entrant); the full grid where the first horizon has no cells of that entrant."""
    store = {
        "ett/ETTh1|96|memory|L96|d0.1|1": entry(0.30, 0.1),
        "ett/ETTh1|96|memory|L336|d0.3|1": entry(0.20, 0.9),
        "ett/ETTh1|96|dlinear|L720|d0|1": entry(0.50, 0.9),
        "ett/ETTh1|96|dlinear|L96|d0|1": entry(0.60, 0.1),
    }
    path = tmp_path / "store.json"
    path.write_text(json.dumps(store))
    full = [(96, 0.1), (96, 0.3), (336, 0.1), (336, 0.3)]
    assert grid(path, "ett/ETTh1", 96, 96, "memory", full) == full
    assert grid(path, "ett/ETTh1", 192, 96, "memory", full) == [(336, 0.3)]
    assert grid(path, "ett/ETTh1", 720, 96, "dlinear", [(96, 0.0), (720, 0.0)]) == [(720, 0.0)]
    assert grid(path, "ett/ETTh1", 192, 96, "window only", full) == full
    assert grid(path, "ett/ETTh2", 192, 96, "memory", full) == full


def test_a_peer_chosen_before_all_its_windows_ran_says_so():
    """A peer's window is chosen on validation from three lengths; until all three have run,
    its cell names those it was chosen from."""
    store = {
        "ett/ETTh1|96|memory|L336|d0.3|1": entry(0.20, 0.4),
        "ett/ETTh1|96|patchtst|L96|d0|1": entry(0.60, 0.39),
        "ett/ETTh1|96|patchtst|L336|d0|1": entry(0.70, 0.30),
        "ett/ETTh1|96|dlinear|L96|d0|1": entry(0.60, 0.40),
        "ett/ETTh1|96|dlinear|L336|d0|1": entry(0.50, 0.37),
        "ett/ETTh1|96|dlinear|L720|d0|1": entry(0.55, 0.30),
    }
    (row,) = [line for line in render(store).splitlines() if line.startswith("| ett/ETTh1")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[-2] == "0.370 +- 0.000 / 0.185 +- 0.000 (L336)"
    assert cells[-1] == "0.390 +- 0.000 / 0.195 +- 0.000 (L96, of L96/L336 so far)"
