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
    stem_kernel = 9             # convolutional stem over 9 bases (0: none)
    pool = "max"                # head pooling: max | mean
    memory = { preset = "titans", num_heads = 4, head_dim = 16, chunk_size = 16 }

    [training]                  # for the Titans classifier and the CNN baseline alike
    epochs = 5
    batch_size = 32
    lr = 1e-3
    max_train = 0               # 0: every training sequence
    rc_augment = true

    [baselines]                 # run side by side on the same splits
    kmer_lr = true              # 4-mer frequencies + logistic regression (C chosen on dev)
    cnn = true                  # a small CNN (titans_sci.models.baselines.SmallCNN)

Protocol ``train_dev_test``: train on train, keep the epoch with the best dev accuracy, report
test once, for every seed; ``kfold``: stratified K-fold on the only split, the held-out fold as
test and a seeded 10% of the rest as dev. Results are summarised as mean and std over seeds (or
folds) and written to the run directory as JSON and CSV.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from titans_sci._results import write_config, write_results
from titans_sci._toml import read_tables
from titans_sci.api import save_model
from titans_sci.data.dna import (
    NucleotideTokenizer,
    SequenceRecord,
    pad_batch,
    read_sequences,
    reverse_complement_ids,
)
from titans_sci.data.registry import load_manifest
from titans_sci.distributed import is_main
from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.evaluation.protocol import stratified_folds, summarize
from titans_sci.heads.classification import average_probabilities
from titans_sci.models import MODELS, backbone_config
from titans_sci.models.baselines import KmerLogisticRegression, SmallCNN
from titans_sci.models.dna_classifier import DNAClassifier
from titans_sci.train import TrainConfig, Trainer


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str = "classification"
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
    stem_kernel: int = 9
    pool: str = "max"
    memory: dict[str, Any] = field(default_factory=lambda: {"preset": "titans"})


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    max_train: int = 0
    rc_augment: bool = True


@dataclass(frozen=True)
class BaselineSpec:
    kmer_lr: bool = True
    cnn: bool = True


@dataclass(frozen=True)
class GenomicTask:
    task: TaskSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    baselines: BaselineSpec = field(default_factory=BaselineSpec)
    source: Path | None = None


_TYPES = {
    "task": (TaskSpec, {"name": str, "kind": str, "protocol": str, "folds": int, "seeds": list}),
    "model": (ModelSpec, {"variant": str, "dim": int, "depth": int, "bidirectional": bool,
                          "stem_kernel": int, "pool": str, "memory": dict}),
    "training": (TrainingSpec, {"epochs": int, "batch_size": int, "lr": float, "max_train": int,
                                "rc_augment": bool}),
    "baselines": (BaselineSpec, {"kmer_lr": bool, "cnn": bool}),
}  # fmt: skip


def load_task(path: str | Path) -> GenomicTask:
    """Read and check a task file: unknown tables or keys and wrong types name the file and key."""
    path = Path(path)
    parts = read_tables(path, _TYPES, kind="classification")
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
    return GenomicTask(parts["task"], parts["model"], parts["training"], parts["baselines"], path)


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
        if manifest.kind != "dna":
            raise ValueError(f"data set {spec.dataset!r} is {manifest.kind}, not DNA sequences")
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
    backbone = backbone_config(
        spec.variant, spec.memory, dim=spec.dim, depth=spec.depth, bidirectional=spec.bidirectional
    )
    return DNAClassifier(backbone, num_classes, stem_kernel=spec.stem_kernel, pool=spec.pool)


def _subsample(records: list[SequenceRecord], limit: int, seed: int) -> list[SequenceRecord]:
    if not limit or len(records) <= limit:
        return records
    pick = np.random.default_rng(seed).choice(len(records), size=limit, replace=False)
    return [records[i] for i in sorted(pick)]


def _num_classes(splits: dict[str, list[SequenceRecord]]) -> int:
    return max(2, max(r.label for records in splits.values() for r in records) + 1)


def train_and_select(
    task: GenomicTask,
    splits: dict[str, list[SequenceRecord]],
    seed: int,
    model: nn.Module,
    directory: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """Train a neural classifier (``model(ids, mask) -> logits``), keep the epoch with the best
    dev accuracy, test once. RC augmentation in training (if set) and both strands averaged in
    evaluation, for every model alike. With ``directory``, checkpoint every epoch there (and
    with ``resume``, continue from the checkpoint)."""
    torch.manual_seed(seed)
    cfg = task.training
    tokenizer = NucleotideTokenizer()
    ids, mask, labels = _encode(_subsample(splits["train"], cfg.max_train, seed))
    dev, test = _encode(splits["dev"]), _encode(splits["test"])

    def batches(epoch: int, gen: torch.Generator):
        for batch in torch.randperm(len(labels), generator=gen).split(cfg.batch_size):
            x, m = ids[batch], mask[batch]
            if cfg.rc_augment:
                flip = torch.rand(len(batch), generator=gen) < 0.5
                x = torch.where(flip[:, None], reverse_complement_ids(x, tokenizer, m), x)
            yield x, m, labels[batch]

    def loss(batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        x, m, y = batch
        return nn.functional.cross_entropy(model(x, m), y)

    @torch.no_grad()
    def evaluate(data: tuple[Tensor, ...]) -> dict[str, float]:
        model.eval()
        x, m, y = data
        probs = []
        for i in torch.arange(len(y)).split(256):
            rc = reverse_complement_ids(x[i], tokenizer, m[i])
            probs.append(average_probabilities(model(x[i], m[i]), model(rc, m[i])))
        return classification_metrics(y.numpy(), torch.cat(probs).numpy())

    trainer = Trainer(model, TrainConfig(cfg.epochs, cfg.lr), seed, directory, progress)
    result = trainer.fit(batches, loss, lambda: evaluate(dev)["accuracy"], resume)
    metrics = {**evaluate(test), "best_epoch": float(result.best_epoch)}
    if directory is not None and isinstance(model, DNAClassifier):
        meta = {"task": task.task.name, "dataset": task.task.dataset, "seed": seed, **metrics}
        save_model(directory / "model", model, meta)
    return metrics


def kmer_baseline(
    task: GenomicTask, splits: dict[str, list[SequenceRecord]], seed: int
) -> dict[str, float]:
    """k-mer (k=4) frequencies + logistic regression; the inverse regularisation C is chosen on
    dev among 0.1, 1 and 10, then the test set is evaluated once."""
    train = _subsample(splits["train"], task.training.max_train, seed)

    def fit(c: float) -> KmerLogisticRegression:
        return KmerLogisticRegression(k=4, C=c).fit(
            [r.sequence for r in train], [r.label for r in train]
        )

    def score(model: KmerLogisticRegression, records: list[SequenceRecord]) -> dict[str, float]:
        probs = model.predict_proba([r.sequence for r in records])
        return classification_metrics(np.array([r.label for r in records]), probs)

    fitted = {c: fit(c) for c in (0.1, 1.0, 10.0)}
    best = max(fitted, key=lambda c: score(fitted[c], splits["dev"])["accuracy"])
    return {**score(fitted[best], splits["test"]), "C": best}


def _runs_of_one_split(
    task: GenomicTask,
    splits: dict[str, list[SequenceRecord]],
    seed: int,
    checkpoints: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Titans and the baselines on one split; neural models checkpoint under
    ``checkpoints/<model>`` when given."""
    classes = _num_classes(splits)

    def place(model: str) -> Path | None:
        return None if checkpoints is None else checkpoints / model

    torch.manual_seed(seed)  # each model's initialisation depends on the seed alone
    titans = _build_model(task, classes)
    runs = [
        {
            "model": "titans",
            **train_and_select(task, splits, seed, titans, place("titans"), resume, progress),
        }
    ]
    if task.baselines.kmer_lr:
        runs.append({"model": "kmer_lr", **kmer_baseline(task, splits, seed)})
    if task.baselines.cnn:
        torch.manual_seed(seed)
        cnn = SmallCNN(NucleotideTokenizer().vocab_size, classes)
        metrics = train_and_select(task, splits, seed, cnn, place("cnn"), resume, progress)
        runs.append({"model": "cnn", **metrics})
    return runs


def run_task(
    path: str | Path, out_dir: str | Path = "runs", resume: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Run a task file (the Titans classifier and the baselines on the same splits); write
    ``<out_dir>/<name>/results.json`` and ``runs.csv``; return the results. Every neural
    training run checkpoints under ``<out_dir>/<name>/checkpoints/``; ``resume`` continues an
    interrupted task from there and reaches the numbers of an uninterrupted one."""
    return run(load_task(path), out_dir, resume, progress)


def run(
    task: GenomicTask, out_dir: str | Path = "runs", resume: bool = False, progress: bool = False
) -> dict[str, Any]:
    """:func:`run_task` for a task built in code."""
    checkpoints = Path(out_dir) / task.task.name / "checkpoints"
    write_config(checkpoints.parent, task)
    splits = load_splits(task)
    runs: list[dict[str, Any]] = []
    spec = task.task
    if spec.protocol == "train_dev_test":
        missing = sorted({"train", "dev", "test"} - set(splits))
        if missing:
            raise ValueError(f"{task.source}: protocol train_dev_test needs splits {missing}")
        for seed in spec.seeds:
            place = checkpoints / f"seed{seed}"
            one = _runs_of_one_split(task, splits, seed, place, resume, progress)
            runs += [{"seed": seed, **r} for r in one]
        protocol = f"train / select on dev / test once, seeds {spec.seeds}"
    else:
        records = splits["test"] if "test" in splits else splits["train"]
        seed = spec.seeds[0]
        folds = stratified_folds([r.label for r in records], spec.folds, seed)
        for fold, (train_idx, test_idx) in enumerate(folds):
            train_idx = np.random.default_rng(seed + fold).permutation(train_idx)
            n_dev = max(1, len(train_idx) // 10)
            fold_splits = {
                "train": [records[i] for i in train_idx[n_dev:]],
                "dev": [records[i] for i in train_idx[:n_dev]],
                "test": [records[i] for i in test_idx],
            }
            if fold == 0:
                first_fold_test = fold_splits["test"]
            place = checkpoints / f"fold{fold}"
            one = _runs_of_one_split(task, fold_splits, seed, place, resume, progress)
            runs += [{"fold": fold, **r} for r in one]
        protocol = (
            f"stratified {spec.folds}-fold cross-validation on the test split "
            "(10% of each training part as dev)"
        )
    summary = {}
    for name in dict.fromkeys(r["model"] for r in runs):
        metrics = [{k: r[k] for k in _METRICS} for r in runs if r["model"] == name]
        summary[name] = summarize(metrics)
    result = {
        "task": asdict(task.task),
        "model": asdict(task.model),
        "training": asdict(task.training),
        "baselines": asdict(task.baselines),
        "protocol": protocol,
        "runs": runs,
        "summary": summary,
    }
    first_test = splits["test"] if spec.protocol == "train_dev_test" else first_fold_test
    if is_main():
        write_report(Path(out_dir) / spec.name, result, first_test)
    write_results(Path(out_dir) / spec.name, result, runs)
    return result


_METRICS = ("accuracy", "mcc", "f1", "auroc")


def write_report(directory: Path, result: dict[str, Any], test: list[SequenceRecord]) -> Path:
    """``report.md`` with learning curves, the first Titans model's confusion matrix and ROC
    on its test split, and its memory's surprise along the first test sequence."""
    from titans_sci import report
    from titans_sci.api import load

    figures = {}
    curves = report.learning_curves(directory / "checkpoints", directory / "learning_curves.png")
    if curves is not None:
        figures["Learning curves"] = curves
    models = sorted((directory / "checkpoints").glob("*/titans/model"))
    if models:
        model = load(models[0])
        table = model.predict([r.sequence for r in test])
        probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
        labels = np.array([r.label for r in test])
        figures[f"Test predictions ({models[0].parent.parent.name})"] = report.confusion_and_roc(
            labels, probs, directory / "test_predictions.png"
        )
        first = test[0]
        figures["The memory's surprise along a test sequence"] = report.surprise_trace(
            model.surprise(first.sequence),
            directory / "surprise.png",
            f"surprise along test record {first.id} (label {first.label})",
            list(first.sequence),
        )
    return report.write_report(
        directory, result["task"]["name"], format_summary(result).splitlines(), figures
    )


def format_summary(result: dict[str, Any]) -> str:
    """Per model, one line per metric: mean +- std over the runs."""
    lines = [f"{result['task']['name']}: {result['protocol']}"]
    for model, metrics in result["summary"].items():
        cells = ", ".join(f"{n} {s['mean']:.4f} +- {s['std']:.4f}" for n, s in metrics.items())
        lines.append(f"  {model:>8}: {cells}")
    return "\n".join(lines)
