"""Reading GluonTS dataset entries: each entry's start period, target and observed mask,
checked, or a ``ValueError`` naming the item (its ``item_id``, else its position)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from titans_sci.data.timeseries import forward_fill

__all__ = ["item_name", "observed_target", "same_freq", "start_period", "target_for_input"]


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
