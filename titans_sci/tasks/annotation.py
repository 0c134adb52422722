"""Genome annotation as a task kind: per seed, the Titans annotator (and, in the same run, the
CNN and sliding-window-attention annotators) trained on whole training chromosomes, selected on
the dev chromosomes, scored once on the test chromosomes; AUGUSTUS beside them.

Protocol: chromosome splits, so no test base is seen in training or selection. Training reads
stretches of the training chromosomes (:class:`Stretches`). Dev score: CDS base-level F1 (coding
bases on the right strand). Test: every base of every test chromosome, each read whole in both
directions in one streaming pass (:func:`~titans_sci.models.genome_annotator.stream_logits`),
its labels the valid gene structure the logits like best
(:func:`~titans_sci.models.gene_structure.decode_labels`); base-level precision, recall, F1
and MCC per label, and exon-level and exact-CDS scores of the genes the labels show
(:func:`~titans_sci.data.annotation.features_from_labels`); the headline scores also of each
base's highest logit alone (``<score>_argmax``), to show what decoding adds; for the Titans
model also with its memory reset every ``protocol.reset_every`` bases (the context curve).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from titans_sci import report
from titans_sci.data.annotation import (
    LABELS,
    AnnotatedSequence,
    Feature,
    features_from_labels,
    label_track,
    read_annotated,
)
from titans_sci.data.dna import base_codes
from titans_sci.data.registry import load_manifest
from titans_sci.evaluation.annotation import annotation_metrics, confusion
from titans_sci.evaluation.protocol import summarize, summary_lines
from titans_sci.models.augustus import augustus_version, run_augustus
from titans_sci.models.gene_structure import decode_labels
from titans_sci.models.genome_annotator import (
    AnnotatorConfig,
    BranchState,
    GenomeAnnotator,
    Mixer,
    combine,
    reverse_complement_codes,
    stream_logits,
)
from titans_sci.tasks.config import AnnotationTask
from titans_sci.tasks.kind import TITANS, Unit

#: The models of a run, by name, and the mixer each reads with.
MIXERS: dict[str, Mixer] = {TITANS: "memory", "cnn": "conv", "attention": "attention"}
#: The scores of the summary and the report.
HEADLINE = ("cds_f1", "exon_f1", "cds_exact_f1", "mcc", "intron_f1", "rna_f1")


@dataclass(frozen=True)
class Chromosome:
    """One chromosome as the task uses it: its ``name`` in the task, its record ``id``, base
    ``codes [L]`` and ``labels [L]`` (uint8), and its annotated ``features``."""

    name: str
    id: str
    codes: np.ndarray
    labels: np.ndarray
    features: tuple[Feature, ...]

    @classmethod
    def of(cls, name: str, record: AnnotatedSequence, limit: int) -> Chromosome:
        """``record`` as a chromosome, cut to its first ``limit`` bases (0: whole)."""
        codes = base_codes(record.sequence)
        labels = record.labels()
        features = record.features
        if limit and limit < len(codes):
            codes, labels = codes[:limit], labels[:limit]
            features = tuple(f for f in features if f.stop <= limit)
        return cls(name, record.id, codes, labels, features)


def genome_files(task: AnnotationTask) -> list[Path]:
    """The annotated files of the task's genome (GenBank, or one FASTA file)."""
    data = task.data
    return [Path(f) for f in data.files] if data.genome is None else bundled_genome(data.genome)


def bundled_genome(name: str) -> list[Path]:
    """The GenBank files of the bundled genome ``name`` (``titans_sci.data.registry``)."""
    manifest = load_manifest(name)
    if manifest.kind != "genome":
        raise ValueError(f"data set {name!r} is {manifest.kind}, not an annotated genome")
    return [info.file for info in manifest.splits.values()]


def chromosome_name(path: Path) -> str:
    """The name a chromosome of a one-record file goes by: the file's name without its
    suffixes (``chr14`` for ``chr14.gb.gz``)."""
    return path.name.split(".")[0]


def read_genome(
    files: list[Path], gff3: str | None
) -> tuple[dict[str, AnnotatedSequence], dict[str, str]]:
    """The annotated records of ``files`` by id, and the other names they go by (a one-record
    file's :func:`chromosome_name`: its record's id). A record id in two files is refused."""
    records: dict[str, AnnotatedSequence] = {}
    aliases: dict[str, str] = {}
    for file in files:
        found = read_annotated(file, gff3)
        for record in found:
            if record.id in records:
                raise ValueError(f"{file}: record {record.id!r} is in {records[record.id].source}")
            records[record.id] = record
        if len(found) == 1:
            aliases[chromosome_name(file)] = found[0].id
    return records, aliases


def load_splits(task: AnnotationTask) -> dict[str, list[Chromosome]]:
    """The ``train``, ``dev`` and ``test`` chromosomes of the task, each read once."""
    data = task.data
    records, aliases = read_genome(genome_files(task), data.gff3)
    known = {**{r: r for r in records}, **aliases}
    named = {"dev": data.dev, "test": data.test}
    for split, names in (("train", data.train), *named.items()):
        for name in names:
            if name not in known:
                shown = ", ".join(sorted(aliases) or sorted(records))
                raise ValueError(
                    f"data.{split}: no chromosome {name!r} in the genome (it has {shown})"
                )
    taken = {known[n] for names in named.values() for n in names}
    if data.train:
        train = list(data.train)
        if taken & {known[n] for n in train}:
            raise ValueError("data.train names a dev or test chromosome (by another name)")
    else:
        by_id = {v: k for k, v in aliases.items()}
        train = [by_id.get(r, r) for r in records if r not in taken]
        if not train:
            raise ValueError("no chromosome is left to train on: every one is dev or test")
    splits = {"train": train, **{k: list(v) for k, v in named.items()}}
    return {
        split: [
            Chromosome.of(
                n, records[known[n]], data.max_train if split == "train" else data.max_eval
            )
            for n in names
        ]
        for split, names in splits.items()
    }


class Stretches:
    """Training batches of one model: every ``stretch`` bases of every training chromosome.

    At the start of each epoch a pass without gradients reads every training chromosome in both
    directions with the model as it is, keeping each reading's state where it enters each
    stretch. A batch is one stretch: each reading starts from its kept state, the two are added
    (:func:`~titans_sci.models.genome_annotator.combine`) and the loss is the cross-entropy of
    every base's label. Each reading cuts its patches from its own start (the reverse reading
    from the chromosome's far end), as a whole-chromosome pass does, so a stretch's logits are
    exactly that pass's (tested); the reverse reading enters a stretch at its nearest patch
    boundary and reads the few bases to the stretch's end beside it.
    """

    def __init__(self, model: GenomeAnnotator, chromosomes: list[Chromosome], stretch: int):
        patch = model.config.patch
        if stretch % patch:
            raise ValueError(
                f"training.stretch = {stretch} is not a multiple of model.patch = {patch}"
            )
        self.model, self.patch = model, patch
        self.codes = [torch.from_numpy(c.codes.astype(np.int64)) for c in chromosomes]
        self.labels = [torch.from_numpy(c.labels.astype(np.int64)) for c in chromosomes]
        self.items: list[tuple[int, int, int]] = []  # (chromosome, start, stop)
        for index, codes in enumerate(self.codes):
            length = len(codes)
            self.items += [(index, a, min(a + stretch, length)) for a in range(0, length, stretch)]
        self.states: list[tuple[BranchState | None, BranchState | None]] = []

    def _backward_span(self, index: int) -> tuple[int, int]:
        """Where the reverse reading reads stretch ``index`` (reverse-complement positions):
        from the patch boundary at or before the stretch's end to the one at or after its
        start (the chromosome's far end at most)."""
        chromosome, a, b = self.items[index]
        length, p = len(self.codes[chromosome]), self.patch
        return (length - b) // p * p, min(-(-(length - a) // p) * p, length)

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[int]:
        self.refresh()
        yield from torch.randperm(len(self.items), generator=generator).tolist()

    @torch.no_grad()
    def refresh(self) -> None:
        """Each reading's state where it enters every stretch, with the model as it is now."""
        forward: dict[int, BranchState | None] = {}
        backward: dict[int, BranchState | None] = {}
        for chromosome, codes in enumerate(self.codes):
            mine = [i for i, item in enumerate(self.items) if item[0] == chromosome]
            state = None
            for i in mine:
                forward[i] = state
                _, a, b = self.items[i]
                state = self.model.branch(codes[None, a:b], state)[1].detach()
            other, state = reverse_complement_codes(codes), None
            entries = [self._backward_span(i)[0] for i in reversed(mine)] + [len(codes)]
            for i, start, stop in zip(reversed(mine), entries, entries[1:], strict=False):
                backward[i] = state
                if stop > start:
                    state = self.model.branch(other[None, start:stop], state)[1].detach()
        self.states = [(forward[i], backward[i]) for i in range(len(self.items))]

    def logits(self, index: int) -> Tensor:
        """The logits ``[b - a, K]`` of stretch ``index``'s bases ``a..b``: the first reading
        from its state at ``a``, the reverse complement's from its state where it enters."""
        chromosome, a, b = self.items[index]
        codes, length = self.codes[chromosome], len(self.codes[chromosome])
        before, after = self.states[index]
        forward, _ = self.model.branch(codes[None, a:b], before)
        start, stop = self._backward_span(index)
        other = reverse_complement_codes(codes[length - stop : length - start])
        backward, _ = self.model.branch(other[None], after)
        backward = backward[:, length - b - start : length - a - start]  # bases b-1 .. a
        return combine(forward, backward, self.model.swap)[0]

    def loss(self, index: int) -> Tensor:
        chromosome, a, b = self.items[index]
        return F.cross_entropy(self.logits(index), self.labels[chromosome][a:b])


def predict_labels(
    model: GenomeAnnotator, codes: np.ndarray, reset_every: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The label of every base ``[L]`` (uint8), the chromosome read whole in both directions:
    the decoded gene structure's, and each base's highest logit's."""
    logits = stream_logits(model, codes, reset_every=reset_every)
    return decode_labels(logits, codes), logits.argmax(axis=1).astype(np.uint8)


def score(
    chromosomes: list[Chromosome], predicted: dict[str, np.ndarray] | None = None,
    features: dict[str, list[Feature]] | None = None,
) -> dict[str, float | None]:  # fmt: skip
    """:func:`~titans_sci.evaluation.annotation.annotation_metrics` of predicted labels (by
    chromosome name; their genes decoded from them) or of predicted ``features`` (their
    labels painted from them, as for AUGUSTUS)."""
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    truth, genes = {}, {}
    for c in chromosomes:
        if features is not None:
            genes[c.name] = features[c.name]
            labels = label_track(len(c.codes), features[c.name])
        else:
            assert predicted is not None
            labels = predicted[c.name]
            genes[c.name] = features_from_labels(labels)
        matrix += confusion(c.labels, labels)
        truth[c.name] = list(c.features)
    return annotation_metrics(matrix, truth, genes)


class Annotation:
    """The :class:`~titans_sci.tasks.kind.TaskKind` of an :class:`AnnotationTask`."""

    task: AnnotationTask

    undefined = {
        "precision": "a label no base was predicted with (AUGUSTUS predicts no RNA gene)",
        "f1": "a label with neither a predicted nor a true base",
        "mcc": "a label that covers every base, or none, of the truth or the prediction",
    }

    def __init__(self, task: AnnotationTask) -> None:
        if task.model.mixer != "memory":
            raise ValueError(
                f"model.mixer = {task.model.mixer!r}: the task's Titans model reads with its "
                "memory; the CNN and attention annotators are baselines.cnn and "
                "baselines.attention"
            )
        patch = task.model.patch
        if task.training.stretch % patch:
            raise ValueError(
                f"training.stretch = {task.training.stretch} is not a multiple of model.patch "
                f"= {patch}"
            )
        bad = [n for n in task.protocol.reset_every if n % patch]
        if bad:
            raise ValueError(
                f"protocol.reset_every: {bad[0]} is not a multiple of model.patch = {patch}"
            )
        self.task = task
        self.files = genome_files(task)
        self.splits = load_splits(task)
        d = task.data
        augustus = (
            f"; {augustus_version()} with species {task.baselines.augustus_species}, whose "
            "parameters were trained on yeast genes, the test chromosomes' included"
            if task.baselines.augustus
            else ""
        )
        names = {k: [c.name for c in v] for k, v in self.splits.items()}
        every = list(task.protocol.reset_every)
        resets = f"; the memory also reset every {every} bases" if every else ""
        self.protocol = (
            f"chromosome split: train {names['train']}, dev {names['dev']}, test "
            f"{names['test']}; stretches of {task.training.stretch} bases, both directions; "
            f"seeds {list(task.protocol.seeds)}; select on dev CDS base-level F1, test once "
            "on every base of the test chromosomes, each read whole"
            f"{resets}"
            f"{augustus}"
            + (f"; training chromosomes cut to their first {d.max_train} bases"
               if d.max_train else "")
        )  # fmt: skip
        self._stretches: Stretches | None = None

    def data_files(self) -> dict[str, Path]:
        files = {f"genome {i + 1}": f for i, f in enumerate(self.files)}
        if self.task.data.gff3:
            files["gff3"] = Path(self.task.data.gff3)
        return files

    def units(self) -> Iterator[Unit]:
        for seed in self.task.protocol.seeds:
            yield Unit({"seed": seed}, seed, self.splits)

    def models(self, unit: Unit) -> dict[str, Callable[[], GenomeAnnotator]]:
        chosen = self.task.baselines
        names = [TITANS, *(n for n in ("cnn", "attention") if getattr(chosen, n))]
        configs = {n: dataclasses.replace(self.task.model, mixer=MIXERS[n]) for n in names}
        return {n: _builder(c) for n, c in configs.items()}

    def stages(self, model: GenomeAnnotator) -> list[tuple[str, list, dict[str, Any]]]:
        """``training.stages``: the Titans model without its memory, then whole at
        ``training.memory_lr`` (see :meth:`GenomeAnnotator.stages`); or every parameter at
        once."""
        if self.task.training.stages == "joint":
            return [("", list(model.parameters()), {})]
        local, *rest = model.stages()
        lr = {"lr": self.task.training.memory_lr}
        return [(*local, {}), *((name, parameters, lr) for name, parameters in rest)]

    def batches(self, unit: Unit, model: GenomeAnnotator):
        # One model trains at a time: its loss reads the stretches (and states) made here.
        self._stretches = Stretches(model, unit.data["train"], self.task.training.stretch)
        return self._stretches.batches

    def loss(self, model: GenomeAnnotator, batch: int) -> Tensor:
        assert self._stretches is not None and self._stretches.model is model
        return self._stretches.loss(batch)

    def score_dev(self, model: GenomeAnnotator, unit: Unit) -> float:
        dev = unit.data["dev"]
        f1 = score(dev, {c.name: predict_labels(model, c.codes)[0] for c in dev})["cds_f1"]
        return -1.0 if f1 is None else f1

    def evaluate(
        self, model: GenomeAnnotator, unit: Unit
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        test = unit.data["test"]
        both = {c.name: predict_labels(model, c.codes) for c in test}
        predicted = {name: decoded for name, (decoded, _) in both.items()}
        metrics: dict[str, Any] = dict(score(test, predicted))
        argmax = score(test, {name: labels for name, (_, labels) in both.items()})
        metrics.update({f"{k}_argmax": argmax[k] for k in HEADLINE[:3]})
        metrics["parameters"] = sum(p.numel() for p in model.parameters())
        if model.config.mixer == "memory":
            for every in self.task.protocol.reset_every:
                reset = {c.name: predict_labels(model, c.codes, every)[0] for c in test}
                scores = score(test, reset)
                metrics.update({f"{k}_reset_{every}": scores[k] for k in HEADLINE[:3]})
        first = test[0].name
        return metrics, {first: predicted[first]}

    def model_meta(self, unit: Unit) -> dict[str, Any]:
        """The label set, and where its test chromosomes are (``titans-sci evaluate``)."""
        test = [c.name for c in unit.data["test"]]
        return {"labels": list(LABELS), "genome": self.task.data.genome, "test": test}

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        chosen = self.task.baselines
        if not chosen.augustus or unit.seed != self.task.protocol.seeds[0]:
            return []  # a program without a seed: once
        test = unit.data["test"]
        sequences = ((c.name, _bases(c.codes)) for c in test)
        genes = run_augustus(sequences, chosen.augustus_species)
        return [{**unit.labels, "model": "augustus", **score(test, features=genes)}]

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        summary = {}
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model]
            keys = [k for k in mine[0] if k in HEADLINE or "_reset_" in k or "_argmax" in k]
            summary[model] = summarize([{k: r[k] for k in keys} for r in mine])
        return summary

    def format_summary(self, result: dict[str, Any]) -> str:
        return summary_lines(result, 9)

    def figures(
        self, model: GenomeAnnotator, unit: Unit, predicted: dict[str, np.ndarray], folder: Path
    ) -> dict[str, Path]:
        """Predicted against true labels along 20 kb of the first test chromosome, from 2 kb
        before its first spliced gene (or from its start), and the memory's surprise there."""
        chromosome = unit.data["test"][0]
        spliced = [f.start for f in chromosome.features if len(f.parts) > 1]
        start = max(0, min(spliced) - 2000) if spliced else 0
        stop = min(len(chromosome.codes), start + 20_000)
        tracks = {
            "annotation": chromosome.labels[start:stop],
            "Titans": predicted[chromosome.name][start:stop],
        }
        caption = f"Predicted against true labels, test chromosome {chromosome.name}"
        title = f"{chromosome.name} ({chromosome.id}), bases {start + 1}..{stop}"
        path = report.label_tracks(tracks, LABELS, start + 1, folder / "annotation.png", title)
        # the memory's surprise there, read from the chromosome's start (5' to 3')
        codes = torch.from_numpy(chromosome.codes[:stop].astype(np.int64))[None]
        patch = model.config.patch
        trace = model.surprise(codes)[0, start // patch :].numpy()
        where = f"{chromosome.name}, bases {start + 1}..{stop}, tokens of {patch} bases"
        surprise = report.surprise_trace(trace, folder / "surprise.png", f"surprise, {where}")
        return {caption: path, "The memory's surprise along the same stretch": surprise}


def _builder(config: AnnotatorConfig) -> Callable[[], GenomeAnnotator]:
    return lambda: GenomeAnnotator(config)


def _bases(codes: np.ndarray) -> str:
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[codes].tobytes().decode("ascii")
