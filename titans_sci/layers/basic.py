"""Small building blocks: causal depthwise convolution with streaming state, SwiGLU MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalDepthwiseConv(nn.Module):
    """Depthwise 1-D convolution over time that only looks back: ``[B, T, C] -> [B, T, C]``.

    ``state: [B, kernel_size - 1, C]`` holds the last inputs of the previous call (zeros at the
    start of a sequence), so a sequence processed in pieces equals one call.
    """

    def __init__(self, channels: int, kernel_size: int = 4) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch, self.kernel_size - 1, self.weight.shape[0])

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.initial_state(x.shape[0], x)
        padded = torch.cat([state, x], dim=1)  # [B, K - 1 + T, C]
        y = F.conv1d(padded.transpose(1, 2), self.weight, self.bias, groups=x.shape[-1])
        return y.transpose(1, 2), padded[:, padded.shape[1] - (self.kernel_size - 1) :]


class ConvStem(nn.Module):
    """A dense 1-D convolution over time ("same" padding) and GELU: ``[B, T, C] -> [B, T, C]``.

    It turns token embeddings into local (k-mer-like) features before a sequence backbone.
    ``mask: [B, T]`` (True = real token) zeroes padded positions before and after the
    convolution, so padding acts like the zeros beyond a sequence's ends and its content never
    reaches a real position. It looks both ways: for non-causal use (classification).
    """

    def __init__(self, channels: int, kernel_size: int = 9) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"ConvStem kernel_size={kernel_size}; expected an odd int >= 1")
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None and (mask.dtype != torch.bool or mask.shape != x.shape[:2]):
            got = f"{mask.dtype} {tuple(mask.shape)}"
            raise ValueError(f"mask is {got}; expected a bool tensor [B, T] = {tuple(x.shape[:2])}")
        keep = None if mask is None else mask.unsqueeze(-1).to(x.dtype)  # [B, T, 1]
        if keep is not None:
            x = x * keep
        y = F.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        return y if keep is None else y * keep


class SwiGLU(nn.Module):
    """``W_3 (silu(W_1 x) * W_2 x)`` with hidden width ``8/3 * dim`` rounded up to 8."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or 8 * ((8 * dim // 3 + 7) // 8)
        self.gate_and_value = nn.Linear(dim, 2 * hidden, bias=False)
        self.out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.gate_and_value(x).chunk(2, dim=-1)
        return self.out(F.silu(gate) * value)


class GatedRMSNorm(nn.Module):
    """``RMSNorm(y) * silu(gate)``: the output norm gated by a projection of the input."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=eps)

    def forward(self, y: Tensor, gate: Tensor) -> Tensor:
        return self.norm(y) * F.silu(gate)
