"""Data-parallel training across processes with ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch any titans-sci command under ``torchrun`` and it trains data-parallel::

    torchrun --nproc_per_node 2 -m titans_sci.cli train tasks/gue_prom_core_tata.toml

Every process builds the same model and draws the same global batches (same seeds); process
``r`` of ``W`` computes the gradients of its shard (items ``r, r + W, ...`` of each batch), the
gradients are all-reduced, weighted by shard size, so each step is exactly the step one
process would take on the whole batch. Dev scores are computed by every process on the whole
dev set, so all processes select the same epoch; files (checkpoints, logs, results, reports) are
written by process 0 only, and a checkpoint resumes under any number of processes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


def init_from_env(timeout_s: float = 120.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` >
    1); a no-op otherwise or if already joined. Returns whether training is distributed."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files (process 0, or the only one)."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def total(value: Tensor) -> float:
    """The sum of a scalar over every process (the value itself with one process)."""
    if world_size() > 1:
        value = value.clone()
        dist.all_reduce(value)
    return float(value)


def shard(batch: Any) -> tuple[Any, float]:
    """This process's share of a global batch (a tensor, or a tuple/list of tensors with the
    batch first): items ``rank, rank + W, ...``, and its weight ``n_rank / n_global`` in the
    batch mean. One process: the batch itself, weight 1."""
    size = world_size()
    if size == 1:
        return batch, 1.0
    tensors = batch if isinstance(batch, (tuple, list)) else (batch,)
    items = tensors[0].shape[0]
    if items < size:
        raise ValueError(f"a batch of {items} cannot be shared among {size} processes")
    mine = [t[rank() :: size] for t in tensors]
    weight = mine[0].shape[0] / items
    return (type(batch)(mine) if isinstance(batch, (tuple, list)) else mine[0]), weight


def sum_gradients(model: nn.Module) -> None:
    """Sum the (already shard-weighted) gradients of every process: the global batch's
    gradient on every process."""
    if world_size() == 1:
        return
    grads: list[Tensor] = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
