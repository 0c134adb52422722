"""A masked DNA language model for self-supervised pretraining: the classifier's trunk
(embedding -> stem -> bidirectional Titans backbone) with a per-base head over ``ACGT``.

As BERT-style DNA models do (DNABERT, Caduceus' masked objective for its bidirectional reader),
a random ``mask_rate`` of the bases of each sequence is replaced by ``[MASK]`` and the model
predicts them from both sides (:func:`mask_bases`, :func:`masked_loss`). Its trunk's weights
then start a :class:`~titans_sci.models.dna_classifier.DNAClassifier` of the same trunk
config (``training.init`` of a classification task;
:func:`titans_sci.modelfolder.init_from_pretrained`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from titans_sci.config import Config
from titans_sci.data.tokens import MASK_ID, NucleotideTokenizer

from .config import Backbone, LMMConfig
from .dna_classifier import DNATrunk

#: Ids of A, C, G, T (what the head predicts, in this order).
BASE_IDS = tuple(NucleotideTokenizer().token_to_id[b] for b in "ACGT")


@dataclass(frozen=True)
class DNALMConfig(Config):
    """What a :class:`DNAMaskedLM` is: the trunk fields of a ``ClassifierConfig`` (the same
    table of a task file), so a classifier can start from it.

    Attributes:
        backbone: the Titans backbone (bidirectional for a masked objective).
        stem_kernel: width of the convolutional stem in bases (odd; 0: none).
    """

    backbone: Backbone = field(default_factory=lambda: LMMConfig(bidirectional=True))
    stem_kernel: int = 9

    def __post_init__(self) -> None:
        if self.stem_kernel < 0 or (self.stem_kernel and self.stem_kernel % 2 == 0):
            raise ValueError(f"stem_kernel={self.stem_kernel}; expected 0 (no stem) or an odd int")
        if not self.backbone.bidirectional:
            raise ValueError(
                "a masked language model reads both sides: set backbone.bidirectional = true"
            )


class DNAMaskedLM(DNATrunk):
    """``ids [B, T]`` (+ ``mask [B, T]``, True = real base) -> logits ``[B, T, 4]`` over
    ``ACGT`` at every position."""

    def __init__(self, config: DNALMConfig) -> None:
        super().__init__(config.backbone, config.stem_kernel)
        self.config = config
        self.norm = nn.LayerNorm(config.backbone.dim)
        self.lm_head = nn.Linear(config.backbone.dim, len(BASE_IDS))

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        h, _ = self.backbone(self._features(ids, mask), mask)
        return self.lm_head(self.norm(h))


def mask_bases(
    ids: Tensor, mask: Tensor | None, rate: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``(inputs [B, T], targets [B, T])``: each ``ACGT`` base of ``ids`` is chosen with
    probability ``rate`` (at least one per sequence that has one); chosen bases become
    ``[MASK]`` in ``inputs`` and their base index 0..3 in ``targets``; every other target is
    -100 (ignored). Padding (``mask`` False) and ``N`` are never chosen."""
    if not 0 < rate < 1:
        raise ValueError(f"mask_rate={rate}; expected in (0, 1)")
    base = torch.full_like(ids, -100)
    for index, token in enumerate(BASE_IDS):
        base[ids == token] = index
    eligible = base >= 0
    if mask is not None:
        eligible &= mask
    scores = torch.rand(ids.shape, generator=generator)
    chosen = eligible & (scores < rate)
    # at least one: the eligible position with the lowest score
    first = torch.where(eligible, scores, 2.0).argmin(dim=1, keepdim=True)
    chosen.scatter_(1, first, eligible.gather(1, first) | chosen.gather(1, first))
    inputs = torch.where(chosen, torch.full_like(ids, MASK_ID), ids)
    return inputs, torch.where(chosen, base, torch.full_like(base, -100))


def masked_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy over the chosen bases (``targets != -100``) of ``logits [B, T, 4]``."""
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
