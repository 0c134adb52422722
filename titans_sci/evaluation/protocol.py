"""Model selection protocols: select on dev, report test once; stratified K-fold; seed summaries.

The protocol functions take callables, so they are decoupled from any model or trainer:
``train_epoch(epoch)`` trains one epoch, ``score_dev()`` returns the dev score (higher is better),
``snapshot()`` / ``restore(snap)`` copy the model's weights, and ``evaluate_test()`` returns the
test metrics. Test data reach the protocol only through ``evaluate_test``, which is called once,
after the selection, so they cannot influence which checkpoint is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold


@dataclass(frozen=True)
class Selection:
    """What :func:`select_on_dev` chose and measured."""

    best_epoch: int
    dev_scores: list[float]
    test_metrics: dict[str, float]


def select_on_dev(
    epochs: int,
    train_epoch: Callable[[int], None],
    score_dev: Callable[[], float],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    evaluate_test: Callable[[], dict[str, float]],
    patience: int | None = None,
) -> Selection:
    """Train ``epochs`` epochs, keep the weights of the best dev score (the earliest on ties),
    restore them, and evaluate the test set once. With ``patience``, stop early once that many
    epochs in a row have not improved the best dev score."""
    if epochs < 1:
        raise ValueError(f"epochs={epochs}; expected >= 1")
    best_epoch, best_score, best = -1, -math.inf, None
    scores = []
    for epoch in range(epochs):
        train_epoch(epoch)
        score = float(score_dev())
        if math.isnan(score):
            raise ValueError(f"the dev score of epoch {epoch} is NaN")
        scores.append(score)
        if score > best_score:
            best_epoch, best_score, best = epoch, score, snapshot()
        elif patience is not None and epoch - best_epoch >= patience:
            break
    restore(best)
    return Selection(best_epoch, scores, dict(evaluate_test()))


def stratified_folds(
    labels: Sequence[int] | np.ndarray, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified (train indices, held-out indices) pairs, shuffled with ``seed``: for
    benchmark sets that ship only a test split (say so next to every number they give)."""
    labels = np.asarray(labels)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(train, held_out) for train, held_out in splitter.split(np.zeros(len(labels)), labels)]


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and (sample) standard deviation of each metric over seeds or folds."""
    if not runs:
        raise ValueError("no runs to summarize")
    names = runs[0].keys()
    out = {}
    for name in names:
        values = np.array([run[name] for run in runs], dtype=np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[name] = {"mean": float(values.mean()), "std": std, "n": float(len(values))}
    return out
