"""What a task kind is: the small interface through which a kind of task (classification,
forecasting, pretraining, yours) tells the runner (:mod:`titans_sci.tasks.runner`) what is
specific to it, and the unit of work it hands over. A kind is one module with a class that
has this interface, registered next to its config in :data:`titans_sci.tasks.config.TASK_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

TITANS = "titans"


@dataclass
class Unit:
    """One training split: ``labels`` name it in the results (``{"seed": 1}``, ``{"fold": 0}``,
    ``{"horizon": 96, "seed": 1}``), ``seed`` seeds its models and batches, ``data`` is the
    kind's own."""

    labels: dict[str, int]
    seed: int
    data: Any

    @property
    def folder(self) -> str:
        """The checkpoint folder of this unit: ``seed1``, ``fold0``, ``h96_seed1``."""
        return "_".join(f"h{v}" if k == "horizon" else f"{k}{v}" for k, v in self.labels.items())


M = TypeVar("M", bound=nn.Module)


class TaskKind(Protocol[M]):
    """What the runner needs from a task kind whose neural models are ``M`` (the model arguments
    are the models its :meth:`models` built)."""

    task: Any
    #: One line saying how the numbers were obtained (split, selection, test).
    protocol: str
    #: Why a metric of a result row can be ``None`` (undefined), by metric.
    undefined: dict[str, str]

    def data_files(self) -> dict[str, Path]:
        """Every file the task reads, by role: their checksums go into the fingerprint."""
        ...

    def units(self) -> Iterator[Unit]:
        """The units of work, in order."""
        ...

    def models(self, unit: Unit) -> dict[str, Callable[[], M]]:
        """The neural models to train on ``unit``, by name (``"titans"`` first): builders."""
        ...

    def batches(self, unit: Unit, model: M) -> Callable[[int, torch.Generator], Iterable]:
        """The trainer's ``batches(epoch, generator)`` for ``model`` on ``unit``."""
        ...

    def loss(self, model: M, batch: Any) -> Tensor:
        """The training loss of a batch."""
        ...

    def score_dev(self, model: M, unit: Unit) -> float:
        """The dev score (higher is better)."""
        ...

    def evaluate(self, model: M, unit: Unit) -> tuple[dict[str, Any], Any]:
        """Test metrics and the test predictions (for the report)."""
        ...

    def model_meta(self, unit: Unit) -> dict[str, Any]:
        """What a user of the saved model needs besides its config (columns, scaler, ...)."""
        ...

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        """Result rows of the non-neural baselines on ``unit`` (their labels included)."""
        ...

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The summary over every row (mean and spread over seeds or folds)."""
        ...

    def format_summary(self, result: dict[str, Any]) -> str:
        """The summary in a few lines of text."""
        ...

    def figures(self, model: M, unit: Unit, predictions: Any, folder: Path) -> dict[str, Path]:
        """The kind's report figures of the first Titans model, by caption."""
        ...


#: Optional, beside the interface: ``stages(model) -> [(name, parameters), ...]``, the training
#: stages of a model, trained in order, each a trainer of its parameters alone with its own
#: selection on dev and its checkpoints in ``<model folder>/<name>`` (the runner trains every
#: parameter in one stage where a kind has no ``stages``).
