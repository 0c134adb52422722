"""The forecasting benchmark's EPF tables (issue 40): Titans reading the covariates each way
with mean +- std over seeds, the peers and TimeXer's published numbers beside them, and the
GluonTS-protocol table, read from a store that also holds other parts' keys."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_forecasting import _epf_gluonts_table, _epf_table  # noqa: E402


def _seeded(*mses: float) -> dict:
    seeds = {str(i + 1): {"mse": m, "mae": m / 2, "val_mse": m} for i, m in enumerate(mses)}
    return {"mse": sum(mses) / len(mses), "mae": sum(mses) / len(mses) / 2, "seeds": seeds}


STORE = {
    "epf/NP|titans none|24": _seeded(0.30, 0.32),
    "epf/NP|titans known|24": _seeded(0.20),
    "epf/NP|titans history|24": _seeded(0.22, 0.24),
    "epf/NP|titans window-past|24": _seeded(0.25),
    "epf/NP|dlinear|24": {"mse": 0.31, "mae": 0.33},
    "epf/NP-gluonts|titans lmm|seed1": {"MASE": 1.0, "mean_wQuantileLoss": 0.1, "sMAPE": 0.2},
    "epf/NP-gluonts|titans lmm|seed2": {"MASE": 2.0, "mean_wQuantileLoss": 0.2, "sMAPE": 0.2},
    "m4/hourly|deepar|10x50|seed1": {"mase": 1.0},
    "ett/ETTh1|titans lmm|96": {"mse": 0.4, "mae": 0.4},
}


def test_the_epf_table_shows_each_reading_and_the_published_numbers():
    text = "\n".join(_epf_table(STORE))
    row = next(line for line in text.splitlines() if line.startswith("| epf/NP |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "0.236 / 0.268"  # TimeXer, published
    assert cells[2] == "0.310 +- 0.014 / 0.155 +- 0.007 (2)"  # no covariates, two seeds
    assert cells[3] == "-" and cells[4] == "0.200 / 0.100"  # past not run; known, one seed
    assert cells[5] == "0.230 +- 0.014 / 0.115 +- 0.007 (2)"  # the whole-history forecaster
    assert cells[6] == "-"  # its window-only ablation, not run
    assert cells[7] == "-" and cells[8] == "0.250 / 0.125"  # the past-only pair: one run
    assert cells[9] == "0.310 / 0.330" and cells[-1] == "0.267 / 0.284 ; 0.309 / 0.321"
    assert "| epf/PJM | 0.093 / 0.192 | - |" in text


def test_the_gluonts_protocol_table_averages_seeds():
    text = "\n".join(_epf_gluonts_table(STORE))
    assert "| epf/NP | titans lmm | 1.500 +- 0.707 | 0.150 +- 0.071 | 0.200 +- 0.000 | 2 |" in text


def test_a_jobs_wall_time_is_not_stamped_on_the_last_value_it_yields():
    """The last-value baseline comes out of a Titans run and takes no time of its own: its
    budget line must not show that run's wall time as its own."""
    from bench_forecasting import _stamp

    entries = {"epf/PJM|titans known|24": {"mse": 0.1, "mae": 0.2},
               "epf/PJM|last value|24": {"mse": 0.3, "mae": 0.4}}  # fmt: skip
    _stamp(entries, {"machine": "m", "date": "d"}, 974.0)
    assert entries["epf/PJM|titans known|24"]["seconds"] == 974.0
    assert "seconds" not in entries["epf/PJM|last value|24"]
    assert all(e["machine"] == "m" and e["date"] == "d" for e in entries.values())
