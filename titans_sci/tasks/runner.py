"""One runner for every task: seeds and folds, the trainer, saving, results and the report.

A task kind (:mod:`.classification`, :mod:`.forecasting`) says what is specific to it through
the small :class:`TaskKind` interface: its data files, its units of work (a seed, a fold, a
horizon and seed), the models to train on a unit, their batches and loss, the dev score, the
test evaluation, its baselines, its summary and its figures. The runner does the rest the same
way for every kind::

    for unit in kind.units():
        for each model: seed, build, train (select on dev, checkpoint, resume), test, save
        baselines
    results.json and runs.csv (written first), then report.md from what is in memory
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

from titans_sci import distributed, report
from titans_sci.api import save_model
from titans_sci.config import to_dict
from titans_sci.data.registry import sha256_of
from titans_sci.tasks.config import AnyTask, ForecastTask, PretrainTask, load_task
from titans_sci.tasks.run_folder import RunFolder, code_version, write_csv, write_json
from titans_sci.train import Trainer, TrainResult

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


def kind_of(task: AnyTask) -> TaskKind[Any]:
    """The :class:`TaskKind` that runs ``task``."""
    if isinstance(task, ForecastTask):
        from titans_sci.tasks.forecasting import Forecasting

        return Forecasting(task)
    if isinstance(task, PretrainTask):
        from titans_sci.tasks.pretraining import Pretraining

        return Pretraining(task)
    from titans_sci.tasks.classification import Classification

    return Classification(task)


def fingerprint(kind: TaskKind[Any]) -> dict[str, Any]:
    """What determines the run: the resolved task, the data's checksums, the code version."""
    files = kind.data_files()
    return {
        "task": to_dict(kind.task),
        "data": {role: {"file": str(f), "sha256": sha256_of(f)} for role, f in files.items()},
        "code": code_version(),
    }


def without_baselines(task: AnyTask) -> AnyTask:
    """``task`` with every baseline switched off (``titans-sci train``)."""
    # Any: mypy types replace() on the union of the two kinds' baselines as taking nothing.
    baselines: Any = task.baselines
    off = {f.name: False for f in dataclasses.fields(baselines)}
    return dataclasses.replace(task, baselines=dataclasses.replace(baselines, **off))


def run(
    task: AnyTask,
    out: str | Path = "runs",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``task`` into ``<out>/<name>/`` (see :mod:`titans_sci.tasks.run_folder`) and return
    its results. ``resume`` continues an interrupted run of the same task, data and code and
    reaches the numbers of an uninterrupted one; ``overwrite`` replaces what the folder holds."""
    kind = kind_of(task)  # reads and checks the data
    marks = fingerprint(kind)
    units = kind.units()
    opening = next(units)  # the first unit's data and models built: a bad config or data set
    for build in kind.models(opening).values():  # is refused before the folder is touched
        build()
    with RunFolder(Path(out) / task.name, marks, resume, overwrite) as folder:
        rows: list[dict[str, Any]] = []
        curves: dict[str, TrainResult] = {}
        first = None
        for unit in itertools.chain([opening], units):
            for name, build in kind.models(unit).items():
                place = folder.checkpoints / unit.folder / name
                torch.manual_seed(unit.seed)  # each model's initialisation: the seed alone
                model = build()
                trainer = Trainer(model, task.training, unit.seed, place, progress, marks)
                trained = trainer.fit(
                    kind.batches(unit, model),
                    functools.partial(kind.loss, model),
                    functools.partial(kind.score_dev, model, unit),
                    resume,
                )
                metrics, predictions = kind.evaluate(model, unit)
                metrics = {
                    **metrics,
                    "dev_score": trained.dev_scores[trained.best_epoch],
                    "best_epoch": trained.best_epoch + 1,
                    "epochs_run": len(trained.dev_scores),
                }
                rows.append({**unit.labels, "model": name, **metrics})
                curves[f"{unit.folder}/{name}"] = trained
                if name == TITANS:
                    meta = {"task": task.name, **kind.model_meta(unit), **unit.labels, **metrics}
                    save_model(place / "model", model, meta)
                    first = first or (model, unit, predictions)
            rows += kind.baselines(unit)
        protocol = kind.protocol
        if task.data.max_eval:
            protocol += f"; a smoke run: dev and test cut to {task.data.max_eval} items each"
        result = {
            "task": to_dict(task),
            "protocol": protocol,
            "fingerprint": {"data": marks["data"], "code": marks["code"]},
            "runs": rows,
            "summary": kind.summarize(rows),
            "notes": _notes(rows, kind.undefined),
        }
        # runs.csv first: a results.json is always of a complete pair
        write_csv(folder.path / "runs.csv", rows)
        write_json(folder.path / "results.json", result)
        if distributed.is_main():  # under torchrun, process 0 writes the report
            _write_report(kind, result, curves, first, folder.path)
    return result


def _write_report(
    kind: TaskKind[Any],
    result: dict[str, Any],
    curves: dict[str, TrainResult],
    first: tuple[Any, Unit, Any] | None,
    folder: Path,
) -> None:
    """``report.md`` and its figures, from what the run holds in memory."""
    figures = {}
    if curves:
        figures["Learning curves"] = report.learning_curves(curves, folder / "learning_curves.png")
    if first is not None:
        figures.update(kind.figures(*first, folder))
    report.write_report(
        folder, result["task"]["name"], kind.format_summary(result).splitlines(), figures
    )


def run_file(
    path: str | Path,
    out: str | Path = "runs",
    overrides: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """:func:`run` on a task file (with ``overrides`` as in :func:`load_task`)."""
    return run(load_task(path, overrides), out, **options)


def _notes(rows: list[dict[str, Any]], undefined: dict[str, str]) -> list[str]:
    """A line per metric that is ``None`` in some rows, with the reason."""
    notes = []
    for metric, reason in undefined.items():
        count = sum(1 for r in rows if metric in r and r[metric] is None)
        if count:
            notes.append(f"{metric} is null in {count} of {len(rows)} runs: {reason}")
    return notes
