"""One runner for every task: seeds and folds, the trainer, saving, results and the report.

A task kind (:mod:`.classification`, :mod:`.forecasting`, :mod:`.pretraining`) says what is
specific to it through the small :class:`~titans_sci.tasks.kind.TaskKind` interface: its
data files, its units of work (a seed, a fold, a horizon and seed), the models to train on a
unit, their batches and loss, the dev score, the test evaluation, its baselines, its summary
and its figures. The runner does the rest the same
way for every kind::

    for unit in kind.units():
        for each model: seed, build, train (select on dev, checkpoint, resume; stage by stage
                        where the kind has stages), test, save
        baselines
    results.json and runs.csv (written first), then report.md from what is in memory
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch

from titans_sci import distributed, report
from titans_sci.config import to_dict
from titans_sci.data.registry import sha256_of
from titans_sci.modelfolder import kind_of_module, save_model
from titans_sci.tasks.config import TASK_KINDS, AnyTask
from titans_sci.tasks.kind import TITANS, TaskKind, Unit
from titans_sci.tasks.run_folder import RunFolder, write_csv, write_json
from titans_sci.train import Trainer, TrainResult, only, seed_stage
from titans_sci.version import code_version


def kind_of(task: AnyTask) -> TaskKind[Any]:
    """The :class:`~titans_sci.tasks.kind.TaskKind` that runs ``task``: the one registered for
    its config's ``kind`` (:data:`~titans_sci.tasks.config.TASK_KINDS`)."""
    module, _, name = TASK_KINDS[task.kind].implementation.partition(":")
    return getattr(importlib.import_module(module), name)(task)


def fingerprint(kind: TaskKind[Any], models: Collection[str] | None = None) -> dict[str, Any]:
    """What determines the run: the resolved task, the data's checksums, the code version (and
    the models chosen, where not all of the task's train)."""
    files = kind.data_files()
    marks = {
        "task": to_dict(kind.task),
        "data": {role: {"file": str(f), "sha256": sha256_of(f)} for role, f in files.items()},
        "code": code_version(),
    }
    return marks if models is None else {**marks, "models": sorted(models)}


def chosen_models(
    kind: TaskKind[Any], unit: Unit, models: Collection[str] | None = None
) -> dict[str, Callable[[], torch.nn.Module]]:
    """The builders of the kind's models on ``unit``, only those named in ``models`` (all if
    None; a name the task does not train is refused, naming those it does)."""
    builders = kind.models(unit)
    if models is None:
        return builders
    unknown = sorted(set(models) - set(builders))
    if unknown:
        raise ValueError(
            f"models: {unknown[0]!r} is not one of this task's models {sorted(builders)} (a "
            "baseline model is trained only where the task's [baselines] turn it on)"
        )
    return {name: build for name, build in builders.items() if name in models}


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
    models: Collection[str] | None = None,
) -> dict[str, Any]:
    """Run ``task`` into ``<out>/<name>/`` (see :mod:`titans_sci.tasks.run_folder`) and return
    its results. ``resume`` continues an interrupted run of the same task, data and code and
    reaches the numbers of an uninterrupted one; ``overwrite`` replaces what the folder holds.
    ``models``: train only these of the task's models (e.g. ``["cnn"]`` to run one baseline
    model again, or none: the baselines without a model to train); its baselines run as the
    task says."""
    kind = kind_of(task)  # reads and checks the data
    marks = fingerprint(kind, models)
    units = kind.units()
    # The first unit's data and models are built before the folder is touched, so a bad config
    # or data set, or a Titans model that could not be saved, is refused before anything trains.
    opening = next(units)
    for name, build in chosen_models(kind, opening, models).items():
        model = build()
        if name == TITANS:
            kind_of_module(model)
    with RunFolder(Path(out) / task.name, marks, resume, overwrite) as folder:
        rows: list[dict[str, Any]] = []
        curves: dict[str, TrainResult] = {}
        first = None
        for unit in itertools.chain([opening], units):
            for name, build in chosen_models(kind, unit, models).items():
                place = folder.checkpoints / unit.folder / name
                torch.manual_seed(unit.seed)  # each model's initialisation: the seed alone
                model = build()
                writes = distributed.is_main()  # under torchrun, process 0 writes
                epochs_run = 0
                for index, (stage, parameters, changes) in enumerate(_stages(kind, model)):
                    seed_stage(unit.seed, index)
                    training = dataclasses.replace(task.training, **changes)
                    with only(model, parameters):
                        trainer = Trainer(model, training, unit.seed, place / stage,
                                          progress, marks, writes)  # fmt: skip
                        trained = trainer.fit(
                            kind.batches(unit, model),
                            functools.partial(kind.loss, model),
                            functools.partial(kind.score_dev, model, unit),
                            resume,
                        )
                    epochs_run += len(trained.dev_scores)
                    curves["/".join(filter(None, (unit.folder, name, stage)))] = trained
                metrics, predictions = kind.evaluate(model, unit)
                metrics = {
                    **metrics,
                    "dev_score": trained.dev_scores[trained.best_epoch],
                    "best_epoch": trained.best_epoch + 1,
                    "epochs_run": epochs_run,
                }
                rows.append({**unit.labels, "model": name, **metrics})
                if name == TITANS:
                    meta = {"task": task.name, **kind.model_meta(unit), **unit.labels, **metrics}
                    if writes:
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
        if distributed.is_main():  # under torchrun, process 0 writes the results and report
            # runs.csv first: a results.json is always of a complete pair
            write_csv(folder.path / "runs.csv", rows)
            write_json(folder.path / "results.json", result)
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


def _stages(
    kind: TaskKind[Any], model: torch.nn.Module
) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """The model's training stages, ``(name, parameters, changes)`` in order: the kind's own
    (``kind.stages(model)``, optional; ``changes`` to the training config for that stage, e.g.
    its ``lr``, may be left out), else one stage of every parameter named ``""`` (its
    checkpoint in the model's folder itself)."""
    stages = getattr(kind, "stages", None)
    if stages is None:
        return [("", list(model.parameters()), {})]
    return [(name, parameters, *rest) if rest else (name, parameters, {})
            for name, parameters, *rest in stages(model)]  # fmt: skip


def _notes(rows: list[dict[str, Any]], undefined: dict[str, str]) -> list[str]:
    """A line per metric that is ``None`` in some rows, with the reason."""
    notes = []
    for metric, reason in undefined.items():
        count = sum(1 for r in rows if metric in r and r[metric] is None)
        if count:
            notes.append(f"{metric} is null in {count} of {len(rows)} runs: {reason}")
    return notes
