"""The neural-memory layer: projections, short convolution, gates and a bank of MIRAS memories."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_sci.memory import MemoryConfig, MemoryState, NeuralMemory
from titans_sci.recompute import recomputed

from .basic import CausalDepthwiseConv, GatedRMSNorm

# Initial gate values: remember (forget 0.01), small steps (0.1 of the maximum), momentum 0.9,
# Huber threshold / value radius 1.
_INITIAL_GATES = {"theta": 0.1, "eta": 0.9, "alpha": 0.01}
_INITIAL_DELTA = 1.0


@dataclass
class MemoryLayerState:
    """Streaming state of one memory layer: the convolution's last inputs and the memory."""

    conv: Tensor  # [B, kernel_size - 1, 3 * H * D]
    memory: MemoryState

    def detach(self) -> MemoryLayerState:
        return MemoryLayerState(self.conv.detach(), self.memory.detach())


class NeuralMemoryLayer(nn.Module):
    """``x [B, T, dim] -> y [B, T, dim]`` through per-head test-time memories.

    RMSNorm -> q, k, v projections -> causal depthwise conv (k=4) -> SiLU -> l2-normalised q, k
    -> per-head memory (any preset) -> RMSNorm gated by a projection of x -> output projection.
    Gates are per token and head, from the normalised x: ``theta = max_step * sigmoid(.)``,
    ``eta, alpha = sigmoid(.)``, ``delta = softplus(.)``; their biases start at "remember, small
    steps" (alpha 0.01, theta 0.1 * max_step, eta 0.9, delta 1).

    ``mask: [B, T]`` (True = real token) makes padded tokens no-ops: zero inputs and zero step
    size and forgetting, so (with padding at the start or end of a sequence) they change nothing
    at real positions.
    """

    def __init__(
        self, dim: int, memory: MemoryConfig, max_step: float = 1.0, conv_kernel: int = 4
    ) -> None:
        super().__init__()
        self.dim, self.config, self.max_step = dim, memory, max_step
        inner = memory.num_heads * memory.head_dim
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.conv = CausalDepthwiseConv(3 * inner, conv_kernel)
        self.to_gates = nn.Linear(dim, 4 * memory.num_heads)
        self.memory = NeuralMemory(memory)
        self.to_out_gate = nn.Linear(dim, inner, bias=False)
        self.out_norm = GatedRMSNorm(inner)
        self.out = nn.Linear(inner, dim, bias=False)
        self._init_gates()

    def _init_gates(self) -> None:
        nn.init.normal_(self.to_gates.weight, std=0.02)
        h = self.config.num_heads
        bias = torch.empty(4, h)
        for i, name in enumerate(("theta", "eta", "alpha")):
            bias[i] = math.log(_INITIAL_GATES[name] / (1 - _INITIAL_GATES[name]))
        bias[3] = math.log(math.expm1(_INITIAL_DELTA))
        with torch.no_grad():
            self.to_gates.bias.copy_(bias.flatten())

    def _memory_inputs(self, x: Tensor, mask: Tensor | None, conv: Tensor):
        """The memory's ``(q, k, v)`` ``[B, T, H, D]``, its gates ``[B, T, H]`` (a dict of
        theta, eta, alpha, delta) and the convolution's next state."""
        b, t, _ = x.shape
        h, d = self.config.num_heads, self.config.head_dim
        xn = self._normed(x, mask)
        keep = None if mask is None else mask.unsqueeze(-1).to(x.dtype)
        qkv = self.to_qkv(xn)
        if keep is not None:
            qkv = qkv * keep
        qkv, conv_state = self.conv(qkv, conv)
        q, k, v = F.silu(qkv).view(b, t, 3, h, d).unbind(2)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)

        raw = self.to_gates(xn).view(b, t, 4, h)
        theta = self.max_step * torch.sigmoid(raw[:, :, 0])
        eta, alpha = torch.sigmoid(raw[:, :, 1]), torch.sigmoid(raw[:, :, 2])
        delta = F.softplus(raw[:, :, 3])
        if keep is not None:
            theta, alpha = theta * keep, alpha * keep
        gates = {"theta": theta, "eta": eta, "alpha": alpha, "delta": delta}
        return (q, k, v), gates, conv_state

    def initial_state(self, batch: int, like: Tensor) -> MemoryLayerState:
        return MemoryLayerState(
            self.conv.initial_state(batch, like), self.memory.initial_state(batch, like.dtype)
        )

    def forward(
        self, x: Tensor, mask: Tensor | None = None, state: MemoryLayerState | None = None
    ) -> tuple[Tensor, MemoryLayerState]:
        b, t, _ = x.shape
        h, d = self.config.num_heads, self.config.head_dim
        state = state or self.initial_state(b, x)
        # The projections, convolution and gates, and the output norm, are recomputed in the
        # backward: they are cheap next to the memory and would keep most of the activations.
        (q, k, v), gates, conv_state = recomputed(self._memory_inputs, x, mask, state.conv)
        y, memory_state = self.memory(q, k, v, **gates, state=state.memory)
        out = recomputed(self._output, y.reshape(b, t, h * d), x, mask)
        return out, MemoryLayerState(conv_state, memory_state)

    def _normed(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """The normalised input, zero at padded positions."""
        xn = self.norm(x)
        return xn if mask is None else xn * mask.unsqueeze(-1).to(x.dtype)

    def _output(self, y: Tensor, x: Tensor, mask: Tensor | None) -> Tensor:
        """The memory's reads ``[B, T, H * D]`` through the norm gated by a projection of the
        normalised input ``x``, and the out projection."""
        return self.out(self.out_norm(y, self.to_out_gate(self._normed(x, mask))))
