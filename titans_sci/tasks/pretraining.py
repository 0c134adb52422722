"""Self-supervised pretraining as a task kind: a masked DNA language model on a corpus that holds
no evaluation sequence (:mod:`titans_sci.data.pretraining`).

Protocol: the corpus pieces split at random (the seed) into train, dev and test parts of
``data.held_out`` each for dev and test; an epoch is ``training.steps_per_epoch`` batches drawn
from the train part; the checkpoint with the lowest dev masked loss is kept and scored once on
the test part (masked loss and accuracy over ``ACGT``, chance 0.25). The saved model
(``checkpoints/seed<S>/titans/model``) starts a classifier through ``training.init``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from titans_sci.data.pretraining import Corpus, build_corpus, bundled_splits
from titans_sci.data.tokens import NucleotideTokenizer, pad_batch
from titans_sci.evaluation.protocol import summarize
from titans_sci.models.dna_lm import DNAMaskedLM, mask_bases, masked_loss
from titans_sci.tasks.config import PretrainTask
from titans_sci.tasks.kind import TITANS, Unit

METRICS = ("masked_loss", "masked_accuracy")
#: Pieces per sorted pool: batches are cut from length-sorted pools to keep padding small.
POOL = 64


@dataclass(frozen=True)
class Pieces:
    """Corpus pieces as padded ids ``[N, T]`` and mask ``[N, T]``, ordered by length."""

    ids: Tensor
    mask: Tensor

    @classmethod
    def of(cls, sequences: list[str]) -> Pieces:
        tokenizer = NucleotideTokenizer()
        ordered = sorted(sequences, key=len)
        ids, mask = pad_batch([tokenizer.encode(s) for s in ordered], tokenizer.pad_id)
        return cls(ids, mask)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """The pieces at ``index``, cut to their longest."""
        mask = self.mask[index]
        length = int(mask.sum(dim=1).max())
        return self.ids[index, :length], mask[:, :length]


class Pretraining:
    """The :class:`~titans_sci.tasks.runner.TaskKind` of a :class:`PretrainTask`."""

    undefined: dict[str, str] = {}

    def __init__(self, task: PretrainTask) -> None:
        self.task = task
        data = task.data
        self.corpus: Corpus = build_corpus(data.files, data.bundled, data.window)
        self.protocol = (
            f"masked bases ({task.training.mask_rate:.0%}) on {self.corpus.describe()}; "
            f"{data.held_out:.0%} of the pieces each as dev (checkpoint selection on masked "
            f"loss) and test, seeds {list(task.protocol.seeds)}"
        )

    def data_files(self) -> dict[str, Path]:
        files = dict(bundled_splits(held_out=True))
        if self.task.data.bundled:
            files.update(bundled_splits(held_out=False))
        files.update({f"file{i}": Path(f) for i, f in enumerate(self.task.data.files)})
        return files

    def units(self) -> Iterator[Unit]:
        data = self.task.data
        sequences = self.corpus.sequences
        for seed in self.task.protocol.seeds:
            order = np.random.default_rng(seed).permutation(len(sequences))
            n_eval = max(1, int(data.held_out * len(sequences)))
            if 2 * n_eval >= len(sequences):
                raise ValueError(
                    f"{self.task.name}: {len(sequences)} corpus pieces are too few to keep "
                    f"{n_eval} each for dev and test"
                )
            cap = data.max_eval or n_eval
            parts = {
                "dev": order[:n_eval][:cap],
                "test": order[n_eval : 2 * n_eval][:cap],
                "train": order[2 * n_eval :],
            }
            yield Unit(
                {"seed": seed},
                seed,
                {name: Pieces.of([sequences[i] for i in index]) for name, index in parts.items()},
            )

    def models(self, unit: Unit) -> dict[str, Callable[[], nn.Module]]:
        return {TITANS: lambda: DNAMaskedLM(self.task.model)}

    def batches(self, unit: Unit, model: nn.Module):
        train: Pieces = unit.data["train"]
        training = self.task.training
        size = training.batch_size

        def batches(epoch: int, generator: torch.Generator):
            # pools of POOL batches' worth of neighbouring (similar-length) pieces, in random
            # order; each pool shuffled and cut into batches
            pool = size * POOL
            starts = torch.randperm(max(1, len(train) // pool + 1), generator=generator) * pool
            steps = 0
            while True:
                for start in starts.tolist():
                    index = torch.arange(start, min(start + pool, len(train)))
                    if not len(index):
                        continue
                    index = index[torch.randperm(len(index), generator=generator)]
                    for part in index.split(size):
                        ids, mask = train.batch(part)
                        inputs, targets = mask_bases(ids, mask, training.mask_rate, generator)
                        yield inputs, mask, targets
                        steps += 1
                        if steps == training.steps_per_epoch:
                            return

        return batches

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        inputs, mask, targets = batch
        return masked_loss(model(inputs, mask), targets)

    @torch.no_grad()
    def _scores(self, model: nn.Module, pieces: Pieces) -> dict[str, float]:
        """Masked loss and accuracy over ``pieces``, with the same masks for every call."""
        model.eval()
        generator = torch.Generator().manual_seed(0)
        total = correct = 0
        loss = 0.0
        for index in torch.arange(len(pieces)).split(256):
            ids, mask = pieces.batch(index)
            inputs, targets = mask_bases(ids, mask, self.task.training.mask_rate, generator)
            logits = model(inputs, mask)
            chosen = targets != -100
            loss += float(masked_loss(logits, targets)) * int(chosen.sum())
            correct += int((logits.argmax(-1) == targets)[chosen].sum())
            total += int(chosen.sum())
        return {"masked_loss": loss / total, "masked_accuracy": correct / total}

    def score_dev(self, model: nn.Module, unit: Unit) -> float:
        return -self._scores(model, unit.data["dev"])["masked_loss"]

    def evaluate(self, model: nn.Module, unit: Unit) -> tuple[dict[str, Any], None]:
        return self._scores(model, unit.data["test"]), None

    def model_meta(self, unit: Unit) -> dict[str, Any]:
        corpus = self.corpus
        return {
            "pretraining": {
                "corpus": corpus.describe(),
                "sources": corpus.sources,
                "held_out": corpus.held_out,
                "train_pieces": len(unit.data["train"]),
            }
        }

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        return []

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {TITANS: summarize([{k: r[k] for k in METRICS} for r in rows])}

    def format_summary(self, result: dict[str, Any]) -> str:
        stats = result["summary"][TITANS]
        cells = ", ".join(f"{name} {s['mean']:.4f} +- {s['std']:.4f}" for name, s in stats.items())
        return f"{result['task']['name']}: {result['protocol']}\n  {TITANS:>8}: {cells}"

    def figures(self, model: nn.Module, unit: Unit, predictions: None, folder: Path):
        return {}
