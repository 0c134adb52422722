"""The forecasting benchmark's M4 Hourly table: mean +- std over seeds, the median MASE where
it was measured, each model's worst series, and the models behind seasonal naive."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_forecasting import _m4_table  # noqa: E402


def m4_entry(seed: int, mase: float, wql: float, epochs: int = 100, **extra) -> dict:
    return {"mase": mase, "smape": 0.1, "mean_wql": wql, "epochs": epochs, "batches": 50,
            "seed": seed, "budget": "b", "seconds": 1.0, **extra}  # fmt: skip


def test_median_worst_series_and_the_seasonal_naive_check():
    worst = [["H1", 40.0], ["H2", 10.0], ["H3", 4.0]]
    store = {
        "m4/hourly|seasonal naive|0x0|seed1": m4_entry(
            1, 1.2, 0.05, epochs=0, mase_median=1.1, mase_worst=worst, series=100
        ),
        "m4/hourly|dlinear|100x50|seed2": m4_entry(
            2, 3.0, 0.05, mase_median=1.4, mase_worst=[["H9", 1.0]], series=100
        ),
        "m4/hourly|dlinear|100x50|seed1": m4_entry(
            1, 5.0, 0.06, mase_median=1.6, mase_worst=worst, series=100
        ),
        "m4/hourly|titans lmm|100x50|seed1": m4_entry(1, 0.9, 0.03),  # no median stored
    }
    text = "\n".join(_m4_table(store))
    assert "| seasonal naive | - | 1 | 1.200 | 1.100 | 0.100 | 0.050 |" in text
    assert "| dlinear | 100 x 50 | 2 | 4.000 +- 1.414 | 1.500 +- 0.141 |" in text
    assert "| titans lmm | 100 x 50 | 1 | 0.900 | - | 0.100 | 0.030 |" in text
    # seed 1's worst series and the mean MASE of the other 97: (5.0 * 100 - 54) / 97
    assert "- dlinear (100 x 50): H1 40.0, H2 10.0, H3 4.0; the other 97: 4.598" in text
    assert "- seasonal naive (-): H1 40.0, H2 10.0, H3 4.0; the other 97: 0.680" in text
    assert "Behind seasonal naive on MASE or mean wQL: dlinear (100 x 50: mase, mean_wql)." in text
