"""Sequence classification: masked mean or max pooling and a linear head."""

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


def masked_max(h: Tensor, mask: Tensor | None = None) -> Tensor:
    """Maximum of ``h: [B, T, D]`` over the real positions of ``mask: [B, T]`` (True = real):
    ``[B, D]``. A row without real positions pools to zeros."""
    if mask is None:
        return h.amax(dim=1)
    if mask.shape != h.shape[:2]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; h has [B, T] = {tuple(h.shape[:2])}")
    pooled = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


POOLS = {"mean": masked_mean, "max": masked_max}


class ClassificationHead(nn.Module):
    """``h [B, T, D]`` (+ mask) -> logits ``[B, num_classes]``: masked pool (``"mean"`` or
    ``"max"``), dropout, linear. Max pooling suits motif detection (a site anywhere in the
    sequence decides the class); mean pooling suits composition-like signals."""

    def __init__(
        self, dim: int, num_classes: int, dropout: float = 0.0, pool: str = "mean"
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes}; a classifier needs at least 2")
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r}; expected one of {sorted(POOLS)}")
        self.pool = POOLS[pool]
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.linear(self.dropout(self.pool(h, mask)))


def average_probabilities(logits: Tensor, *more_logits: Tensor) -> Tensor:
    """Mean of the softmax probabilities of several views (e.g. both DNA strands): ``[B, K]``."""
    views = (logits, *more_logits)
    return torch.stack([x.softmax(dim=-1) for x in views]).mean(dim=0)
