"""Reading GluonTS dataset entries: each entry's start period, target and observed mask,
checked, or a ``ValueError`` naming the item (its ``item_id``, else its position)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from titans_sci.data.covariates import CovariateColumns, calendar_features
from titans_sci.data.timeseries import forward_fill
from titans_sci.models.covariates import CovariateCounts

__all__ = [
    "covariate_counts",
    "dynamic_features",
    "entry_covariates",
    "item_name",
    "observed_target",
    "same_freq",
    "start_period",
    "static_features",
    "target_for_input",
]


def item_name(entry: dict[str, Any], index: int) -> str:
    """How errors name an entry: its ``item_id``, else its position in the dataset."""
    item_id = entry.get("item_id")
    return repr(item_id) if item_id is not None else f"#{index} (no item_id)"


def same_freq(a: Any, b: Any) -> bool:
    """Whether two pandas frequencies (strings or offsets) are the same."""
    try:
        return to_offset(a) == to_offset(b)
    except ValueError:
        return False


def start_period(entry: dict[str, Any], index: int, freq: str) -> pd.Period:
    """The entry's ``start`` as a period of ``freq``: a ``pandas.Period``, or anything
    ``pandas.Period`` accepts together with the entry's ``freq`` field (else ``freq``)."""
    name = item_name(entry, index)
    start = entry.get("start")
    if start is None:
        raise ValueError(f"series {name}: no 'start' field")
    entry_freq = entry.get("freq")
    if isinstance(start, pd.Period):
        if entry_freq is not None and not same_freq(entry_freq, start.freq):
            raise ValueError(
                f"series {name}: its freq={entry_freq!r} differs from its start's {start.freqstr!r}"
            )
        period = start
    else:
        try:
            period = pd.Period(start, freq=entry_freq if entry_freq is not None else freq)
        except (ValueError, TypeError) as error:
            raise ValueError(f"series {name}: start={start!r} is not a period ({error})") from None
    if not same_freq(period.freq, freq):
        raise ValueError(
            f"series {name} has frequency {period.freqstr!r}; the estimator's freq is {freq!r}"
        )
    return period


def observed_target(entry: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray]:
    """The entry's target ``[T]`` (float64, missing values as they are) and its observed mask
    ``[T]`` (its finite values). The target must be 1-D with at least one finite value."""
    name = item_name(entry, index)
    if "target" not in entry:
        raise ValueError(f"series {name}: no 'target' field")
    values = np.asarray(entry["target"], dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"series {name}: target has shape {values.shape}; the Titans estimator is "
            "univariate and expects a 1-D target"
        )
    observed = np.isfinite(values)
    if not observed.any():
        raise ValueError(f"series {name} is empty or has no finite value")
    return values, observed


def target_for_input(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """A target ``[T]`` as the network's input: float32, each missing value filled with the
    last observed one before it (leading ones with the first observed one)."""
    return forward_fill(values, observed).astype(np.float32)


#: The model config's count of each GluonTS covariate field, for error messages.
COUNTS = {
    "feat_dynamic_real": "num_feat_dynamic_real",
    "past_feat_dynamic_real": "num_past_feat_dynamic_real",
    "feat_static_cat": "cardinality",
    "feat_static_real": "num_feat_static_real",
}


def _field(entry: dict[str, Any], index: int, field: str, count: int) -> np.ndarray:
    if field not in entry:
        raise ValueError(
            f"series {item_name(entry, index)}: no {field!r} field; the model reads {count} "
            f"({COUNTS[field]}={count})"
        )
    return np.asarray(entry[field], dtype=np.float64)


def dynamic_features(
    entry: dict[str, Any], index: int, field: str, count: int, length: int
) -> np.ndarray:
    """The entry's dynamic feature ``field`` (GluonTS' layout ``[count, T]``; ``[T]`` for one)
    over its first ``length`` steps as ``[length, count]`` float32, each missing value filled
    as the target's input is (:func:`target_for_input`)."""
    if count == 0:
        return np.zeros((length, 0), dtype=np.float32)
    name = item_name(entry, index)
    values = _field(entry, index, field, count)
    if values.ndim == 1 and count == 1:
        values = values[None]
    if values.ndim != 2 or values.shape[0] != count:
        raise ValueError(f"series {name}: {field} has shape {values.shape}; expected [{count}, T]")
    if values.shape[1] < length:
        raise ValueError(
            f"series {name}: {field} has {values.shape[1]} steps; the model reads {length} "
            "(feat_dynamic_real covers the target and the prediction_length steps after it)"
        )
    values = values[:, :length].T
    observed = np.isfinite(values)
    empty = np.flatnonzero(~observed.any(axis=0))
    if empty.size:
        raise ValueError(f"series {name}: {field} row {int(empty[0])} has no finite value")
    return forward_fill(values, observed).astype(np.float32)


def static_features(entry: dict[str, Any], index: int, field: str, count: int) -> np.ndarray:
    """The entry's static feature ``field`` as ``[count]`` float64 (finite)."""
    if count == 0:
        return np.zeros(0)
    values = _field(entry, index, field, count).reshape(-1)
    if values.shape != (count,) or not np.isfinite(values).all():
        raise ValueError(
            f"series {item_name(entry, index)}: {field} is {values.tolist()}; expected {count} "
            "finite value(s)"
        )
    return values


def entry_covariates(
    config: CovariateCounts,
    time_features: tuple[str, ...],
    entry: dict[str, Any],
    index: int,
    start: pd.Period,
    past_length: int,
    known_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The covariates ``config`` reads of an entry starting at ``start``: ``past
    [past_length, Cp]``, ``known [known_length, Ck + Cc]`` (``feat_dynamic_real``, then the
    calendar features of each step's period), ``static_cat [S]`` and ``static_real [R]``.
    ``known_length`` defaults to ``past_length`` (training data: as long as the target)."""
    known_length = past_length if known_length is None else known_length
    past = dynamic_features(entry, index, "past_feat_dynamic_real", config.past_covariates,
                            past_length)  # fmt: skip
    known = dynamic_features(entry, index, "feat_dynamic_real", config.known_covariates,
                             known_length)  # fmt: skip
    periods = pd.period_range(start, periods=known_length, freq=start.freq)
    calendar = calendar_features(periods, time_features)
    static_cat = static_features(entry, index, "feat_static_cat", len(config.static_cardinalities))
    static_real = static_features(entry, index, "feat_static_real", config.static_real)
    return past, np.concatenate([known, calendar], axis=1), static_cat, static_real


def covariate_counts(
    num_feat_dynamic_real: int,
    num_past_feat_dynamic_real: int,
    cardinality: Sequence[int],
    num_feat_static_real: int,
    time_features: Sequence[str],
) -> dict[str, Any]:
    """GluonTS' covariate counts as a forecaster config's fields (the calendar features'
    names checked)."""
    CovariateColumns(calendar=tuple(time_features))  # checks the names
    return {
        "known_covariates": num_feat_dynamic_real,
        "past_covariates": num_past_feat_dynamic_real,
        "calendar": len(time_features),
        "static_cardinalities": tuple(cardinality),
        "static_real": num_feat_static_real,
    }
