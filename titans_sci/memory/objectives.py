"""Attentional biases (inner losses) and retention maps of the MIRAS memory.

A bias gives the per-token loss ``l(e)`` of the memory's error ``e = M(k) - v`` (used by the
recurrent reference through autograd) and its gradient ``dl/de`` written by hand (used by the
chunked path). A retention gives the map from the state's free parameters ``X`` to the memory
weights ``W = R(X)`` and the scale at which a chunk's linear updates are read.

Shapes: ``e: [B, H, N, D]``; ``delta: [B, H, N]`` or ``None``; weights ``[B, H, fan_in, fan_out]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import MemoryConfig


class AttentionalBias:
    """The inner objective ``l(e; delta)`` summed over the output dimension."""

    def __init__(self, config: MemoryConfig) -> None:
        self.kind = config.bias
        self.p = config.p
        self.eps = config.eps

    def loss(self, e: Tensor, delta: Tensor | None) -> Tensor:
        """Per-token loss ``[B, H, N]``."""
        if self.kind == "l2":
            return 0.5 * e.pow(2).sum(-1)
        if self.kind == "lp":
            return (e.pow(2) + self.eps).pow(self.p / 2).sum(-1) / self.p
        assert delta is not None
        if self.kind == "huber":
            small = e.norm(dim=-1) <= delta
            l1 = delta * (e.pow(2) + self.eps).sqrt().sum(-1)
            return torch.where(small, 0.5 * e.pow(2).sum(-1), l1)
        # value_robust
        return 0.5 * e.pow(2).sum(-1) + delta * (e.pow(2).sum(-1) + self.eps).sqrt()

    def grad(self, e: Tensor, delta: Tensor | None) -> Tensor:
        """``dl/de``, ``[B, H, N, D]``."""
        if self.kind == "l2":
            return e
        if self.kind == "lp":
            return e * (e.pow(2) + self.eps).pow(self.p / 2 - 1)
        assert delta is not None
        if self.kind == "huber":
            small = (e.norm(dim=-1) <= delta).unsqueeze(-1)
            return torch.where(small, e, delta.unsqueeze(-1) * e * torch.rsqrt(e.pow(2) + self.eps))
        inv_norm = torch.rsqrt(e.pow(2).sum(-1, keepdim=True) + self.eps)
        return e + delta.unsqueeze(-1) * e * inv_norm


class RetentionMap:
    """Free parameters ``X`` of the state -> memory weights ``W = R(X)``, applied per matrix."""

    def __init__(self, config: MemoryConfig) -> None:
        self.kind = config.retention
        self.q = config.q
        self.scale = config.simplex_scale
        self.threshold = config.elastic_threshold

    @property
    def is_identity(self) -> bool:
        return self.kind == "decay"

    @property
    def lag_token(self) -> bool:
        """Memora: the first token of every chunk takes one exact step on its own."""
        return self.kind == "kl"

    def _lq_normaliser(self, x: Tensor) -> Tensor:
        """``||X||_q^(q-2)`` per matrix, ``[B, H, 1, 1]``."""
        norm = x.abs().pow(self.q).sum((-2, -1), keepdim=True).pow(1.0 / self.q)
        return norm.pow(self.q - 2)

    def weights(self, x: Tensor) -> Tensor:
        if self.kind == "decay":
            return x
        if self.kind == "lq":
            return x / self._lq_normaliser(x)
        if self.kind == "kl":
            scale = self.scale if self.scale is not None else x.shape[-2] ** 0.5
            return scale * torch.softmax(x, dim=-2)
        return torch.sign(x) * torch.relu(x.abs() - self.threshold)

    def read_scale(self, x: Tensor) -> Tensor | float:
        """Factor on a chunk's updates when read inside the chunk (``lq``: ``1/||X||``)."""
        if self.kind == "lq":
            return 1.0 / self._lq_normaliser(x)
        return 1.0
