"""Genomic sequence classification as a task kind: the Titans classifier, a small CNN and a
k-mer logistic regression on the same splits.

Protocol ``train_dev_test``: train on train, keep the epoch with the best dev accuracy, test
once, for every seed. ``kfold``: stratified K-fold on the only split (test, else train), the
held-out fold as test and a seeded 10% of the rest as dev, with the first seed. Reverse-
complement augmentation in training (``training.rc_augment``) and both strands averaged in
evaluation, for every neural model alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from titans_sci import report
from titans_sci.data.dna import SequenceRecord, read_sequences
from titans_sci.data.registry import load_manifest
from titans_sci.data.tokens import NucleotideTokenizer, pad_batch
from titans_sci.evaluation.metrics import UNDEFINED, classification_metrics
from titans_sci.evaluation.protocol import stratified_folds, summarize, summary_lines
from titans_sci.modelfolder import WEIGHTS, init_from_pretrained
from titans_sci.models.baselines import KmerLogisticRegression, SmallCNN
from titans_sci.models.dna_classifier import DNAClassifier, both_strands, random_strands
from titans_sci.tasks.config import ClassificationTask
from titans_sci.tasks.kind import TITANS, Unit

METRICS = ("accuracy", "mcc", "f1", "auroc")


@dataclass(frozen=True)
class Encoded:
    """Sequences as padded ids ``[N, T]``, mask ``[N, T]`` and labels ``[N]``."""

    records: list[SequenceRecord]
    ids: Tensor
    mask: Tensor
    labels: Tensor

    @classmethod
    def of(cls, records: list[SequenceRecord]) -> Encoded:
        tokenizer = NucleotideTokenizer()
        ids, mask = pad_batch([tokenizer.encode(r.sequence) for r in records], tokenizer.pad_id)
        return cls(records, ids, mask, torch.tensor([r.label for r in records]))


class Classification:
    """The :class:`~titans_sci.tasks.runner.TaskKind` of a :class:`ClassificationTask`."""

    undefined = UNDEFINED

    def __init__(self, task: ClassificationTask) -> None:
        self.task = task
        self.files = _files(task)
        self.splits = {name: _read(path) for name, path in self.files.items()}
        _check_labels(self.splits, self.files)
        self.num_classes = max(2, max(_label(r) for s in self.splits.values() for r in s) + 1)
        protocol = task.protocol
        if protocol.split == "kfold":
            _check_kfold(self.splits, self.files, protocol.folds)
        if protocol.split == "train_dev_test":
            missing = sorted({"train", "dev", "test"} - set(self.splits))
            if missing:
                raise ValueError(f"{task.name}: protocol split train_dev_test needs {missing}")
            self.protocol = (
                f"train / select on dev accuracy / test once, seeds {list(protocol.seeds)}"
            )
        else:
            self.protocol = (
                f"stratified {protocol.folds}-fold cross-validation on the "
                f"{'test' if 'test' in self.splits else 'train'} split (10% of each training "
                f"part as dev), seed {protocol.seeds[0]}"
                + (f", folds {list(protocol.run_folds)} of them" if protocol.run_folds else "")
            )

    def data_files(self) -> dict[str, Path]:
        init = self.task.training.init
        return self.files if init is None else {**self.files, "init": Path(init) / WEIGHTS}

    def units(self) -> Iterator[Unit]:
        protocol = self.task.protocol
        if protocol.split == "train_dev_test":
            for seed in protocol.seeds:
                yield self._unit({"seed": seed}, seed, self.splits)
            return
        records = self.splits.get("test") or self.splits["train"]
        seed = protocol.seeds[0]
        folds = stratified_folds([_label(r) for r in records], protocol.folds, seed)
        for fold, (train, test) in enumerate(folds):
            if protocol.run_folds and fold not in protocol.run_folds:
                continue
            train = np.random.default_rng(seed + fold).permutation(train)
            n_dev = max(1, len(train) // 10)
            parts = {
                "train": [records[i] for i in train[n_dev:]],
                "dev": [records[i] for i in train[:n_dev]],
                "test": [records[i] for i in test],
            }
            yield self._unit({"fold": fold}, seed, parts)

    def _unit(self, labels: dict[str, int], seed: int, parts: dict[str, list]) -> Unit:
        data = self.task.data
        train = _subsample(parts["train"], data.max_train, seed)
        if len({_label(r) for r in train}) < 2:
            raise ValueError(
                f"{self.task.name} ({', '.join(f'{k} {v}' for k, v in labels.items())}): the "
                f"training part holds {len(train)} record(s) of a single class "
                f"(data.max_train = {data.max_train}); a classifier needs two classes to learn "
                "from: raise max_train (0: every record)"
            )
        encoded = {
            "train": Encoded.of(train),
            "dev": Encoded.of(_subsample(parts["dev"], data.max_eval, seed)),
            "test": Encoded.of(_subsample(parts["test"], data.max_eval, seed)),
        }
        return Unit(labels, seed, encoded)

    def models(self, unit: Unit) -> dict[str, Callable[[], nn.Module]]:
        config = replace(self.task.model, num_classes=self.num_classes)
        init = self.task.training.init

        def titans() -> nn.Module:
            model = DNAClassifier(config)
            return model if init is None else init_from_pretrained(model, init)

        models: dict[str, Callable[[], nn.Module]] = {TITANS: titans}
        if self.task.baselines.cnn:
            vocab = NucleotideTokenizer().vocab_size
            models["cnn"] = lambda: SmallCNN(vocab, self.num_classes)
        return models

    def batches(self, unit: Unit, model: nn.Module):
        train: Encoded = unit.data["train"]
        training = self.task.training

        def batches(epoch: int, generator: torch.Generator):
            order = torch.randperm(len(train.labels), generator=generator)
            for batch in order.split(training.batch_size):
                ids, mask = train.ids[batch], train.mask[batch]
                if training.rc_augment:
                    ids = random_strands(ids, mask, generator)
                yield ids, mask, train.labels[batch]

        return batches

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        ids, mask, labels = batch
        return nn.functional.cross_entropy(model(ids, mask), labels)

    def _probabilities(self, model: nn.Module, data: Encoded) -> np.ndarray:
        model.eval()
        parts = [
            both_strands(model, data.ids[i], data.mask[i])
            for i in torch.arange(len(data.labels)).split(256)
        ]
        return torch.cat(parts).numpy()

    def score_dev(self, model: nn.Module, unit: Unit) -> float:
        dev: Encoded = unit.data["dev"]
        accuracy = classification_metrics(dev.labels.numpy(), self._probabilities(model, dev))[
            "accuracy"
        ]
        assert accuracy is not None  # only the AUROC can be undefined
        return accuracy

    def evaluate(self, model: nn.Module, unit: Unit) -> tuple[dict[str, Any], np.ndarray]:
        test: Encoded = unit.data["test"]
        probabilities = self._probabilities(model, test)
        return classification_metrics(test.labels.numpy(), probabilities), probabilities

    def model_meta(self, unit: Unit) -> dict[str, Any]:
        train: Encoded = unit.data["train"]
        meta: dict[str, Any] = {
            "dataset": self.task.data.dataset,
            "classes": list(range(self.num_classes)),
            # the length variant effects read around each variant (titans-sci variants)
            "sequence_length": int(np.median([len(r.sequence) for r in train.records])),
        }
        if self.task.protocol.split == "kfold":  # evaluate scores only its held-out fold
            meta["cross_validation"] = {"folds": self.task.protocol.folds, "seed": unit.seed}
        return meta

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        if not self.task.baselines.kmer_lr:
            return []
        return [{**unit.labels, "model": "kmer_lr", **_kmer_baseline(unit.data)}]

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        summary = {}
        for model in dict.fromkeys(r["model"] for r in rows):
            summary[model] = summarize(
                [{k: r[k] for k in METRICS} for r in rows if r["model"] == model]
            )
        return summary

    def format_summary(self, result: dict[str, Any]) -> str:
        return summary_lines(result, 8)

    def figures(
        self, model: nn.Module, unit: Unit, probabilities: np.ndarray, folder: Path
    ) -> dict[str, Path]:
        assert isinstance(model, DNAClassifier)  # the first Titans model (see TaskKind.figures)
        test: Encoded = unit.data["test"]
        first = test.records[0]
        ids = test.ids[:1, : len(first.sequence)]
        trace = model.surprise(ids)[0].numpy()
        return {
            f"Test predictions ({unit.folder})": report.confusion_and_roc(
                test.labels.numpy(), probabilities, folder / "test_predictions.png"
            ),
            "The memory's surprise along a test sequence": report.surprise_trace(
                trace,
                folder / "surprise.png",
                f"surprise along test record {first.id} (label {first.label})",
                list(first.sequence),
            ),
        }


def _files(task: ClassificationTask) -> dict[str, Path]:
    data = task.data
    if data.dataset is None:
        files = {n: Path(getattr(data, n)) for n in ("train", "dev", "test") if getattr(data, n)}
        for a, b in itertools.combinations(files, 2):
            if files[a].exists() and files[b].exists() and files[a].samefile(files[b]):
                raise ValueError(
                    f"{files[b]}: is both the {a} and the {b} split; a score on records the "
                    "model was trained or selected on says nothing of new data: give each "
                    "split its own records"
                )
        return files
    manifest = load_manifest(data.dataset)
    if manifest.kind != "dna":
        raise ValueError(f"data set {data.dataset!r} is {manifest.kind}, not DNA sequences")
    return {name: Path(info.file) for name, info in manifest.splits.items()}


def _read(path: Path) -> list[SequenceRecord]:
    records = read_sequences(path)
    missing = [r.id for r in records if r.label is None]
    if missing:
        raise ValueError(f"{path}: records without a label, e.g. {missing[:3]}")
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def _check_labels(splits: dict[str, list[SequenceRecord]], files: dict[str, Path]) -> None:
    """Labels are 0..K-1, each of them in the training data (the only split, for k-fold), and
    dev/test hold no label that training never saw."""
    first = "train" if "train" in splits else next(iter(splits))
    seen = sorted({_label(r) for r in splits[first]})
    if seen and seen != list(range(seen[-1] + 1)):
        absent = sorted(set(range(seen[-1] + 1)) - set(seen))
        shown = ", ".join(map(str, seen[:6])) + (", ..." if len(seen) > 6 else "")
        raise ValueError(
            f"{files[first]}: the labels are {{{shown}}}, but a task's classes are numbered "
            f"0..K-1 and class {absent[0]} never occurs; renumber them 0..{len(seen) - 1}"
        )
    known = {_label(r) for r in splits.get("train", [])}
    for name, records in splits.items():
        for record in records:
            label = _label(record)
            if label < 0:
                raise ValueError(f"{files[name]}: record {record.id} has label {label} < 0")
            if known and label not in known:
                raise ValueError(
                    f"{files[name]}: record {record.id} has label {label}, which the "
                    f"training split does not have (it has {sorted(known)})"
                )


def _check_kfold(
    splits: dict[str, list[SequenceRecord]], files: dict[str, Path], folds: int
) -> None:
    """K-fold cross-validates one file; every class needs a record in each fold."""
    if len(splits) > 1:
        raise ValueError(
            f"protocol split = 'kfold' cross-validates one file, but the task gives "
            f"{', '.join(sorted(splits))}; give only test (or train), or use split = "
            "'train_dev_test'"
        )
    ((name, records),) = splits.items()
    counts = np.bincount([_label(r) for r in records])
    smallest = int(counts.argmin())
    if counts[smallest] < folds:
        raise ValueError(
            f"{files[name]}: class {smallest} has {counts[smallest]} record(s), fewer than "
            f"folds = {folds}, so some folds would not hold it; lower protocol.folds"
        )


def _label(record: SequenceRecord) -> int:
    """The label of a record of a task's splits (:func:`_read` refuses records without one)."""
    assert record.label is not None
    return record.label


def _subsample(records: list[SequenceRecord], limit: int, seed: int) -> list[SequenceRecord]:
    if not limit or len(records) <= limit:
        return records
    pick = np.random.default_rng(seed).choice(len(records), size=limit, replace=False)
    return [records[i] for i in sorted(pick)]


def _kmer_baseline(data: dict[str, Encoded]) -> dict[str, Any]:
    """4-mer frequencies + logistic regression; C chosen on dev among 0.1, 1 and 10, then the
    test set evaluated once."""

    def sequences(part: Encoded) -> list[str]:
        return [r.sequence for r in part.records]

    def score(model: KmerLogisticRegression, part: Encoded) -> dict[str, Any]:
        return classification_metrics(part.labels.numpy(), model.predict_proba(sequences(part)))

    train = data["train"]
    fitted = {
        c: KmerLogisticRegression(k=4, C=c).fit(sequences(train), train.labels.tolist())
        for c in (0.1, 1.0, 10.0)
    }
    best = max(fitted, key=lambda c: score(fitted[c], data["dev"])["accuracy"])
    return {**score(fitted[best], data["test"]), "C": best}
