"""The time-series adapter on the bundled real data (ETT, Weather, ILI, M4 Hourly).

Synthetic data appear only as the deliberately broken files written to ``tmp_path``.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.utils.data import DataLoader

from titans_sci.data.registry import load_manifest
from titans_sci.data.timeseries import (
    Scaler,
    SplitBorders,
    TimeSeriesTable,
    WindowDataset,
    forward_fill,
    left_pad,
    load_dataset,
    load_m4,
    make_splits,
    read_m4,
    read_series,
    split_borders,
)

L = 96  # the standard LTSF lookback


@pytest.fixture(scope="module")
def etth1() -> TimeSeriesTable:
    return load_dataset("ett/ETTh1")


@pytest.fixture(scope="module")
def weather() -> TimeSeriesTable:
    return load_dataset("weather")


def _file(name: str) -> Path:
    return load_manifest(name).splits["data"].file


def _write(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _message(path: Path, *parts: str) -> str:
    """A regex that matches a message holding the file path and then every part, in order."""
    return re.escape(str(path)) + "".join(".*" + re.escape(p) for p in parts)


# ------------------------------------------------------------------------------- real data


def test_etth1_reads_as_expected(etth1):
    assert etth1.values.shape == (17420, 7)
    assert etth1.values.dtype == np.float32
    assert etth1.columns == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert etth1.freq == "h"
    assert etth1.timestamps[0] == pd.Timestamp("2016-07-01 00:00")
    assert etth1.timestamps[-1] == pd.Timestamp("2018-06-26 19:00")
    assert etth1.timestamps.is_unique and etth1.timestamps.is_monotonic_increasing
    assert etth1.values[0, -1] == pytest.approx(30.5310001373291)
    # freq=None infers it from the timestamps
    assert read_series(_file("ett/ETTh1")).freq == "h"


@pytest.mark.parametrize(
    ("horizon", "windows"),
    [(96, (8449, 2785, 2785)), (720, (7825, 2161, 2161))],
)
def test_etth1_standard_borders_and_window_counts(etth1, horizon, windows):
    splits = make_splits(etth1, "ett_hour", lookback=L, horizon=horizon)
    assert splits.borders == SplitBorders(train=(0, 8640), val=(8544, 11520), test=(11424, 14400))
    assert (len(splits.train), len(splits.val), len(splits.test)) == windows
    assert splits.columns == etth1.columns
    x, y = splits.test[0]
    assert x.shape == (L, 7) and y.shape == (horizon, 7)
    assert x.dtype == y.dtype == torch.float32


def test_ett_minute_borders_are_four_times_the_hourly_ones():
    table = load_dataset("ett/ETTm1")
    assert table.values.shape == (69680, 7) and table.freq == "15min"
    splits = make_splits(table, "ett_minute", lookback=L, horizon=96)
    assert splits.borders == SplitBorders(
        train=(0, 34560), val=(34560 - L, 46080), test=(46080 - L, 57600)
    )
    assert (len(splits.train), len(splits.val), len(splits.test)) == (34369, 11425, 11425)


def test_weather_ratio_split(weather):
    assert weather.values.shape == (52696, 21)
    assert weather.columns[0] == "p (mbar)" and weather.columns[-1] == "OT"
    assert "\ufffd" in weather.columns[16]  # the header's U+FFFD, read as UTF-8
    assert weather.freq == "10min"
    splits = make_splits(weather, "ratio_70_10_20", lookback=L, horizon=96)
    train_rows = splits.borders.train[1] - splits.borders.train[0]
    assert train_rows == 36887
    assert splits.borders == SplitBorders(
        train=(0, 36887), val=(36887 - L, 42157), test=(52696 - 10539 - L, 52696)
    )
    assert (len(splits.train), len(splits.val), len(splits.test)) == (36696, 5175, 10444)


def test_weather_irregularities_are_refused_unless_kept():
    """The real file repeats 2020-05-12 06:00 and skips 9 steps on 2020-05-29; its manifest
    keeps both, as the benchmark protocol does, but a plain read refuses them."""
    path = _file("weather")
    with pytest.raises(ValueError, match=_message(path, "data rows 19044 and 19045")):
        read_series(path)
    with pytest.raises(ValueError, match=_message(path, "9 step(s) missing", "data row 21515")):
        read_series(path, freq="10min", duplicates="keep")


def test_ili_short_lookback_and_horizon():
    table = load_dataset("illness")
    assert table.values.shape == (966, 7) and table.freq == "W-TUE"
    splits = make_splits(table, "ratio_70_10_20", lookback=36, horizon=24)
    assert splits.borders == SplitBorders(train=(0, 676), val=(640, 773), test=(737, 966))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (617, 74, 170)
    x, y = splits.val[len(splits.val) - 1]
    assert x.shape == (36, 7) and y.shape == (24, 7)


# ------------------------------------------------------------------------- scaler, borders


def test_scaler_sees_only_training_rows(etth1):
    splits = make_splits(etth1, "ett_hour", lookback=L, horizon=96)
    train = etth1.values[:8640].astype(np.float64)
    np.testing.assert_allclose(splits.scaler.mean, train.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(splits.scaler.scale, train.std(axis=0), rtol=1e-10)

    changed = etth1.values.copy()
    changed[12000] += 1000.0  # a test row
    changed[9000] -= 1000.0  # a val row
    moved = TimeSeriesTable(etth1.source, etth1.timestamps, changed, etth1.columns, etth1.freq)
    again = make_splits(moved, "ett_hour", lookback=L, horizon=96)
    np.testing.assert_array_equal(again.scaler.mean, splits.scaler.mean)
    np.testing.assert_array_equal(again.scaler.scale, splits.scaler.scale)

    changed[100] += 1000.0  # a training row does move it
    moved = TimeSeriesTable(etth1.source, etth1.timestamps, changed, etth1.columns, etth1.freq)
    assert not np.array_equal(make_splits(moved, "ett_hour", L, 96).scaler.mean, train.mean(0))


def test_windows_are_scaled_values_and_invert(etth1):
    splits = make_splits(etth1, "ett_hour", lookback=L, horizon=96)
    scaler = splits.scaler
    x, y = splits.test[5]
    raw_x = etth1.values[11424 + 5 : 11424 + 5 + L]
    np.testing.assert_allclose(x.numpy(), scaler.transform(raw_x), rtol=1e-6)
    np.testing.assert_allclose(scaler.inverse_transform(x.numpy()), raw_x, rtol=1e-5, atol=1e-4)
    back = scaler.inverse_transform(y.unsqueeze(0))  # torch [B, H, C]
    assert isinstance(back, torch.Tensor) and back.shape == (1, 96, 7)
    np.testing.assert_allclose(
        back[0].numpy(), etth1.values[11520 + 5 : 11520 + 5 + 96], rtol=1e-5, atol=1e-4
    )
    with pytest.raises(ValueError, match="fitted on 7 channels"):
        scaler.transform(np.zeros((3, 6)))
    with pytest.raises(RuntimeError, match="not fitted"):
        Scaler().transform(np.zeros((3, 7)))


def test_no_window_crosses_a_border(etth1):
    splits = make_splits(etth1, "ett_hour", lookback=L, horizon=96, scale=False)
    values = etth1.values

    last = len(splits.train) - 1
    x, y = splits.train[last]
    assert last + L + 96 == 8640  # the last train target ends at row 8640
    np.testing.assert_array_equal(y.numpy(), values[8640 - 96 : 8640])
    np.testing.assert_array_equal(x.numpy(), values[8640 - 96 - L : 8640 - 96])

    x, y = splits.val[0]  # the first val target starts at the train/val border
    np.testing.assert_array_equal(x.numpy(), values[8640 - L : 8640])
    np.testing.assert_array_equal(y.numpy(), values[8640 : 8640 + 96])

    x, y = splits.test[0]  # input from 11520 - 96, target from exactly 11520
    np.testing.assert_array_equal(x.numpy(), values[11520 - L : 11520])
    np.testing.assert_array_equal(y.numpy(), values[11520 : 11520 + 96])

    x, y = splits.test[-1]
    np.testing.assert_array_equal(y.numpy(), values[14400 - 96 : 14400])
    for split in (splits.train, splits.val, splits.test):
        with pytest.raises(IndexError):
            split[len(split)]


def test_channel_independent_windows(etth1):
    joint = make_splits(etth1, "ett_hour", lookback=L, horizon=96)
    single = make_splits(etth1, "ett_hour", lookback=L, horizon=96, channel_independent=True)
    for name, windows in (("train", 8449), ("val", 2785), ("test", 2785)):
        assert len(getattr(single, name)) == windows * 7
    for index in (0, 1, 6, 7, 7 * 100 + 3, len(single.test) - 1):
        window, channel = single.test.locate(index)
        assert (window, channel) == divmod(index, 7)
        x, y = single.test[index]
        assert x.shape == (L, 1) and y.shape == (96, 1)
        jx, jy = joint.test[window]
        torch.testing.assert_close(x, jx[:, channel : channel + 1])
        torch.testing.assert_close(y, jy[:, channel : channel + 1])
    assert single.test.locate(6)[1] == single.columns.index("OT")


def test_windows_batch_through_a_dataloader(etth1):
    splits = make_splits(etth1, "ett_hour", lookback=L, horizon=96)
    x, y = next(iter(DataLoader(splits.train, batch_size=32, shuffle=True)))
    assert x.shape == (32, L, 7) and y.shape == (32, 96, 7)


def test_split_rule_errors():
    with pytest.raises(ValueError, match="needs at least 14400 rows, got 14399"):
        split_borders(14399, "ett_hour", L)
    with pytest.raises(ValueError, match="needs at least 57600 rows"):
        split_borders(17420, "ett_minute", L)
    with pytest.raises(ValueError, match="use read_m4"):
        split_borders(1000, "m4", L)
    with pytest.raises(ValueError, match="lookback 800 is longer than the 700 training rows"):
        split_borders(1000, "ratio_70_10_20", 800)


def test_bundled_dna_and_m4_sets_are_refused_by_load_dataset():
    with pytest.raises(ValueError, match="kind 'dna'"):
        load_dataset("gue/prom/prom_core_tata")
    with pytest.raises(ValueError, match="use load_m4"):
        load_dataset("m4/hourly")
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("ett/ETTh9")


# ------------------------------------------------------------------------------- bad input

HEADER = "date,a,b\n"


def _rows(*rows: str) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


GOOD = [
    "2020-01-01 00:00:00,1.0,10.0",
    "2020-01-01 01:00:00,2.0,20.0",
    "2020-01-01 02:00:00,3.0,30.0",
    "2020-01-01 03:00:00,4.0,40.0",
    "2020-01-01 04:00:00,5.0,50.0",
]


def test_good_small_csv_and_gzip(tmp_path):
    plain = read_series(_write(tmp_path, _rows(*GOOD)), freq="h")
    gz = tmp_path / "good.csv.gz"
    gz.write_bytes(gzip.compress(_rows(*GOOD).encode()))
    zipped = read_series(gz)
    np.testing.assert_array_equal(plain.values, zipped.values)
    assert plain.values.shape == (5, 2) and zipped.freq == "h"
    only_b = read_series(gz, columns=["b"])
    assert only_b.columns == ["b"] and only_b.values[:, 0].tolist() == [10, 20, 30, 40, 50]


def test_non_numeric_value_names_file_column_row(tmp_path):
    rows = list(GOOD)
    rows[2] = "2020-01-01 02:00:00,3.0,oops"
    path = _write(tmp_path, _rows(*rows))
    with pytest.raises(ValueError, match=_message(path, "'b'", "data row 3", "'oops'")):
        read_series(path)


def test_duplicate_timestamps_name_both_rows(tmp_path):
    rows = list(GOOD)
    rows[2] = "2020-01-01 01:00:00,3.0,30.0"
    path = _write(tmp_path, _rows(*rows))
    with pytest.raises(
        ValueError, match=_message(path, "2020-01-01 01:00:00", "data rows 2 and 3")
    ):
        read_series(path)
    assert len(read_series(path, duplicates="keep")) == 5


def test_unsorted_timestamps_name_the_row(tmp_path):
    rows = list(GOOD)
    rows[2], rows[3] = rows[3], rows[2]
    path = _write(tmp_path, _rows(*rows))
    with pytest.raises(ValueError, match=_message(path, "not sorted", "data row 4")):
        read_series(path)


def test_missing_values_are_refused_then_filled_explicitly(tmp_path):
    rows = list(GOOD)
    rows[2] = "2020-01-01 02:00:00,,30.0"
    path = _write(tmp_path, _rows(*rows))
    with pytest.raises(ValueError, match=_message(path, "'a'", "data row 3", "missing value")):
        read_series(path)
    assert read_series(path, nan_policy="ffill").values[:, 0].tolist() == [1, 2, 2, 4, 5]
    assert read_series(path, nan_policy="interpolate").values[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert read_series(path, nan_policy="zero").values[:, 0].tolist() == [1, 2, 0, 4, 5]

    rows[0] = "2020-01-01 00:00:00,1.0,"  # nothing before it to carry forward
    path = _write(tmp_path, _rows(*rows), "leading.csv")
    with pytest.raises(ValueError, match=_message(path, "'b'", "data row 1", "ffill")):
        read_series(path, nan_policy="ffill")
    assert read_series(path, nan_policy="interpolate").values[0, 1] == 20.0


def test_missing_date_column(tmp_path):
    path = _write(tmp_path, "time,a\n2020-01-01,1.0\n")
    with pytest.raises(ValueError, match=_message(path, "no date column 'date'", "'time'")):
        read_series(path)
    assert read_series(path, date_column="time").values.tolist() == [[1.0]]


def test_bad_timestamp_names_the_row(tmp_path):
    rows = list(GOOD)
    rows[3] = "yesterday,4.0,40.0"
    path = _write(tmp_path, _rows(*rows))
    with pytest.raises(ValueError, match=_message(path, "'date'", "data row 4", "'yesterday'")):
        read_series(path)


def test_freq_must_match_the_timestamps(tmp_path):
    path = _write(tmp_path, _rows(*GOOD))
    with pytest.raises(ValueError, match=_message(path, "freq '30min'", "data row 2")):
        read_series(path, freq="30min")
    rows = GOOD[:2] + GOOD[3:]  # one missing hour
    path = _write(tmp_path, _rows(*rows), "gap.csv")
    with pytest.raises(ValueError, match=_message(path, "1 step(s) missing", "data row 3")):
        read_series(path, freq="h")
    assert len(read_series(path, freq="h", gaps="keep")) == 4
    # without a freq, uneven rows are refused (issue 36, item 9), kept as they are with
    # gaps="keep" (no freq), or filled in on the common step's grid with gaps="fill"
    with pytest.raises(ValueError, match=_message(path, "not evenly spaced", "data row 3")):
        read_series(path)
    assert read_series(path, gaps="keep").freq is None
    filled = read_series(path, gaps="fill", nan_policy="interpolate")
    assert (len(filled), filled.freq) == (5, "h")
    middle = (filled.values[1] + filled.values[3]) / 2
    np.testing.assert_allclose(filled.values[2], middle)


def test_empty_files(tmp_path):
    with pytest.raises(ValueError, match=_message(tmp_path / "empty.csv", "empty file")):
        read_series(_write(tmp_path, "", "empty.csv"))
    with pytest.raises(ValueError, match=_message(tmp_path / "header.csv", "no data rows")):
        read_series(_write(tmp_path, HEADER, "header.csv"))


def test_horizon_longer_than_a_slice_names_file_and_rows(tmp_path):
    start = pd.Timestamp("2020-01-01")
    rows = [f"{start + pd.Timedelta(hours=i)},{i},{2 * i}" for i in range(100)]
    path = _write(tmp_path, _rows(*rows), "short.csv")
    table = read_series(path)
    # 100 rows: train 70, val 10 (+ lookback 10 = 20 rows), test 20 (+ 10 = 30 rows)
    make_splits(table, "ratio_70_10_20", lookback=10, horizon=10)
    with pytest.raises(
        ValueError, match=r"short\.csv \[val\]: horizon 15 .* 20 rows, .*lookback 10"
    ):
        make_splits(table, "ratio_70_10_20", lookback=10, horizon=15)
    with pytest.raises(
        ValueError,
        match=r"ETTh1\.csv\.gz \[test\]: horizon 720 is longer than the slice allows: "
        r"it has 800 rows",
    ):
        WindowDataset(np.zeros((800, 7)), 96, 720, name="ETTh1.csv.gz [test]")


# -------------------------------------------------------------------------------- parquet


def test_parquet_round_trip(tmp_path, etth1):
    frame = pd.DataFrame(etth1.values, columns=etth1.columns)
    frame.insert(0, "date", etth1.timestamps)
    path = tmp_path / "etth1.parquet"
    frame.to_parquet(path)
    back = read_series(path)
    np.testing.assert_array_equal(back.values, etth1.values)
    assert back.columns == etth1.columns and back.freq == "h"
    assert back.timestamps.equals(etth1.timestamps)

    indexed = tmp_path / "indexed.parquet"
    frame.set_index("date").to_parquet(indexed)
    np.testing.assert_array_equal(read_series(indexed).values, etth1.values)


# ------------------------------------------------------------------------------------- M4


def test_m4_hourly():
    series = load_m4("m4/hourly")
    assert len(series) == 414
    assert [s["item_id"] for s in series[:3]] == ["H1", "H2", "H3"]
    lengths = [len(s["target"]) for s in series]
    assert min(lengths) >= 700 and max(lengths) <= 960
    assert min(lengths) == 700 and max(lengths) == 960
    assert all(len(s["test"]) == 48 for s in series)
    assert all(s["target"].dtype == np.float32 and np.isfinite(s["target"]).all() for s in series)
    first = series[0]
    assert first["start"] == pd.Period("1750-01-01 00:00", freq="h")
    assert first["target"][:3].tolist() == [605, 586, 586]
    assert first["test"][:3].tolist() == [619, 565, 532]


def test_m4_interior_gap_names_the_series(tmp_path):
    train = _write(tmp_path, '"V1","V2","V3","V4"\n"H1",1,2,\n"H2",1,,3\n', "train.csv")
    test = _write(tmp_path, '"V1","V2"\n"H1",5\n"H2",6\n', "test.csv")
    with pytest.raises(ValueError, match=_message(train, "'H2'", "data row 2", "'V3'")):
        read_m4(train, test)
    good = _write(tmp_path, '"V1","V2","V3","V4"\n"H1",1,2,\n"H2",1,2,3\n', "good.csv")
    series = read_m4(good, test)
    assert [s["target"].tolist() for s in series] == [[1, 2], [1, 2, 3]]
    assert [s["test"].tolist() for s in series] == [[5], [6]]
    other = _write(tmp_path, '"V1","V2"\n"H1",5\n"H3",6\n', "other.csv")
    with pytest.raises(ValueError, match=_message(other, "differ", "data row 2")):
        read_m4(good, other)


def test_duplicates_keep_still_infers_the_freq_of_a_regular_file(tmp_path):
    """``duplicates="keep"`` only allows repeated timestamps: a regular file read with it keeps
    its inferred frequency (the uneven-rows check applies to unique timestamps only)."""
    path = _write(tmp_path, _rows(*GOOD))
    assert read_series(path, duplicates="keep").freq == read_series(path).freq == "h"


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 3)),
                  elements=st.one_of(st.just(np.nan), st.floats(-9, 9))))  # fmt: skip
def test_forward_fill_is_pandas_ffill_then_bfill(values):
    """The one forward fill (the CSV reader's nan_policy='ffill' and the GluonTS entries):
    each gap takes the last value before it, a leading gap the first value after it."""
    observed = ~np.isnan(values)
    expected = pd.DataFrame(values).ffill().bfill().to_numpy()
    np.testing.assert_array_equal(forward_fill(values, observed), expected)
    np.testing.assert_array_equal(forward_fill(values[:, 0], observed[:, 0]), expected[:, 0])


def test_left_pad_repeats_the_first_row_or_the_fill():
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(left_pad(values, 3), [[1, 2], [1, 2], [3, 4]])
    np.testing.assert_array_equal(left_pad(values[:, 0] > 2, 4, fill=False), [0, 0, 0, 1])
    assert left_pad(values, 2) is values
