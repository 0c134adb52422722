"""A DNA sequence classifier: nucleotide embedding -> Titans backbone -> masked-mean head.

Reverse-complement handling, as in Caduceus and HyenaDNA: ``rc_augment`` (training) replaces
each sequence by its reverse complement with probability 1/2; ``predict_proba`` averages the
class probabilities of both strands, so a sequence and its reverse complement get the same
prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from titans_sci.data.dna import DNAEmbedding, NucleotideTokenizer, reverse_complement_ids
from titans_sci.heads.classification import ClassificationHead, average_probabilities

from . import build_backbone
from .config import BackboneConfig


class DNAClassifier(nn.Module):
    """``ids [B, T]`` (+ ``mask [B, T]``, True = real base) -> logits ``[B, num_classes]``."""

    def __init__(self, backbone: BackboneConfig, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.tokenizer = NucleotideTokenizer()
        self.embedding = DNAEmbedding(
            self.tokenizer.vocab_size, backbone.dim, self.tokenizer.pad_id
        )
        self.backbone = build_backbone(backbone)
        self.head = ClassificationHead(backbone.dim, num_classes, dropout)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        h, _ = self.backbone(self.embedding(ids), mask)
        return self.head(h, mask)

    def reverse_complement(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """The other strand of ``ids`` (padding stays where it is)."""
        return reverse_complement_ids(ids, self.tokenizer, mask)

    def rc_augment(self, ids: Tensor, mask: Tensor | None, generator: torch.Generator) -> Tensor:
        """Each sequence of the batch, or its reverse complement, with probability 1/2."""
        flip = torch.rand(ids.shape[0], generator=generator) < 0.5
        return torch.where(flip[:, None], self.reverse_complement(ids, mask), ids)

    @torch.no_grad()
    def predict_proba(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class probabilities ``[B, K]`` averaged over both strands."""
        forward = self(ids, mask)
        backward = self(self.reverse_complement(ids, mask), mask)
        return average_probabilities(forward, backward)
