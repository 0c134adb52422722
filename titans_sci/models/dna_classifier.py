"""A DNA sequence classifier: nucleotide embedding -> convolutional stem -> Titans backbone ->
masked pooling head.

The stem (a dense convolution over ``stem_kernel`` bases, default 9) gives the memory k-mer-like
keys and values to write and read. Without it the backbone sees single bases, whose only local
mixing is the memory layer's short depthwise convolution (``stem_kernel = 0``).

Reverse-complement handling, as in Caduceus and HyenaDNA, through two functions that take any
sequence classifier: :func:`random_strands` (training augmentation) replaces each sequence by
its reverse complement with probability 1/2, and :func:`both_strands` (evaluation) averages the
class probabilities of both strands, so a sequence and its reverse complement get the same
prediction (``DNAClassifier.predict_proba`` uses it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from titans_sci.config import Config
from titans_sci.data.tokens import NucleotideTokenizer, reverse_complement_ids
from titans_sci.heads.classification import ClassificationHead, average_probabilities
from titans_sci.layers import ConvStem
from titans_sci.layers.embedding import DNAEmbedding

from . import build_backbone
from .config import Backbone, LMMConfig


@dataclass(frozen=True)
class ClassifierConfig(Config):
    """What a :class:`DNAClassifier` is.

    Attributes:
        backbone: the Titans backbone's config (its ``dim`` is the embedding width).
        num_classes: number of classes (>= 2; a task takes it from its data).
        dropout: dropout before the head's linear layer.
        stem_kernel: width of the convolutional stem in bases (odd); 0 feeds the embeddings to
            the backbone directly.
        pool: the head's pooling over real positions, ``"max"`` or ``"mean"``.
    """

    backbone: Backbone = field(default_factory=LMMConfig)
    num_classes: int = 2
    dropout: float = 0.0
    stem_kernel: int = 9
    pool: Literal["max", "mean"] = "max"

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes={self.num_classes}; a classifier needs at least 2")
        if self.stem_kernel < 0 or (self.stem_kernel and self.stem_kernel % 2 == 0):
            raise ValueError(f"stem_kernel={self.stem_kernel}; expected 0 (no stem) or an odd int")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}; expected in [0, 1)")


class DNATrunk(nn.Module):
    """What every DNA model here shares: nucleotide embedding -> convolutional stem (over
    ``stem_kernel`` bases; 0: none) -> Titans backbone; ``_features`` gives the backbone's
    input ``[B, T, D]``. A classifier and a pretraining language model are trunks with their
    own heads, so a pretrained trunk's weights (``embedding.*``, ``stem.*``, ``backbone.*``)
    start a classifier as they are (:func:`titans_sci.models.dna_lm.init_from_pretrained`)."""

    def __init__(self, backbone: Backbone, stem_kernel: int) -> None:
        super().__init__()
        self.tokenizer = NucleotideTokenizer()
        self.embedding = DNAEmbedding(
            self.tokenizer.vocab_size, backbone.dim, self.tokenizer.pad_id
        )
        self.stem = ConvStem(backbone.dim, stem_kernel) if stem_kernel else None
        self.backbone = build_backbone(backbone)

    def _features(self, ids: Tensor, mask: Tensor | None) -> Tensor:
        x = self.embedding(ids)
        return x if self.stem is None else self.stem(x, mask)


class DNAClassifier(DNATrunk):
    """``ids [B, T]`` (+ ``mask [B, T]``, True = real base) -> logits ``[B, num_classes]``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config.backbone, config.stem_kernel)
        self.config = config
        self.head = ClassificationHead(
            config.backbone.dim, config.num_classes, config.dropout, config.pool
        )

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        h, _ = self.backbone(self._features(ids, mask), mask)
        return self.head(h, mask)

    @torch.no_grad()
    def surprise(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """The memories' surprise at each base, reading 5' to 3': ``[B, T, L, H]`` (``L``
        memory layers of ``H`` heads; see ``TitansBackbone.surprise``)."""
        return self.backbone.surprise(self._features(ids, mask), mask)

    @property
    def margin(self) -> int:
        """Bases the stem reads on either side of a position (``stem_kernel // 2``)."""
        return 0 if self.stem is None else self.stem.conv.kernel_size[0] // 2

    def stream_surprise(self, sequence: str, segment: int = 4096) -> Iterator[tuple[int, Tensor]]:
        """:meth:`surprise` of one sequence of any length, ``segment`` bases at a time with the
        memories' state carried between segments: yields ``(start, surprise [n, L, H])`` for
        consecutive segments, equal to slices of one call on the whole sequence."""
        if segment < 1:
            raise ValueError(f"segment={segment}; expected a positive number of bases")
        margin, starts = self.margin, range(0, len(sequence), segment)
        pieces = (
            (sequence[max(s - margin, 0) : s], sequence[s : s + segment],
             sequence[s + segment : s + segment + margin])
            for s in starts
        )  # fmt: skip
        yield from zip(starts, self.surprise_of_pieces(pieces), strict=True)

    @torch.no_grad()
    def surprise_of_pieces(self, pieces: Iterable[tuple[str, str, str]]) -> Iterator[Tensor]:
        """The surprise ``[n, L, H]`` of each consecutive piece of one sequence, given as
        ``(before, piece, after)`` with the :attr:`margin` bases around it (fewer at the
        sequence's ends), the memories' state carried from piece to piece. Memory does not grow
        with the sequence's length: each piece is tokenized on its own (see
        :func:`titans_sci.data.fasta_stream.with_context` for pieces of a file)."""
        state = None
        for before, piece, after in pieces:
            ids = torch.tensor([self.tokenizer.encode(before + piece + after)])
            features = self._features(ids, None)[:, len(before) : len(before) + len(piece)]
            trace, state = self.backbone.surprise_and_state(features, state=state)
            yield trace[0]

    @torch.no_grad()
    def predict_proba(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class probabilities ``[B, K]`` averaged over both strands."""
        return both_strands(self, ids, mask)


@torch.no_grad()
def both_strands(
    model: Callable[[Tensor, Tensor | None], Tensor], ids: Tensor, mask: Tensor | None = None
) -> Tensor:
    """The class probabilities ``[B, K]`` of any sequence classifier ``model(ids [B, T], mask)
    -> logits`` averaged over both strands of ``ids`` (padding stays where it is), so a
    sequence and its reverse complement get the same prediction."""
    other = reverse_complement_ids(ids, NucleotideTokenizer(), mask)
    return average_probabilities(model(ids, mask), model(other, mask))


def random_strands(ids: Tensor, mask: Tensor | None, generator: torch.Generator) -> Tensor:
    """Each sequence of ``ids [B, T]``, or its reverse complement, with probability 1/2 (RC
    augmentation; padding stays where it is)."""
    flip = torch.rand(ids.shape[0], generator=generator) < 0.5
    other = reverse_complement_ids(ids, NucleotideTokenizer(), mask)
    return torch.where(flip[:, None], other, ids)
