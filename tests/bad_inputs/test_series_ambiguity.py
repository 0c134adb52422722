"""Issue 36, items 7-9 and 16-17: a series file that cannot be read one way only is refused
with a fix the user can apply from the task file and the command line; a saved forecaster
refuses a series of another frequency; flags that would be ignored are refused."""

from __future__ import annotations

import pandas as pd
import pytest

from refusal import refused
from tiny_tasks import etth1_csv, forecast_task, write
from titans_sci.cli import main
from titans_sci.data.timeseries import ReadOptions, read_series
from titans_sci.tasks import load_task


@pytest.fixture
def etth1(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / etth1_csv(tmp_path, 300))


def test_a_repeated_column_name_is_refused_not_renamed(tmp_path, etth1):
    """Item 7: ``date,OT,OT`` would be read with one column renamed ``OT.1``."""
    path = tmp_path / "twice.csv"
    frame = etth1[["date", "OT", "HUFL"]].rename(columns={"HUFL": "OT"})
    frame.to_csv(path, index=False)
    for columns in (None, ["OT"]):
        with pytest.raises(ValueError, match=r"twice\.csv: column 'OT' appears 2 times .*2, 3"):
            read_series(path, columns=columns)
    (tmp_path / "other.csv").write_text(path.read_text().replace("OT,OT", "OT,HUFL", 1))
    assert read_series(tmp_path / "other.csv").columns == ["OT", "HUFL"]


def test_an_unnamed_index_column_is_refused_unless_the_channels_are_named(tmp_path, etth1):
    """Item 8: a file written by ``DataFrame.to_csv`` with its index: ``Unnamed: 0`` would be a
    channel, its row numbers forecast and averaged into the reported MSE."""
    path = tmp_path / "indexed.csv"
    etth1[["date", "OT"]].to_csv(path)  # with the index
    with pytest.raises(ValueError, match=r"indexed\.csv: column 1 has no name .*index=False"):
        read_series(path)
    assert read_series(path, columns=["OT"]).columns == ["OT"]  # the fix the message gives


def test_dates_read_either_way_are_refused_and_date_format_says_which(tmp_path, etth1):
    """Item 9: ``01/07/2016``-style dates whose days are all <= 12 were read month-first."""
    days = pd.date_range("2016-07-01", periods=12, freq="D")
    frame = pd.DataFrame({"date": days.strftime("%d/%m/%Y"), "OT": range(12)})
    path = tmp_path / "dayfirst.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"dayfirst\.csv: column 'date': .*day/month or as "
                                         r"month/day .*date_format"):  # fmt: skip
        read_series(path)
    table = read_series(path, date_format="%d/%m/%Y")
    assert list(table.timestamps) == list(days) and table.freq == "D"
    longer = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=40, freq="D")
                           .strftime("%d/%m/%Y"), "OT": range(40)})  # fmt: skip
    longer.to_csv(path, index=False)  # a day over 12 says which comes first
    assert read_series(path).timestamps[12] == pd.Timestamp("2016-07-13")


def test_rows_missing_inside_the_series_are_refused_unless_filled(tmp_path, etth1):
    """Item 9: rows missing inside the lookback were read as consecutive steps."""
    path = tmp_path / "holes.csv"
    etth1.drop(index=[100, 101, 102]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"holes\.csv: rows are not evenly spaced: data row "
                                         r"101 .* 04:00:00 .*gaps = 'fill'"):  # fmt: skip
        read_series(path)
    filled = read_series(path, **ReadOptions(nan_policy="ffill", gaps="fill").kwargs())
    assert len(filled) == len(etth1) and filled.freq == "h"
    data = 'file = "holes.csv"\nsplit_rule = "ratio_70_10_20"\ncolumns = ["OT"]\n'
    task = write(tmp_path / "t.toml", forecast_task("t", data + '[data.read]\ngaps = "fill"\n'
                                                    'nan_policy = "ffill"\n'))  # fmt: skip
    assert load_task(task).data.read == ReadOptions(nan_policy="ffill", gaps="fill")
    with pytest.raises(ValueError, match="gaps = 'fill' inserts missing rows: choose a nan_po"):
        ReadOptions(gaps="fill")


def test_a_forecaster_refuses_a_series_of_another_frequency(workspace, tmp_path, capsys):
    """Item 9: an hourly model forecast a daily file and labelled the output daily."""
    root, _, forecaster = workspace
    frame = pd.read_csv(root / "series.csv")
    frame["date"] = pd.date_range("2016-07-01", periods=len(frame), freq="D").astype(str)
    frame.to_csv(tmp_path / "daily.csv", index=False)
    refused(capsys, ["predict", str(forecaster), str(tmp_path / "daily.csv")], "daily.csv",
            "steps of 'D'", "trained on steps of 'h'", debug=False)  # fmt: skip


def test_the_nan_hint_names_flags_that_exist(workspace, tmp_path, capsys):
    """Item 16: the hint named ``nan_policy='ffill'``, which no option accepted; and predict
    refused a NaN far before the rows it reads."""
    root, _, forecaster = workspace
    frame = pd.read_csv(root / "series.csv")
    frame.loc[10, "OT"] = None  # far before the last lookback rows: predict does not read it
    frame.to_csv(tmp_path / "early.csv", index=False)
    assert main(["predict", str(forecaster), str(tmp_path / "early.csv")]) == 0
    line = refused(
        capsys,
        ["evaluate", str(forecaster), str(tmp_path / "early.csv")],
        "missing value",
        "--nan-policy",
        debug=False,
    )  # evaluate reads every row
    assert "[data.read]" in line
    frame.loc[len(frame) - 3, "OT"] = None  # inside the window predict reads
    frame.to_csv(tmp_path / "late.csv", index=False)
    refused(capsys, ["predict", str(forecaster), str(tmp_path / "late.csv")], "'OT'",
            f"data row {len(frame) - 2}", "--nan-policy", debug=False)  # fmt: skip
    argv = ["predict", str(forecaster), str(tmp_path / "late.csv"), "--nan-policy", "ffill"]
    assert main(argv) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stride", "10"], "--stride is the step between --window windows"),
        (["--window", "20", "--surprise", "-o", "x.csv"], "choose one"),
        (["--nan-policy", "ffill"], "--nan-policy: for a forecaster's series"),
    ],
)
def test_flags_that_would_be_ignored_are_refused(workspace, tmp_path, capsys, extra, message):
    """Item 17: ``--stride`` without ``--window`` and ``--window`` with ``--surprise`` were
    ignored silently."""
    _, classifier, _ = workspace
    (tmp_path / "in.fa").write_text(">r1\n" + "ACGT" * 20 + "\n")
    refused(capsys, ["predict", str(classifier), str(tmp_path / "in.fa"), *extra], message,
            watch=[tmp_path], debug=False)  # fmt: skip
