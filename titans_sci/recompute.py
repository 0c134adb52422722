"""Activation checkpointing for the cheap, activation-heavy pieces of a training step."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch.utils.checkpoint import checkpoint

Output = TypeVar("Output")


def recomputed(fn: Callable[..., Output], *args: object) -> Output:
    """``fn(*args)``; while autograd records, only ``args`` are kept and ``fn`` runs again in the
    backward (activation checkpointing), for cheap, activation-heavy pieces of a block."""
    if not torch.is_grad_enabled():
        return fn(*args)
    return checkpoint(fn, *args, use_reentrant=False)
