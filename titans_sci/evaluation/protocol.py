"""Model selection protocols: the running state of select-on-dev, stratified K-fold, and
summaries over seeds or folds.

:class:`DevSelection` is what :class:`titans_sci.train.Trainer` keeps (and checkpoints) while it
trains; the task runner evaluates the test split only after ``fit`` returns, so test data cannot
influence which epoch is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold


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


def summary_lines(result: dict[str, Any], width: int = 9) -> str:
    """A run's protocol line, then one line per model of its summary (``metric mean +- std``
    each, ``undefined`` where no run defines it), the model names right-aligned to ``width``."""
    lines = [f"{result['task']['name']}: {result['protocol']}"]
    for model, metrics in result["summary"].items():
        cells = ", ".join(
            f"{name} "
            + ("undefined" if s["mean"] is None else f"{s['mean']:.4f} +- {s['std']:.4f}")
            for name, s in metrics.items()
        )
        lines.append(f"  {model:>{width}}: {cells}")
    return "\n".join(lines)


def _cell(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "undefined"
    return f"{stats['mean']:.4f} +- {stats['std']:.4f}"
