"""Causal sliding-window attention with persistent memory tokens and rotary positions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class AttentionState:
    """The last ``window - 1`` keys and values (rotated) of a stream, and how far it has got."""

    keys: Tensor  # [B, H, n, Dh]
    values: Tensor  # [B, H, n, Dh]
    valid: Tensor  # [B, n] bool: cached token is real (not padding)
    position: int  # tokens seen so far

    def detach(self) -> AttentionState:
        return AttentionState(self.keys.detach(), self.values.detach(), self.valid, self.position)


def _rotate(x: Tensor, positions: Tensor, base: float) -> Tensor:
    """Rotary position embedding of ``x: [B, H, T, Dh]`` at integer ``positions: [T]``.

    Angles are formed in float64, so positions in the millions keep their precision."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) / half)
    angles = positions.to(torch.float64)[:, None] * freqs[None]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rotated, x[..., 2 * half :]], dim=-1)


class SlidingWindowAttention(nn.Module):
    """``x [B, T, dim] -> [B, T, dim]``: pre-norm multi-head attention in which token ``t`` sees
    the ``num_persistent`` learned persistent tokens (always) and the real tokens in
    ``(t - window, t]`` (rotary positions, PyTorch SDPA).

    Streaming: ``forward(x, mask, state) -> (y, state)``; the state caches the last
    ``window - 1`` keys and values, so pieces equal one call and memory does not grow.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        num_persistent: int = 0,
        rope_base: float = 10_000.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        if window < 1:
            raise ValueError(f"window={window}; expected >= 1")
        self.num_heads, self.head_dim, self.window = num_heads, dim // num_heads, window
        self.rope_base = rope_base
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        shape = (num_heads, num_persistent, self.head_dim)
        self.persistent_keys = nn.Parameter(torch.randn(shape) * self.head_dim**-0.5)
        self.persistent_values = nn.Parameter(torch.randn(shape) * self.head_dim**-0.5)

    def _project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        qkv = self.to_qkv(self.norm(x)).view(b, t, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, T, Dh]
        return _rotate(q, positions, self.rope_base), _rotate(k, positions, self.rope_base), v

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor) -> Tensor:
        """``allowed: [B, Tq, Tk]`` over ``k, v``; the persistent tokens are always visible."""
        b = q.shape[0]
        pk = self.persistent_keys.unsqueeze(0).expand(b, -1, -1, -1)
        pv = self.persistent_values.unsqueeze(0).expand(b, -1, -1, -1)
        seen = allowed.new_ones(b, q.shape[2], pk.shape[2])
        mask = torch.cat([seen, allowed], dim=-1).unsqueeze(1)
        y = F.scaled_dot_product_attention(
            q, torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2), attn_mask=mask
        )
        return self.out(y.transpose(1, 2).flatten(2))

    def initial_state(self, batch: int, like: Tensor) -> AttentionState:
        shape = (batch, self.num_heads, 0, self.head_dim)
        empty = like.new_zeros(shape)
        return AttentionState(empty, empty, torch.zeros(batch, 0, dtype=torch.bool), 0)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, state: AttentionState | None = None
    ) -> tuple[Tensor, AttentionState]:
        b, t, _ = x.shape
        state = state or self.initial_state(b, x)
        start = state.position
        positions = torch.arange(start, start + t, device=x.device)
        q, k, v = self._project(x, positions)
        real = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask
        k, v = torch.cat([state.keys, k], dim=2), torch.cat([state.values, v], dim=2)
        valid = torch.cat([state.valid.to(x.device), real], dim=1)
        cached = state.keys.shape[2]
        key_positions = torch.arange(start - cached, start + t, device=x.device)
        offset = positions[:, None] - key_positions[None, :]
        in_window = (offset >= 0) & (offset < self.window)
        # A query always sees itself, so padded queries (whose output is ignored) have a key.
        itself = offset == 0
        allowed = (in_window & valid[:, None, :]) | itself
        y = self._attend(q, k, v, allowed)
        first_kept = max(0, k.shape[2] - (self.window - 1))
        new_state = AttentionState(
            k[:, :, first_kept:], v[:, :, first_kept:], valid[:, first_kept:], start + t
        )
        return y, new_state

    def forward_with_memory(self, x: Tensor, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        """Memory-as-context attention over one segment: token ``i`` of ``x [B, C, dim]`` sees
        the persistent tokens, the retrieved memory tokens ``memory[:, :i+1]`` and ``x[:, :i+1]``
        (causal, so a token never sees what a later token's query retrieved)."""
        b, c, _ = x.shape
        positions = torch.arange(c, device=x.device)
        q, k, v = self._project(x, positions)
        _, mk, mv = self._project(memory, positions)
        causal = torch.ones(c, c, dtype=torch.bool, device=x.device).tril()
        real = torch.ones(b, c, dtype=torch.bool, device=x.device) if mask is None else mask
        allowed = (causal[None] & real[:, None, :]) | torch.eye(
            c, dtype=torch.bool, device=x.device
        )[None]
        allowed = torch.cat([allowed, allowed], dim=-1)
        return self._attend(q, torch.cat([mk, k], dim=2), torch.cat([mv, v], dim=2), allowed)
