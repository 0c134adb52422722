"""Genomic benchmark tasks: one TOML file describes data, model, training and protocol.

A task file (see ``tasks/*.toml``)::

    [task]                      # what to run
    name = "gue_prom_core_tata"
    dataset = "gue/prom/prom_core_tata"       # a bundled data set (titans_sci.data.registry)
    # or: train = "x.csv", dev = "y.fasta", test = "z.csv.gz"  (any user files with labels)
    protocol = "train_dev_test"               # or "kfold" for test-only sets
    folds = 5                                 # kfold only
    seeds = [1, 2, 3]

    [model]                     # the Titans classifier
    variant = "lmm"             # lmm | mac | mag | mal
    dim = 64
    depth = 2
    bidirectional = true
    memory = { preset = "titans", num_heads = 4, head_dim = 16, chunk_size = 16 }

    [training]
    epochs = 5
    batch_size = 32
    lr = 3e-3
    max_train = 0               # 0: every training sequence
    rc_augment = true

Protocol ``train_dev_test``: train on train, keep the epoch with the best dev accuracy, report
test once, for every seed; ``kfold``: stratified K-fold on the only split, the held-out fold as
test and a seeded 10% of the rest as dev. Results are summarised as mean and std over seeds (or
folds) and written to the run directory as JSON and CSV.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from titans_sci._dicts import from_dict
from titans_sci.data.dna import NucleotideTokenizer, SequenceRecord, pad_batch, read_sequences
from titans_sci.data.registry import load_manifest
from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.evaluation.protocol import select_on_dev, stratified_folds, summarize
from titans_sci.memory import MemoryConfig
from titans_sci.models import MODELS
from titans_sci.models.dna_classifier import DNAClassifier

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    protocol: str = "train_dev_test"
    folds: int = 5
    seeds: list[int] = field(default_factory=lambda: [1])


@dataclass(frozen=True)
class ModelSpec:
    variant: str = "lmm"
    dim: int = 64
    depth: int = 2
    bidirectional: bool = True
    memory: dict[str, Any] = field(default_factory=lambda: {"preset": "titans"})


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    max_train: int = 0
    rc_augment: bool = True


@dataclass(frozen=True)
class GenomicTask:
    task: TaskSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    source: Path | None = None


_TYPES = {
    "task": (TaskSpec, {"name": str, "protocol": str, "folds": int, "seeds": list}),
    "model": (ModelSpec, {"variant": str, "dim": int, "depth": int, "bidirectional": bool,
                          "memory": dict}),
    "training": (TrainingSpec, {"epochs": int, "batch_size": int, "lr": float, "max_train": int,
                                "rc_augment": bool}),
}  # fmt: skip


def load_task(path: str | Path) -> GenomicTask:
    """Read and check a task file: unknown tables or keys and wrong types name the file and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: cannot read the task file: {error}") from None
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected {sorted(_TYPES)}")
    if "task" not in data:
        raise ValueError(f"{path}: missing the [task] table")
    parts = {}
    for table, (cls, types) in _TYPES.items():
        values = data.get(table, {})
        for key, value in values.items():
            expected = types.get(key)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                values[key] = value
            if expected is not None and not isinstance(value, expected):
                raise ValueError(
                    f"{path}: [{table}] {key} = {value!r} should be {expected.__name__}"
                )
        try:
            parts[table] = from_dict(cls, values)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: [{table}] {error}") from None
    task = parts["task"]
    if task.protocol not in ("train_dev_test", "kfold"):
        raise ValueError(
            f"{path}: [task] protocol = {task.protocol!r}; expected train_dev_test|kfold"
        )
    if (task.dataset is None) == (task.train is None and task.test is None):
        raise ValueError(f"{path}: [task] needs either dataset or train/dev/test files")
    variant = parts["model"].variant
    if variant not in MODELS:
        raise ValueError(f"{path}: [model] variant = {variant!r}; expected one of {sorted(MODELS)}")
    return GenomicTask(parts["task"], parts["model"], parts["training"], path)


def _read(path: Path) -> list[SequenceRecord]:
    records = read_sequences(path)
    missing = [r.id for r in records if r.label is None]
    if missing:
        raise ValueError(f"{path}: records without a label, e.g. {missing[:3]}")
    return records


def load_splits(task: GenomicTask) -> dict[str, list[SequenceRecord]]:
    """The task's labelled records per split (``test`` only, for a K-fold task)."""
    spec = task.task
    if spec.dataset is not None:
        manifest = load_manifest(spec.dataset)
        files = {name: info.file for name, info in manifest.splits.items()}
    else:
        base = task.source.parent if task.source else Path.cwd()
        files = {n: base / getattr(spec, n) for n in ("train", "dev", "test") if getattr(spec, n)}
    splits = {name: _read(Path(file)) for name, file in files.items()}
    _check_labels(splits, files)
    return splits


def _check_labels(splits: dict[str, list[SequenceRecord]], files: dict[str, Path]) -> None:
    """Labels are 0..K-1, and dev/test hold no label that training never saw."""
    known = {r.label for r in splits.get("train", [])}
    for name, records in splits.items():
        for record in records:
            if record.label < 0:
                raise ValueError(f"{files[name]}: record {record.id} has label {record.label} < 0")
            if known and record.label not in known:
                raise ValueError(
                    f"{files[name]}: record {record.id} has label {record.label}, which the "
                    f"training split does not have (it has {sorted(known)})"
                )


def _encode(records: list[SequenceRecord]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokenizer = NucleotideTokenizer()
    ids, mask = pad_batch([tokenizer.encode(r.sequence) for r in records], tokenizer.pad_id)
    return ids, mask, torch.tensor([r.label for r in records])


def _build_model(task: GenomicTask, num_classes: int) -> DNAClassifier:
    spec = task.model
    memory_args = dict(spec.memory)
    preset = memory_args.pop("preset", "titans")
    memory = MemoryConfig.preset(preset, **memory_args)
    config_class = MODELS[spec.variant].config_class
    backbone = config_class(
        dim=spec.dim, depth=spec.depth, memory=memory, bidirectional=spec.bidirectional
    )
    return DNAClassifier(backbone, num_classes)


def train_and_select(
    task: GenomicTask,
    splits: dict[str, list[SequenceRecord]],
    seed: int,
) -> dict[str, float]:
    """One run of the Titans classifier: train, select the epoch on dev, test once."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_records = splits["train"]
    cfg = task.training
    if cfg.max_train and len(train_records) > cfg.max_train:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(train_records), size=cfg.max_train, replace=False)
        train_records = [train_records[i] for i in sorted(pick)]
    labels_all = [r.label for s in splits.values() for r in s]
    num_classes = max(2, int(max(labels_all)) + 1)
    model = _build_model(task, num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    ids, mask, labels = _encode(train_records)
    dev, test = _encode(splits["dev"]), _encode(splits["test"])

    def train_epoch(epoch: int) -> None:
        model.train()
        for batch in torch.randperm(len(labels), generator=gen).split(cfg.batch_size):
            x = ids[batch]
            if cfg.rc_augment:
                x = model.rc_augment(x, mask[batch], gen)
            loss = torch.nn.functional.cross_entropy(model(x, mask[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def evaluate(data: tuple[torch.Tensor, ...]) -> dict[str, float]:
        model.eval()
        x, m, y = data
        probs = torch.cat(
            [model.predict_proba(x[i], m[i]) for i in torch.arange(len(y)).split(256)]
        )
        return classification_metrics(y.numpy(), probs.numpy())

    selection = select_on_dev(
        cfg.epochs,
        train_epoch,
        score_dev=lambda: evaluate(dev)["accuracy"],
        snapshot=lambda: copy.deepcopy(model.state_dict()),
        restore=model.load_state_dict,
        evaluate_test=lambda: evaluate(test),
    )
    return {**selection.test_metrics, "best_epoch": float(selection.best_epoch)}


def run_task(path: str | Path, out_dir: str | Path = "runs") -> dict[str, Any]:
    """Run a task file; write ``<out_dir>/<name>/results.json`` and ``runs.csv``; return them."""
    task = load_task(path)
    splits = load_splits(task)
    runs: list[dict[str, float]] = []
    spec = task.task
    if spec.protocol == "train_dev_test":
        missing = sorted({"train", "dev", "test"} - set(splits))
        if missing:
            raise ValueError(f"{task.source}: protocol train_dev_test needs splits {missing}")
        for seed in spec.seeds:
            runs.append({"seed": float(seed), **train_and_select(task, splits, seed)})
    else:
        records = splits["test"] if "test" in splits else splits["train"]
        labels = [r.label for r in records]
        seed = spec.seeds[0]
        for fold, (train_idx, test_idx) in enumerate(stratified_folds(labels, spec.folds, seed)):
            rng = np.random.default_rng(seed + fold)
            train_idx = rng.permutation(train_idx)
            n_dev = max(1, len(train_idx) // 10)
            fold_splits = {
                "train": [records[i] for i in train_idx[n_dev:]],
                "dev": [records[i] for i in train_idx[:n_dev]],
                "test": [records[i] for i in test_idx],
            }
            runs.append({"fold": float(fold), **train_and_select(task, fold_splits, seed)})
    metrics = [
        {k: v for k, v in r.items() if k not in ("seed", "fold", "best_epoch")} for r in runs
    ]
    result = {
        "task": asdict(task.task),
        "model": asdict(task.model),
        "training": asdict(task.training),
        "protocol": spec.protocol
        + (
            f" (stratified {spec.folds}-fold on the test split)" if spec.protocol == "kfold" else ""
        ),
        "runs": runs,
        "summary": summarize(metrics),
    }
    directory = Path(out_dir) / spec.name
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / "results.json", json.dumps(result, indent=2))
    with open(directory / "runs.csv.tmp", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(runs[0]))
        writer.writeheader()
        writer.writerows(runs)
    (directory / "runs.csv.tmp").replace(directory / "runs.csv")
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def format_summary(result: dict[str, Any]) -> str:
    """One line per metric: mean +- std over the runs."""
    lines = [f"{result['task']['name']}: {result['protocol']}, {len(result['runs'])} run(s)"]
    for name, stats in result["summary"].items():
        lines.append(f"  {name:>8}: {stats['mean']:.4f} +- {stats['std']:.4f}")
    return "\n".join(lines)
