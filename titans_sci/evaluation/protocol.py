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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold


@dataclass(frozen=True)
class Selection:
    """What :func:`select_on_dev` chose and measured."""

    best_epoch: int
    dev_scores: list[float]
    test_metrics: dict[str, float]


@dataclass
class DevSelection:
    """The running state of select-on-dev: every dev score so far, the best one and its
    weights. Plain data, so a trainer can checkpoint it and resume.

    ``update(epoch, score, snapshot)`` records an epoch's dev score (higher is better; the
    earliest epoch wins ties) and calls ``snapshot()`` only when the score improves;
    ``should_stop(epoch)`` is True once ``patience`` epochs in a row have not improved it.
    """

    patience: int | None = None
    scores: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    best: Any = None

    def update(self, epoch: int, score: float, snapshot: Callable[[], Any]) -> bool:
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"the dev score of epoch {epoch} is NaN")
        self.scores.append(score)
        if score > self.best_score:
            self.best_epoch, self.best_score, self.best = epoch, score, snapshot()
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        return self.patience is not None and epoch - self.best_epoch >= self.patience


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
    selection = DevSelection(patience)
    for epoch in range(epochs):
        train_epoch(epoch)
        selection.update(epoch, score_dev(), snapshot)
        if selection.should_stop(epoch):
            break
    restore(selection.best)
    return Selection(selection.best_epoch, selection.scores, dict(evaluate_test()))


def stratified_folds(
    labels: Sequence[int] | np.ndarray, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified (train indices, held-out indices) pairs, shuffled with ``seed``: for
    benchmark sets that ship only a test split (say so next to every number they give)."""
    labels = np.asarray(labels)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(train, held_out) for train, held_out in splitter.split(np.zeros(len(labels)), labels)]


def summarize(runs: Sequence[dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """Mean and (sample) standard deviation of each metric over seeds or folds, and ``n``, the
    runs where it is defined (a ``None`` value is undefined and left out; mean and std are
    ``None`` when no run defines it)."""
    if not runs:
        raise ValueError("no runs to summarize")
    out: dict[str, dict[str, float | None]] = {}
    for name in runs[0]:
        values = np.array([r[name] for r in runs if r[name] is not None], dtype=np.float64)
        if not len(values):
            out[name] = {"mean": None, "std": None, "n": 0}
            continue
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[name] = {"mean": float(values.mean()), "std": std, "n": len(values)}
    return out
