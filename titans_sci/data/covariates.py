"""Covariates of a forecast: the columns of a table read beside the target, never forecast.

GluonTS' kinds, by the names a task file uses:

- ``known`` (GluonTS ``feat_dynamic_real``): known over the horizon as well, e.g. a day-ahead
  load or wind forecast published before the price it helps forecast;
- ``past`` (``past_feat_dynamic_real``): known up to the forecast origin only, e.g. a measured
  temperature;
- ``calendar``: features of each row's timestamp, known over any horizon, computed by GluonTS'
  own time features (``gluonts.time_feature``: ``hour_of_day``, ``day_of_week``, ... each in
  [-0.5, 0.5]), so the GluonTS estimator and the task read the same values.

:func:`split_table` parts a table into its target and covariate columns; the window datasets
(:class:`~titans_sci.data.timeseries.WindowDataset`) cut the past covariates at the origin and
the known ones and the calendar at the horizon's end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from gluonts import time_feature

#: The calendar features a task may name, each GluonTS' function of the same name.
CALENDAR: dict[str, Callable[[pd.Index], np.ndarray]] = {
    name: getattr(time_feature, name)
    for name in (
        "minute_of_hour",
        "hour_of_day",
        "day_of_week",
        "day_of_month",
        "day_of_year",
        "week_of_year",
        "month_of_year",
    )
}


@dataclass(frozen=True)
class CovariateColumns:
    """Which columns of a table are covariates, and which calendar features to derive; every
    other column is a target."""

    past: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.calendar if name not in CALENDAR]
        if unknown:
            raise ValueError(f"calendar feature {unknown[0]!r} is not one of {sorted(CALENDAR)}")
        for key, names in (("covariates", [*self.past, *self.known]), ("calendar", self.calendar)):
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                raise ValueError(f"{key}: {twice[0]!r} is named twice")

    def __bool__(self) -> bool:
        return bool(self.past or self.known or self.calendar)

    @property
    def columns(self) -> tuple[str, ...]:
        """The covariates read from the table: past, then known."""
        return (*self.past, *self.known)


def calendar_features(timestamps: pd.Index, names: tuple[str, ...]) -> np.ndarray:
    """``[N, len(names)]`` float32: GluonTS' time feature of each name at each timestamp (a
    ``DatetimeIndex`` or a ``PeriodIndex``)."""
    if not names:
        return np.zeros((len(timestamps), 0), dtype=np.float32)
    return np.stack([CALENDAR[n](timestamps) for n in names], axis=1).astype(np.float32)


def split_table(
    values: np.ndarray, columns: list[str], covariates: CovariateColumns, source: str
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """``values [N, C]`` parted into ``(targets [N, T], target names, past [N, Cp], known
    [N, Ck])`` by ``covariates`` (the targets: every column not named a covariate, in their
    order). A covariate missing from ``columns``, or no target left, is refused naming
    ``source``."""
    missing = [c for c in covariates.columns if c not in columns]
    if missing:
        raise ValueError(f"{source}: no covariate column {missing[0]!r}; columns are {columns}")
    targets = [c for c in columns if c not in covariates.columns]
    if not targets:
        raise ValueError(f"{source}: every column is a covariate; no target is left to forecast")

    def take(names: list[str] | tuple[str, ...]) -> np.ndarray:
        return values[:, [columns.index(c) for c in names]].reshape(len(values), len(names))

    return take(targets), targets, take(covariates.past), take(covariates.known)
