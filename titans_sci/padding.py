"""Reversing padded sequences: the one helper for every place that reads a sequence backwards
(the bidirectional backbone, the reverse complement of DNA ids)."""

from __future__ import annotations

import torch
from torch import Tensor


def reversal(mask: Tensor | None, length: int, device: torch.device | None = None) -> Tensor:
    """Time indices ``[B, T]`` (``[1, T]`` without a mask) that reverse each sequence's real
    tokens among their own positions and leave padded positions in place: position ``p`` of
    rank ``r`` among a row's ``n`` real tokens takes the real token of rank ``n - 1 - r``, so
    left or right padding stays where it is. The permutation is its own inverse.

    Args:
        mask: ``[B, T]`` bool, True = real token, or ``None`` (every position is real).
        length: ``T``.
        device: where the indices go (the mask's device when there is one).
    """
    if mask is not None:
        device = mask.device
    positions = torch.arange(length, device=device)
    if mask is None:
        return positions.flip(0)[None]
    # Real positions first (in order), then padded ones: real_positions[b, r] for rank r.
    key = torch.where(mask, positions, positions + length)
    real_positions = key.argsort(dim=1)
    rank = mask.long().cumsum(dim=1) - 1
    mirrored = (mask.sum(dim=1, keepdim=True) - 1 - rank).clamp_min(0)
    return torch.where(mask, real_positions.gather(1, mirrored), positions)
