"""Time-series adapter: read, validate, split, scale and window forecasting data.

The pipeline follows the standard long-horizon forecasting protocol (Time-Series-Library's
``data_loader.py``, as used by Informer, Autoformer, PatchTST and their successors):

1. :func:`read_series` reads a CSV (plain or ``.gz``) or Parquet file into a
   :class:`TimeSeriesTable` (timestamps ``[N]``, values ``[N, C]``), refusing anything it would
   otherwise have to guess about: a missing date column, non-numeric values, repeated or unsorted
   timestamps, missing values (unless a fill is asked for), steps that do not follow ``freq``.
   Every error is a ``ValueError`` naming the file, the column and the row. Rows are numbered as
   *data rows*, from 1 for the first row after the header.
2. :func:`split_borders` gives the chronological train/val/test row ranges of a split rule; the
   val and test ranges start ``lookback`` rows before their border so that their first window's
   input is the history just before it.
3. :class:`Scaler` standardises every channel with the mean and std of the *training rows only*.
4. :class:`WindowDataset` serves stride-1 (input ``[L, C]``, target ``[H, C]``) windows of one
   split, or with ``channel_independent=True`` univariate windows (``[L, 1]``, ``[H, 1]``) of
   every channel.

:func:`make_splits` does 2 to 4 in one call, :func:`load_dataset` reads a bundled data set by its
registry name (see :mod:`titans_sci.data.registry`), and :func:`read_m4` / :func:`load_m4` read
the M4 competition's wide train/test files.

Example::

    table = load_dataset("ett/ETTh1")                     # 17420 rows x 7 channels
    splits = make_splits(table, "ett_hour", lookback=96, horizon=96)
    x, y = splits.train[0]                                # [96, 7], [96, 7]
    len(splits.train), len(splits.val), len(splits.test)  # 8449, 2785, 2785
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import pandas as pd
import torch
from pandas.tseries.frequencies import to_offset
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.utils.data import Dataset

from titans_sci.config import Config
from titans_sci.data.covariates import CovariateColumns, calendar_features, split_table
from titans_sci.data.registry import DatasetManifest, load_manifest
from titans_sci.data.textfile import check_file, header_line, read_csv

__all__ = [
    "DUPLICATE_POLICIES",
    "GAP_POLICIES",
    "M4_START",
    "NAN_POLICIES",
    "ReadOptions",
    "ScaledColumns",
    "SPLIT_RULES",
    "ForecastSplits",
    "Scaler",
    "SplitBorders",
    "TimeSeriesTable",
    "WindowDataset",
    "forward_fill",
    "left_pad",
    "load_dataset",
    "load_m4",
    "make_splits",
    "scaled_columns",
    "read_m4",
    "read_series",
    "split_borders",
]

#: How a user may fill a series' missing values (:class:`ReadOptions`, ``--nan-policy``).
NanPolicy = Literal["error", "ffill", "interpolate", "zero"]
#: What a series' missing steps become (:class:`ReadOptions`, ``--gaps``).
GapPolicy = Literal["error", "keep", "fill"]
#: ``nan_policy`` values of :func:`read_series` (``"keep"``: for a caller that checks the rows
#: it reads itself).
NAN_POLICIES: tuple[str, ...] = (*get_args(NanPolicy), "keep")
#: ``duplicates`` values of :func:`read_series`.
DUPLICATE_POLICIES = ("error", "keep")
#: ``gaps`` values of :func:`read_series`.
GAP_POLICIES: tuple[str, ...] = get_args(GapPolicy)
#: Rules of :func:`split_borders` (the registry's ``"m4"`` rule is :func:`read_m4`'s files).
SPLIT_RULES = ("ett_hour", "ett_minute", "ratio_70_10_20")
#: The start date that :func:`read_m4` gives every series (M4 files have no timestamps).
M4_START = "1750-01-01 00:00"

_ETT_HOURS = (12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24)  # train / val / test rows, hourly
_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ----------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ReadOptions(Config):
    """How to read a series file where the file alone does not say (the task file's
    ``[data.read]``, ``titans-sci predict``'s ``--date-format``, ``--nan-policy`` and
    ``--gaps``; a saved forecaster keeps the options it was trained with).

    ``date_format``: the dates' ``strftime`` format (``"%d/%m/%Y %H:%M"``); ``None`` infers
    it, and refuses dates whose day and month could be read either way. ``nan_policy``: see
    :func:`read_series`. ``gaps``: ``"error"`` refuses rows that are not evenly spaced,
    ``"keep"`` reads them as consecutive steps anyway, ``"fill"`` inserts each missing step as
    a row of missing values for ``nan_policy`` to fill."""

    date_format: str | None = None
    nan_policy: NanPolicy = "error"
    gaps: GapPolicy = "error"

    def __post_init__(self) -> None:
        if self.gaps == "fill" and self.nan_policy == "error":
            raise ValueError("gaps = 'fill' inserts missing rows: choose a nan_policy to fill them")

    def kwargs(self) -> dict[str, Any]:
        """These options as :func:`read_series`' keyword arguments."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class TimeSeriesTable:
    """A validated multivariate series read from one file.

    Attributes:
        source: the file it was read from (for error messages).
        timestamps: ``[N]`` sorted timestamps, unique unless read with ``duplicates="keep"``.
        values: ``[N, C]`` float32, finite (missing values were refused or explicitly filled,
            unless read with ``nan_policy="keep"``).
        columns: the ``C`` channel names, in the order of ``values``' columns.
        freq: pandas offset alias (``"h"``, ``"15min"``, ``"W-TUE"``), given or inferred;
            ``None`` if the timestamps are irregular and none was given.
    """

    source: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray
    columns: list[str]
    freq: str | None

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(f"{self.source}: values must be [N, C], got {self.values.shape}")
        if len(self.timestamps) != self.values.shape[0]:
            raise ValueError(
                f"{self.source}: {len(self.timestamps)} timestamps for "
                f"{self.values.shape[0]} rows of values"
            )
        if len(self.columns) != self.values.shape[1]:
            raise ValueError(
                f"{self.source}: {len(self.columns)} column names for "
                f"{self.values.shape[1]} channels"
            )

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> np.ndarray:
        """The ``[N]`` values of channel ``name``."""
        if name not in self.columns:
            raise ValueError(f"{self.source}: no column {name!r}; columns are {self.columns}")
        return self.values[:, self.columns.index(name)]


def read_series(
    path: str | Path,
    date_column: str = "date",
    columns: list[str] | None = None,
    freq: str | None = None,
    nan_policy: str = "error",
    *,
    duplicates: str = "error",
    gaps: str = "error",
    date_format: str | None = None,
) -> TimeSeriesTable:
    """Read and validate one long-format series file (a date column and one column per channel).

    Args:
        path: a CSV (``.csv``, ``.csv.gz``, any ``.gz``, read as UTF-8; a leading byte-order
            mark is dropped) or Parquet (``.parquet``, ``.pq``) file. A Parquet file may hold the
            dates as its index named ``date_column``.
        date_column: the column holding the timestamps.
        columns: the channels to keep, in this order; ``None``: every column but the date.
        freq: the expected pandas offset alias; every step must then be exactly one ``freq``
            (or a whole number of them with ``gaps="keep"``). ``None``: inferred with
            ``pd.infer_freq`` (``None`` if the steps are irregular).
        nan_policy: what to do with missing values: ``"error"`` (default) refuses them;
            ``"ffill"`` carries the last value forward (a column that *starts* with missing
            values is refused); ``"interpolate"`` interpolates linearly over the row number and
            holds the first/last valid value at the ends; ``"zero"`` puts 0; ``"keep"`` leaves
            them NaN, for a caller that checks the rows it uses itself. No row is dropped.
        duplicates: ``"error"`` (default) refuses repeated timestamps; ``"keep"`` keeps each
            row as it is (the LTSF weather file repeats one timestamp; its benchmark protocol
            counts both rows).
        gaps: ``"error"`` (default) refuses missing steps: with ``freq`` given, a step that
            is a whole multiple of it; without, rows not evenly spaced (read as consecutive
            steps they would put a window's past in the wrong place). ``"keep"`` accepts them
            (the rows stay consecutive); ``"fill"`` inserts every missing step as a row of
            missing values, which ``nan_policy`` then fills.
        date_format: the dates' ``strftime`` format; ``None`` infers it, and refuses
            ``01/02/2016``-style dates whose day and month could be swapped in every row.

    Returns:
        The table: timestamps ``[N]``, values ``[N, C]`` float32.

    Raises:
        ValueError: one line naming the file, column and data row (or timestamp, or file line)
            of the first problem: a missing file or a directory, a truncated or corrupt gzip
            file, a file that is not UTF-8 text, a CSV row with extra fields, timestamps with
            mixed UTC offsets (a daylight-saving switch), a value outside float32's range, and
            every check above.
    """
    _check_choice("nan_policy", nan_policy, NAN_POLICIES)
    _check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
    _check_choice("gaps", gaps, GAP_POLICIES)
    path = Path(path)
    source = str(path)
    frame = _read_frame(path)
    if isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == date_column:
        frame = frame.reset_index()  # Parquet written with the dates as index
    if date_column not in frame.columns:
        raise ValueError(
            f"{source}: no date column {date_column!r}; the columns are {list(frame.columns)}"
        )
    _check_header(path, date_column, columns)
    timestamps = _parse_dates(frame[date_column], source, date_column, date_format)
    names = _select_columns(frame, date_column, columns, source)
    values = np.stack([_numeric(frame[c], source, c, timestamps) for c in names], axis=1)
    _check_order(timestamps, source, date_column, duplicates)
    if freq is not None:
        freq = _check_freq(timestamps, freq, source, gaps)
    elif duplicates == "keep":
        freq = _infer_freq(timestamps)  # repeated rows kept: no evenness to check
    else:
        freq = _regular_step(timestamps, source, gaps)
        if gaps == "fill" and freq is not None:  # the common step's grid, checked as a given one
            freq = _check_freq(timestamps, freq, source, gaps)
    if gaps == "fill" and freq is not None:
        timestamps, values = _insert_missing_steps(timestamps, values, freq)
    values = fill_missing(values, names, timestamps, source, nan_policy)
    return TimeSeriesTable(
        source=source,
        timestamps=pd.DatetimeIndex(timestamps, name=date_column),
        values=np.ascontiguousarray(values, dtype=np.float32),
        columns=names,
        freq=freq,
    )


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {list(choices)}, got {value!r}")


def _row(i: int, timestamps: pd.DatetimeIndex | None = None) -> str:
    """``"data row 5 (2016-07-01 04:00:00)"`` for the 0-based row ``i``."""
    when = f" ({timestamps[i]})" if timestamps is not None else ""
    return f"data row {i + 1}{when}"


def _read_frame(path: Path) -> pd.DataFrame:
    """The file as a DataFrame, by suffix; a missing file, a directory, an unreadable, truncated
    or non-text file, a row with extra fields, an empty file or one without data rows is refused
    (one ValueError naming the file)."""
    suffixes = [s.lower() for s in path.suffixes]
    check_file(path)
    if suffixes and suffixes[-1] in _PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            detail = " ".join(str(exc).split())
            raise ValueError(f"{path}: cannot read it as Parquet: {detail}") from exc
    elif suffixes and (suffixes[-1] == ".gz" or suffixes[-1] in _CSV_SUFFIXES):
        sep = "\t" if ".tsv" in suffixes else ","
        frame = read_csv(path, sep, compressed=suffixes[-1] == ".gz")
    else:
        raise ValueError(
            f"{path}: unknown file type {''.join(suffixes)!r}; expected .csv, .csv.gz, "
            f".tsv or .parquet"
        )
    if frame.empty:
        raise ValueError(f"{path}: no data rows (columns {list(frame.columns)})")
    # "date, load,OT": the spaces after the commas are not part of the names
    return frame.rename(columns=lambda name: name.strip() if isinstance(name, str) else name)


def _check_header(path: Path, date_column: str, columns: list[str] | None) -> None:
    """Refuse a CSV header that cannot be read one way only: a column name given twice (pandas
    would rename one ``OT.1``) or a column without a name (a row number written by
    ``DataFrame.to_csv`` with its index), where the date or a channel would be taken from it."""
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes or suffixes[-1] in _PARQUET_SUFFIXES:
        return
    line = header_line(path, compressed=suffixes[-1] == ".gz")
    header = next(csv.reader([line], delimiter="\t" if ".tsv" in suffixes else ","), [])
    header = [name.strip() for name in header]
    wanted = set(columns) | {date_column} if columns else None
    for i, name in enumerate(header):
        if name == "" and wanted is None:
            raise ValueError(
                f"{path}: column {i + 1} has no name (a row number written by "
                "DataFrame.to_csv with its index?); write the file with index=False, or name "
                "the channels with columns = [...] under [data] (predict reads the model's)"
            )
        if header.count(name) > 1 and (wanted is None or name in wanted):
            where = [j + 1 for j, other in enumerate(header) if other == name]
            raise ValueError(
                f"{path}: column {name!r} appears {len(where)} times in the header (columns "
                f"{', '.join(map(str, where))}); rename all but one"
            )


_DAY_OR_MONTH = re.compile(r"^\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{2,4})(?!\d)")


def _day_first(raw: pd.Series, source: str, column: str) -> bool | None:
    """For ``dd/mm/yyyy`` or ``mm/dd/yyyy`` dates: whether the day comes first (``None`` for
    other formats); refused where every row reads both ways."""
    if raw.dtype.kind in "iufM" or not len(raw):
        return None
    parts = raw.astype("string").str.extract(_DAY_OR_MONTH)
    if parts[0].isna().any():
        return None
    first, second = parts[0].astype(int), parts[2].astype(int)
    if first.max() > 12 >= second.max():
        return True
    if second.max() > 12 >= first.max():
        return False
    if first.max() <= 12 and second.max() <= 12:
        raise ValueError(
            f"{source}: column {column!r}: dates such as {raw.iloc[0]!r} read as day/month or "
            "as month/day in every row; say which with date_format (e.g. '%d/%m/%Y %H:%M' "
            "under [data.read] in a task file, --date-format for predict and evaluate)"
        )
    return None  # both over 12 somewhere: not a date pair, let the parser name the row


def _parse_dates(
    raw: pd.Series, source: str, column: str, date_format: str | None = None
) -> pd.DatetimeIndex:
    """``raw`` as timestamps; the first value that does not parse is named.

    Numbers are read as text (``20200101`` is 2020-01-01), never as nanoseconds since 1970.
    Timestamps with a UTC offset must all have the same one (mixed offsets are refused: they are
    usually local time across a daylight-saving switch).
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.to_datetime(raw)
    else:
        if pd.api.types.is_numeric_dtype(raw.dtype):
            raw = raw.astype("string")
        options: dict[str, Any] = {"format": date_format} if date_format else {}
        if not date_format:
            options["dayfirst"] = bool(_day_first(raw, source, column))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
                warnings.simplefilter("ignore", FutureWarning)  # "mixed time zones"
                parsed = pd.to_datetime(raw, errors="coerce", **options)
        except (ValueError, TypeError, OverflowError) as exc:  # pandas 3: mixed time zones
            raise _mixed_offsets(raw, source, column) or ValueError(
                f"{source}: column {column!r}: cannot read the timestamps: "
                f"{' '.join(str(exc).split())}"
            ) from exc
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype) and parsed.dtype.kind != "M":
            # pandas 2 gives objects for timestamps with mixed UTC offsets
            raise _mixed_offsets(raw, source, column) or ValueError(
                f"{source}: column {column!r}: cannot read the timestamps (mixed kinds of "
                f"values); give them all in one format"
            )
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        if _parses_alone(raw.iloc[i]):  # one with a UTC offset among ones without, or so
            mixed = _mixed_offsets(raw, source, column)
            if mixed is not None:
                raise mixed
        raise ValueError(
            f"{source}: column {column!r}, {_row(i)}: not a timestamp: {raw.iloc[i]!r} "
            f"({bad.size} such rows)"
        )
    return pd.DatetimeIndex(parsed)


def _parses_alone(value: Any) -> bool:
    """Whether ``value`` is a timestamp on its own (``pd.Timestamp`` reads it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.Timestamp(value) is not pd.NaT
    except (ValueError, TypeError, OverflowError):
        return False


def _mixed_offsets(raw: pd.Series, source: str, column: str) -> ValueError | None:
    """The error for timestamps whose UTC offsets differ (or that mix timestamps with and
    without an offset), naming the first two rows that differ; ``None`` if they do not."""
    first: tuple[int, str] | None = None
    for i, text in enumerate(raw):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stamp = pd.Timestamp(text)
        except (ValueError, TypeError, OverflowError):
            continue
        if stamp is pd.NaT:
            continue
        zone = "no UTC offset" if stamp.tzinfo is None else str(stamp.tzinfo)
        if first is None:
            first = (i, zone)
        elif zone != first[1]:
            return ValueError(
                f"{source}: column {column!r}: timestamps with mixed UTC offsets ({first[1]} at "
                f"{_row(first[0])}, {zone} at {_row(i)}; a daylight-saving switch?); give them "
                f"in UTC (or all with the same offset)"
            )
    return None


def _select_columns(
    frame: pd.DataFrame, date_column: str, columns: list[str] | None, source: str
) -> list[str]:
    available = [str(c) for c in frame.columns if c != date_column]
    if columns is None:
        if not available:
            raise ValueError(f"{source}: no value columns besides {date_column!r}")
        return available
    names = list(columns)
    missing = [c for c in names if c not in available]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; the value columns are {available}")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ValueError(f"{source}: column(s) {repeated} asked for more than once")
    if not names:
        raise ValueError(f"{source}: columns=[] selects no channel")
    return names


def _numeric(
    raw: pd.Series, source: str, column: str, timestamps: pd.DatetimeIndex | None
) -> np.ndarray:
    """``raw`` as float64 ``[N]``; a value that is neither a number nor empty is named."""
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        coerced = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero((coerced.isna() & raw.notna()).to_numpy())
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{source}: column {column!r}, {_row(i, timestamps)}: non-numeric value "
                f"{raw.iloc[i]!r} ({bad.size} such rows)"
            )
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        i = int(infinite[0])
        raise ValueError(
            f"{source}: column {column!r}, {_row(i, timestamps)}: infinite value {values[i]}"
        )
    with np.errstate(invalid="ignore"):
        huge = np.flatnonzero(np.abs(values) > _FLOAT32_MAX)
    if huge.size:
        i = int(huge[0])
        raise ValueError(
            f"{source}: column {column!r}, {_row(i, timestamps)}: {values[i]:g} is outside "
            f"float32's range (magnitude at most {_FLOAT32_MAX:.4g}; {huge.size} such rows); "
            f"rescale the column (e.g. change its units)"
        )
    return values


def _check_order(timestamps: pd.DatetimeIndex, source: str, column: str, duplicates: str) -> None:
    """Timestamps must increase (or stay equal, with ``duplicates="keep"``)."""
    steps = np.diff(timestamps.asi8)
    backwards = np.flatnonzero(steps < 0)
    if backwards.size:
        i = int(backwards[0])
        raise ValueError(
            f"{source}: column {column!r}: timestamps are not sorted: "
            f"{_row(i + 1, timestamps)} comes after {_row(i, timestamps)}; sort the rows by time"
        )
    repeated = np.flatnonzero(steps == 0)
    if repeated.size and duplicates == "error":
        i = int(repeated[0])
        raise ValueError(
            f"{source}: column {column!r}: duplicate timestamp {timestamps[i]}: data rows "
            f"{i + 1} and {i + 2} ({repeated.size} repeated timestamps in all; local time across "
            f"a daylight-saving switch? give them in UTC; duplicates='keep' keeps them)"
        )


def _regular_step(timestamps: pd.DatetimeIndex, source: str, gaps: str) -> str | None:
    """The frequency of timestamps given without one: ``pd.infer_freq``'s, else (rows not
    evenly spaced) refused with ``gaps="error"``; with ``"fill"`` the most common step (the
    grid the missing rows are inserted on), with ``"keep"`` ``None``."""
    inferred = _infer_freq(timestamps)
    if inferred is not None or len(timestamps) < 3:
        return inferred
    steps = pd.Series(np.diff(timestamps.asi8))
    common = int(steps.mode().iloc[0])
    if gaps == "keep":
        return None
    if gaps == "fill":
        return to_offset(pd.Timedelta(common, unit="ns")).freqstr
    i = int(np.flatnonzero(steps.to_numpy() != common)[0])
    raise ValueError(
        f"{source}: rows are not evenly spaced: {_row(i + 1, timestamps)} is "
        f"{pd.Timedelta(int(steps[i]), unit='ns')} after the one before, where most steps are "
        f"{pd.Timedelta(common, unit='ns')}; read as consecutive steps they would misplace "
        "every window's past. Choose gaps = 'fill' with a nan_policy (under [data.read], or "
        "--gaps fill --nan-policy ffill) to insert the missing rows, or gaps = 'keep'"
    )


def _insert_missing_steps(
    timestamps: pd.DatetimeIndex, values: np.ndarray, freq: str
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Timestamps on the whole ``freq`` grid from the first to the last, ``values`` ``[N, C]``
    with a row of NaN at each step that was missing."""
    grid = pd.date_range(timestamps[0], timestamps[-1], freq=freq, name=timestamps.name)
    filled = np.full((len(grid), values.shape[1]), np.nan)
    filled[grid.get_indexer(timestamps)] = values
    return grid, filled


def _infer_freq(timestamps: pd.DatetimeIndex) -> str | None:
    """``pd.infer_freq`` as a string, or ``None`` (irregular, repeated or fewer than 3 rows)."""
    if len(timestamps) < 3 or not timestamps.is_unique:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 announces an offset return type
        try:
            inferred = pd.infer_freq(timestamps)
        except (TypeError, ValueError):
            return None
    if inferred is None:
        return None
    return inferred if isinstance(inferred, str) else inferred.freqstr


def _check_freq(timestamps: pd.DatetimeIndex, freq: str, source: str, gaps: str) -> str:
    """Every timestamp on the ``freq`` grid that starts at the first one; no missing step unless
    ``gaps="keep"``. Returns the canonical alias."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated aliases ("H")
            offset = to_offset(freq)
    except ValueError as exc:
        raise ValueError(f"{source}: freq {freq!r} is not a pandas offset alias") from exc
    unique = timestamps.unique()
    grid = pd.date_range(unique[0], unique[-1], freq=offset)
    position = grid.get_indexer(unique)
    off = np.flatnonzero(position < 0)
    if off.size:
        j = int(off[0])
        i = int(timestamps.searchsorted(unique[j]))
        if j == 0:
            detail = f"is not a {offset.freqstr!r} point"
        else:
            detail = f"is {unique[j] - unique[j - 1]} after the previous timestamp"
        raise ValueError(
            f"{source}: timestamps do not follow freq {freq!r}: {_row(i, timestamps)} {detail}"
        )
    skipped = np.flatnonzero(np.diff(position) > 1)
    if skipped.size and gaps == "error":
        j = int(skipped[0])
        i = int(timestamps.searchsorted(unique[j + 1]))
        raise ValueError(
            f"{source}: timestamps do not follow freq {freq!r}: "
            f"{position[j + 1] - position[j] - 1} step(s) missing before {_row(i, timestamps)} "
            f"({skipped.size} gaps in all; gaps='fill' with a nan_policy inserts them, "
            "gaps='keep' reads the rows as consecutive steps)"
        )
    return offset.freqstr


def fill_missing(
    values: np.ndarray, names: list[str], timestamps: pd.DatetimeIndex, source: str, policy: str
) -> np.ndarray:
    """``values`` ``[N, C]`` with its NaNs refused or filled as ``policy`` says."""
    missing = np.isnan(values)
    if not missing.any() or policy == "keep":
        return values
    if policy == "error":
        row, channel = np.argwhere(missing)[0]
        raise ValueError(
            f"{source}: column {names[channel]!r}, {_row(int(row), timestamps)}: missing value "
            f"({int(missing.sum())} in all); fill them with nan_policy = 'ffill', "
            "'interpolate' or 'zero' (under [data.read] in a task file, --nan-policy for "
            "predict and evaluate)"
        )
    if policy == "zero":
        return np.where(missing, 0.0, values)
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        raise ValueError(
            f"{source}: column {names[int(empty[0])]!r} has no value at all; "
            f"nan_policy={policy!r} has nothing to fill it from"
        )
    if policy == "ffill":
        leading = np.flatnonzero(missing[0])
        if leading.size:
            raise ValueError(
                f"{source}: column {names[int(leading[0])]!r}, {_row(0, timestamps)}: missing "
                f"value with nothing before it for nan_policy='ffill' (use 'interpolate' or "
                f"'zero')"
            )
        return forward_fill(values, ~missing)
    frame = pd.DataFrame(values)
    return frame.interpolate(method="linear", limit_direction="both").to_numpy()


def forward_fill(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``values`` ``[N, ...]`` with each unobserved entry replaced by the last observed one
    before it along the first axis (leading unobserved entries by the first observed one).

    ``observed`` is a boolean array of ``values``' shape. A column with no observed entry at
    all comes back as its first entry repeated: the callers refuse such a column first.
    """
    if observed.all():
        return values
    steps = np.arange(len(values)).reshape((-1,) + (1,) * (values.ndim - 1))
    last = np.maximum.accumulate(np.where(observed, steps, -1), axis=0)
    first = np.argmax(observed, axis=0)
    source = np.where(last >= 0, last, first)
    return np.take_along_axis(values, source, axis=0)


def left_pad(values: np.ndarray, length: int, fill: Any = None) -> np.ndarray:
    """``values`` ``[N, ...]`` left-padded along the first axis to at least ``length`` rows
    with ``fill`` (None: its first row)."""
    if len(values) >= length:
        return values
    pad = values[:1] if fill is None else np.asarray(fill, values.dtype)
    rows = np.broadcast_to(pad, (length - len(values), *values.shape[1:]))
    return np.concatenate([rows, values])


# ----------------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitBorders:
    """``[start, end)`` row ranges of the three splits.

    ``val`` and ``test`` start ``lookback`` rows before their border, so that the first window of
    each has the ``lookback`` rows just before the border as input and its target starts at the
    border: no target row of one split is in another split.
    """

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def as_dict(self) -> dict[str, tuple[int, int]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_borders(n_rows: int, rule: str, lookback: int) -> SplitBorders:
    """Chronological train/val/test borders of ``n_rows`` rows under ``rule``.

    Rules (Time-Series-Library's ``data_loader.py``):

    * ``"ett_hour"``: 12/4/4 months of 30 days, hourly: train ``[0, 8640)``,
      val ``[8640 - L, 11520)``, test ``[11520 - L, 14400)``; rows after 14400 are unused.
    * ``"ett_minute"``: the same at 15 minutes (4 times the rows): ``[0, 34560)``,
      ``[34560 - L, 46080)``, ``[46080 - L, 57600)``.
    * ``"ratio_70_10_20"``: ``n_train = int(n * 0.7)``, ``n_test = int(n * 0.2)``, ``n_val`` the
      rest: train ``[0, n_train)``, val ``[n_train - L, n_train + n_val)``,
      test ``[n - n_test - L, n)``.

    Raises:
        ValueError: unknown rule, ``lookback < 1``, or too few rows for the rule.
    """
    if rule not in SPLIT_RULES:
        hint = " (M4 comes as train/test files: use read_m4)" if rule == "m4" else ""
        raise ValueError(f"unknown split rule {rule!r}{hint}; known: {list(SPLIT_RULES)}")
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1, got {lookback}")
    if rule == "ratio_70_10_20":
        n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
        n_val = n_rows - n_train - n_test
    else:
        scale = 1 if rule == "ett_hour" else 4
        n_train, n_val, n_test = (scale * n for n in _ETT_HOURS)
        if n_rows < n_train + n_val + n_test:
            raise ValueError(
                f"split rule {rule!r} needs at least {n_train + n_val + n_test} rows, got {n_rows}"
            )
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(
            f"split rule {rule!r}: {n_rows} rows give train/val/test {n_train}/{n_val}/{n_test} "
            f"rows; every split needs at least one"
        )
    if lookback > n_train:
        raise ValueError(
            f"split rule {rule!r}: lookback {lookback} is longer than the {n_train} training rows"
        )
    end_val = n_train + n_val
    return SplitBorders(
        train=(0, n_train),
        val=(n_train - lookback, end_val),
        test=(end_val - lookback, end_val + n_test),
    )


# ---------------------------------------------------------------------------------- windows


class WindowDataset(Dataset):
    """Stride-1 windows of one split: item i -> (x [L, C], y [H, C]) float32 tensors, x = rows
    [i, i+L), y = rows [i+L, i+L+H); with covariates (x, y, past [L, Cp], known [L+H, Ck]):
    the past covariates up to the origin only, the known ones to the horizon's end.

    With ``channel_independent=True`` every channel is a univariate series of its own: items
    enumerate (window, channel) pairs window-major (item ``i`` is window ``i // C`` of channel
    ``i % C``, see :meth:`locate`), ``len == windows * C``, and x is ``[L, 1]``, y ``[H, 1]``.

    Args:
        values: ``[N, C]`` rows of the split (already scaled, if scaling is wanted).
        lookback: input length ``L``.
        horizon: target length ``H``.
        name: what to call the slice in errors, e.g. ``"ETTh1.csv.gz [test]"``.
        channel_independent: serve univariate windows, as above.
        past: ``[N, Cp]`` covariates known up to each origin (rows of ``values``' rows).
        known: ``[N, Ck]`` covariates known over the horizon too (calendar features included).

    Raises:
        ValueError: ``values`` not ``[N, C]``, or fewer than ``L + H`` rows (no window).
    """

    def __init__(
        self,
        values: np.ndarray,
        lookback: int,
        horizon: int,
        name: str = "",
        channel_independent: bool = False,
        past: np.ndarray | None = None,
        known: np.ndarray | None = None,
    ) -> None:
        label = name or "series"
        array = np.asarray(values, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"{label}: values must be [N, C], got shape {array.shape}")
        covariates = [np.asarray(c, dtype=np.float32) for c in (past, known) if c is not None]
        if covariates and (past is None or known is None):
            raise ValueError(f"{label}: give both past and known covariates (either may be [N, 0])")
        for c in covariates:
            if c.ndim != 2 or c.shape[0] != array.shape[0]:
                raise ValueError(
                    f"{label}: covariates of shape {c.shape}; expected [{array.shape[0]}, ...]"
                )
        if lookback < 1 or horizon < 1:
            raise ValueError(
                f"{label}: lookback and horizon must be at least 1, got {lookback}, {horizon}"
            )
        rows = array.shape[0]
        windows = rows - lookback - horizon + 1
        if windows < 1:
            room = rows - lookback
            allows = f"at most horizon {room}" if room >= 1 else "no horizon at all"
            raise ValueError(
                f"{label}: horizon {horizon} is longer than the slice allows: it has {rows} rows, "
                f"and lookback {lookback} leaves {allows} (lookback + horizon must not exceed "
                f"the rows)"
            )
        self.name = name
        self.lookback = lookback
        self.horizon = horizon
        self.channel_independent = channel_independent
        self.num_windows = windows
        self.num_channels = array.shape[1]
        self.values = torch.from_numpy(np.ascontiguousarray(array))  # [N, C]
        self.covariates = tuple(torch.from_numpy(np.ascontiguousarray(c)) for c in covariates)

    def __len__(self) -> int:
        return self.num_windows * (self.num_channels if self.channel_independent else 1)

    def locate(self, index: int) -> tuple[int, int | None]:
        """``(window, channel)`` of item ``index``: ``window`` is the first input row;
        ``channel`` is ``None`` unless ``channel_independent``."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name or 'series'}: index {index} out of range for {n} items")
        index %= n
        if self.channel_independent:
            window, channel = divmod(index, self.num_channels)
            return window, channel
        return index, None

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        """``(x, y)``: ``[L, C]`` and ``[H, C]`` (``[L, 1]`` and ``[H, 1]`` channel-independent);
        with covariates also ``past [L, Cp]`` and ``known [L + H, Ck]``."""
        window, channel = self.locate(int(index))
        middle, end = window + self.lookback, window + self.lookback + self.horizon
        block = self.values if channel is None else self.values[:, channel : channel + 1]
        item = (block[window:middle].clone(), block[middle:end].clone())
        if not self.covariates:
            return item
        past, known = self.covariates
        return (*item, past[window:middle].clone(), known[window:end].clone())

    def __repr__(self) -> str:
        mode = ", channel_independent" if self.channel_independent else ""
        return (
            f"WindowDataset({self.name!r}, rows={self.values.shape[0]}, "
            f"channels={self.num_channels}, lookback={self.lookback}, horizon={self.horizon}, "
            f"windows={self.num_windows}{mode})"
        )


# ----------------------------------------------------------------------------------- scaling


class Scaler:
    """Per-channel standardisation, fitted on the training rows only.

    ``sklearn.preprocessing.StandardScaler`` computes the mean and std (population std; a
    constant channel gets scale 1); :meth:`transform` and :meth:`inverse_transform` apply them to
    any ``[..., C]`` array, and :meth:`inverse_transform` also to torch tensors (differentiably,
    on the tensor's device and dtype).
    """

    def __init__(self) -> None:
        self._scaler: StandardScaler | None = None

    def fit(self, train_values: np.ndarray) -> Scaler:
        """Fit on ``[N, C]`` training rows; returns ``self``."""
        array = np.asarray(train_values, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] == 0:
            raise ValueError(f"Scaler.fit needs [N, C] rows with N >= 1, got {array.shape}")
        self._scaler = StandardScaler().fit(array)
        return self

    @property
    def mean(self) -> np.ndarray:
        """``[C]`` float64 per-channel mean of the training rows."""
        return self._fitted().mean_

    @property
    def scale(self) -> np.ndarray:
        """``[C]`` float64 per-channel std of the training rows (1 for a constant channel)."""
        return self._fitted().scale_

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``(values - mean) / scale`` for ``[..., C]`` values; float32."""
        array = np.asarray(values, dtype=np.float64)
        self._check_channels(array.shape)
        return ((array - self.mean) / self.scale).astype(np.float32)

    def inverse_transform(self, values: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """``values * scale + mean`` for ``[..., C]`` numpy (float32) or torch (same dtype)."""
        if isinstance(values, Tensor):
            self._check_channels(tuple(values.shape))
            scale = torch.as_tensor(self.scale, dtype=values.dtype, device=values.device)
            mean = torch.as_tensor(self.mean, dtype=values.dtype, device=values.device)
            return values * scale + mean
        array = np.asarray(values, dtype=np.float64)
        self._check_channels(array.shape)
        return (array * self.scale + self.mean).astype(np.float32)

    def _fitted(self) -> StandardScaler:
        if self._scaler is None:
            raise RuntimeError("Scaler is not fitted: call fit(train_values) first")
        return self._scaler

    def _check_channels(self, shape: tuple[int, ...]) -> None:
        channels = self._fitted().mean_.shape[0]
        if not shape or shape[-1] != channels:
            raise ValueError(f"Scaler was fitted on {channels} channels, got shape {shape}")


# ----------------------------------------------------------------------------- putting it together


@dataclass
class ForecastSplits:
    """The three window datasets of one table, the scaler of its targets fitted on the
    training rows (``None`` when not scaling), the row borders, the target channels' names and
    the covariates' scaler (over past then known columns; ``None`` without any)."""

    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    scaler: Scaler | None
    borders: SplitBorders
    columns: list[str]
    covariate_scaler: Scaler | None = None


class ScaledColumns(NamedTuple):
    """Every row of a table: ``values [N, C]`` (the targets), their names, ``past [N, Cp]``
    and ``known [N, Ck + Cc]`` covariates (None without covariates), and the scalers."""

    values: np.ndarray
    columns: list[str]
    past: np.ndarray | None
    known: np.ndarray | None
    scaler: Scaler | None
    covariate_scaler: Scaler | None


def scaled_columns(
    table: TimeSeriesTable,
    train: tuple[int, int],
    covariates: CovariateColumns | None = None,
    scale: bool = True,
) -> ScaledColumns:
    """Every row of ``table`` parted into targets and covariates: with ``scale`` the targets
    standardised by the mean and std of the training rows ``train`` (``start, end``), and the data
    covariates by their own (a covariate scaler only where there is one); the known ones
    followed by the calendar features ``covariates`` names (from the timestamps). Without
    ``covariates``: every column a target, ``past`` and ``known`` None."""
    values, columns = table.values, list(table.columns)
    past = known = None
    if covariates:
        values, columns, past, known = split_table(values, columns, covariates, table.source)
    scaler = covariate_scaler = None
    if scale:
        start, end = train
        scaler = Scaler().fit(values[start:end])
        values = scaler.transform(values)
        if past is not None and known is not None and past.shape[1] + known.shape[1]:
            both = np.concatenate([past, known], axis=1)
            covariate_scaler = Scaler().fit(both[start:end])
            both = covariate_scaler.transform(both)
            past, known = both[:, : past.shape[1]], both[:, past.shape[1] :]
    if covariates:
        assert known is not None
        calendar = calendar_features(table.timestamps, covariates.calendar)
        known = np.concatenate([known, calendar], axis=1)
    return ScaledColumns(values, columns, past, known, scaler, covariate_scaler)


def make_splits(
    table: TimeSeriesTable,
    rule: str,
    lookback: int,
    horizon: int,
    scale: bool = True,
    channel_independent: bool = False,
    covariates: CovariateColumns | None = None,
) -> ForecastSplits:
    """Split ``table`` by ``rule`` (see :func:`split_borders`), standardise every row with the
    training rows' mean and std (``scale=True``) and window each split. With ``covariates``
    the columns they name are read beside the targets (every other column; each kind scaled
    by its own training rows' statistics) and the calendar features they name are derived from
    the timestamps (:mod:`titans_sci.data.covariates`).

    Returns:
        :class:`ForecastSplits`; its datasets serve ``[L, C]``/``[H, C]`` windows of the scaled
        values (``[L, 1]``/``[H, 1]`` with ``channel_independent``).

    Raises:
        ValueError: the table is too short for the rule, or a split too short for
            ``lookback + horizon`` (naming the file and the split).
    """
    borders = split_borders(len(table.values), rule, lookback)
    values, columns, past, known, scaler, covariate_scaler = scaled_columns(
        table, borders.train, covariates, scale
    )
    file = Path(table.source).name
    datasets = {
        split: WindowDataset(
            values[start:end],
            lookback,
            horizon,
            name=f"{file} [{split}]",
            channel_independent=channel_independent,
            past=None if past is None else past[start:end],
            known=None if known is None else known[start:end],
        )
        for split, (start, end) in borders.as_dict().items()
    }
    return ForecastSplits(**datasets, scaler=scaler, borders=borders, columns=columns,
                          covariate_scaler=covariate_scaler)  # fmt: skip


def _timeseries_manifest(name: str) -> DatasetManifest:
    manifest = load_manifest(name)
    if manifest.kind != "timeseries":
        raise ValueError(f"data set {name!r} is of kind {manifest.kind!r}, not 'timeseries'")
    return manifest


def load_dataset(name: str) -> TimeSeriesTable:
    """A bundled time-series data set by registry name (e.g. ``"ett/ETTh1"``), read with its
    manifest's ``date_column``, ``freq``, ``duplicates`` and ``gaps``; the row count is checked
    against the manifest. Split it with ``make_splits(table, manifest.split_rule, ...)``.

    Raises:
        ValueError: unknown name, not a time-series data set, an M4 data set (train/test files:
            use :func:`load_m4`), or a file that does not match its manifest.
    """
    manifest = _timeseries_manifest(name)
    if manifest.split_rule == "m4":
        raise ValueError(f"data set {name!r} is a pair of M4 train/test files: use load_m4")
    info = manifest.splits["data"]
    table = read_series(
        info.file,
        date_column=manifest.date_column or "date",
        freq=manifest.freq,
        duplicates=manifest.duplicates,
        gaps=manifest.gaps,
    )
    if len(table) != info.rows:
        raise ValueError(
            f"{info.file}: {len(table)} data rows, the manifest says {info.rows} "
            f"(check with: python -m titans_sci.data.registry verify {name})"
        )
    return table


# ------------------------------------------------------------------------------------------ M4


def read_m4(train_path: str | Path, test_path: str | Path, freq: str = "h") -> list[dict[str, Any]]:
    """Read an M4 pair of wide files (``V1`` = series id, ``V2..`` = values, ragged rows).

    A row's trailing empty cells are padding for its ragged end and are dropped; any other missing
    value is an error naming the series. The test file must hold the same ids in the same order.

    M4 files carry no timestamps, so every series starts at the fixed period
    ``pd.Period("1750-01-01 00:00", freq=freq)`` (:data:`M4_START`), as GluonTS does for M4: only
    the step (``freq``) is real.

    Returns:
        One dict per series: ``{"item_id": str, "start": pd.Period, "target": float32 [n]
        (the training history), "test": float32 [h] (the held-out continuation)}``.
    """
    start = pd.Period(M4_START, freq=freq)
    train_ids, train_values = _read_wide(Path(train_path))
    test_ids, test_values = _read_wide(Path(test_path))
    if train_ids != test_ids:
        mismatch = next(
            (i for i, (a, b) in enumerate(zip(train_ids, test_ids, strict=False)) if a != b),
            min(len(train_ids), len(test_ids)),
        )
        raise ValueError(
            f"{test_path}: series ids differ from {train_path} at data row {mismatch + 1} "
            f"({len(test_ids)} vs {len(train_ids)} series)"
        )
    return [
        {"item_id": item, "start": start, "target": target, "test": test}
        for item, target, test in zip(train_ids, train_values, test_values, strict=True)
    ]


def load_m4(name: str = "m4/hourly") -> list[dict[str, Any]]:
    """A bundled M4 data set by registry name, as :func:`read_m4` returns it."""
    manifest = _timeseries_manifest(name)
    if manifest.split_rule != "m4":
        raise ValueError(f"data set {name!r} is not an M4 train/test pair: use load_dataset")
    splits = manifest.splits
    series = read_m4(splits["train"].file, splits["test"].file, freq=manifest.freq or "h")
    for split in ("train", "test"):
        if len(series) != splits[split].rows:
            raise ValueError(
                f"{splits[split].file}: {len(series)} series, the manifest says "
                f"{splits[split].rows}"
            )
    return series


def _read_wide(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """Ids and float32 ``[n_i]`` values of a wide M4 file, trailing padding removed."""
    frame = _read_frame(path)
    if frame.shape[1] < 2:
        raise ValueError(f"{path}: expected an id column and value columns, got {frame.shape[1]}")
    ids = frame.iloc[:, 0].astype(str).tolist()
    if len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{path}: series id {repeated!r} appears more than once")
    values = np.stack(
        [_numeric(frame[c], str(path), str(c), None) for c in frame.columns[1:]], axis=1
    )
    present = ~np.isnan(values)
    series = []
    for row, (item, mask) in enumerate(zip(ids, present, strict=True)):
        length = int(np.flatnonzero(mask)[-1]) + 1 if mask.any() else 0
        if length == 0:
            raise ValueError(f"{path}: series {item!r} (data row {row + 1}) has no value")
        holes = np.flatnonzero(~mask[:length])
        if holes.size:
            column = frame.columns[1 + int(holes[0])]
            raise ValueError(
                f"{path}: series {item!r} (data row {row + 1}) has a missing value in column "
                f"{column!r} before its last value; only trailing cells may be empty"
            )
        series.append(values[row, :length].astype(np.float32))
    return ids, series
