"""Sequence classification: masked mean pooling and a linear head."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_mean(h: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``h: [B, T, D]`` over the real positions of ``mask: [B, T]`` (True = real):
    ``[B, D]``. Padding never enters the mean, wherever it is (left or right)."""
    if mask is None:
        return h.mean(dim=1)
    if mask.shape != h.shape[:2]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; h has [B, T] = {tuple(h.shape[:2])}")
    weights = mask.to(h.dtype).unsqueeze(-1)
    count = weights.sum(dim=1).clamp_min(1.0)
    return (h * weights).sum(dim=1) / count


class ClassificationHead(nn.Module):
    """``h [B, T, D]`` (+ mask) -> logits ``[B, num_classes]``: masked mean pool, dropout,
    linear."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes}; a classifier needs at least 2")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.linear(self.dropout(masked_mean(h, mask)))


def average_probabilities(logits: Tensor, *more_logits: Tensor) -> Tensor:
    """Mean of the softmax probabilities of several views (e.g. both DNA strands): ``[B, K]``."""
    views = (logits, *more_logits)
    return torch.stack([x.softmax(dim=-1) for x in views]).mean(dim=0)
