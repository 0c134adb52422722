"""The neural-memory layer: projections, short convolution, gates and a bank of MIRAS memories."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

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
# How far a sparse gate's sigmoid is stretched past [0, 1] before clipping: the gate is exactly 0
# for sigmoid(raw) below STRETCH / (1 + 2 STRETCH) (raw < -3.04), and exactly 1 symmetrically.
_STRETCH = 0.05

GateForm = Literal["sigmoid", "sparse"]


def sparse_gate(raw: Tensor) -> Tensor:
    """``clip((1 + 2s) sigmoid(raw) - s, 0, 1)`` with ``s = 0.05``: a sigmoid that reaches exactly
    0 and 1, so a token can write nothing or forget nothing, at any length."""
    return ((1 + 2 * _STRETCH) * torch.sigmoid(raw) - _STRETCH).clamp(0.0, 1.0)


def _sparse_gate_logit(value: float) -> float:
    """The ``raw`` at which :func:`sparse_gate` is ``value`` (0 < value < 1)."""
    p = (value + _STRETCH) / (1 + 2 * _STRETCH)
    return math.log(p / (1 - p))


def _channel_projection(dim: int, rank: int, inner: int) -> nn.Sequential:
    """``dim -> rank -> inner``, the up projection zero: every channel's raw gate starts at 0,
    where ``2 squash(0) = 1`` for both squashes."""
    up = nn.Linear(rank, inner)
    nn.init.zeros_(up.weight)
    nn.init.zeros_(up.bias)
    return nn.Sequential(nn.Linear(dim, rank, bias=False), up)


@dataclass
class MemoryLayerState:
    """Streaming state of one memory layer: the convolution's last inputs and the memory."""

    conv: Tensor  # [B, kernel_size - 1, 3 * H * D]
    memory: MemoryState

    def detach(self) -> MemoryLayerState:
        return MemoryLayerState(self.conv.detach(), self.memory.detach())


@contextmanager
def memory_writes(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, every :class:`NeuralMemoryLayer` of ``model`` writes (``True``) or
    only reads its memory (``False``, see ``NeuralMemoryLayer.writes``); restored after."""
    layers = [m for m in model.modules() if isinstance(m, NeuralMemoryLayer)]
    before = [layer.writes for layer in layers]
    for layer in layers:
        layer.writes = enabled
    try:
        yield
    finally:
        for layer, value in zip(layers, before, strict=True):
            layer.writes = value


class NeuralMemoryLayer(nn.Module):
    """``x [B, T, dim] -> y [B, T, dim]`` through per-head test-time memories.

    RMSNorm -> q, k, v projections -> causal depthwise conv (k=4) -> SiLU -> l2-normalised q, k
    -> per-head memory (any preset) -> RMSNorm gated by a projection of x -> output projection.
    Gates are per token and head, from the normalised x: ``theta = max_step * sigmoid(.)``,
    ``eta, alpha = sigmoid(.)``, ``delta = softplus(.)``; their biases start at "remember, small
    steps" (alpha 0.01, theta 0.1 * max_step, eta 0.9, delta 1). With ``gates="sparse"``, theta
    and alpha are :func:`sparse_gate` instead: exactly zero is reachable, so a token the model
    does not want stored is not written at all and the memory need not fade (eta stays a
    sigmoid, below 1, so momentum always dies out).

    ``channel_rank = r > 0`` makes the step size channel-wise, as MIRAS' gates: the step of
    value channel ``c`` of a head is ``theta * w_c`` with ``w = 2 squash(U (V xn))`` from a
    rank-``r`` projection (``V: dim -> r``, ``U: r -> H * D``, ``U`` zero at the start, so
    ``w = 1``: the per-head layer), in [0, 2]; with sparse gates a channel can be left
    unwritten exactly. The forget rate and momentum stay per head (the chunk dual form
    unrolls them as ``[C, C]`` matrices of scalars); channel-wise steps train through the
    grouped-recomputation path, not the lean backward or the kernels.

    ``num_persistent`` learned tokens ``[N_p, dim]`` are read by the memory before every
    sequence (the paper's persistent memory, passed through the memory branch): the layer's
    initial state is the state after them, so they cost nothing per token and streaming still
    equals one call.

    ``mask: [B, T]`` (True = real token) makes padded tokens no-ops: zero inputs and zero step
    size and forgetting, so (with padding at the start or end of a sequence) they change nothing
    at real positions.

    ``writes`` (True by default; see :func:`memory_writes`): False freezes the memory: every
    token's step size, momentum and forgetting are zero, so the memory's weights stay as they
    are and each token reads them as they stand (the test-time-learning ablation).
    """

    writes: bool = True

    def __init__(
        self,
        dim: int,
        memory: MemoryConfig,
        max_step: float = 1.0,
        conv_kernel: int = 4,
        gates: GateForm = "sigmoid",
        num_persistent: int = 0,
        channel_rank: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.config, self.max_step, self.gates = dim, memory, max_step, gates
        inner = memory.num_heads * memory.head_dim
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.conv = CausalDepthwiseConv(3 * inner, conv_kernel)
        self.to_gates = nn.Linear(dim, 4 * memory.num_heads)
        self.memory = NeuralMemory(memory)
        self.to_out_gate = nn.Linear(dim, inner, bias=False)
        self.out_norm = GatedRMSNorm(inner)
        self.out = nn.Linear(inner, dim, bias=False)
        self.persistent = nn.Parameter(torch.randn(num_persistent, dim)) if num_persistent else None
        self.to_channel = _channel_projection(dim, channel_rank, inner) if channel_rank else None
        self._init_gates()

    def _init_gates(self) -> None:
        nn.init.normal_(self.to_gates.weight, std=0.02)
        h = self.config.num_heads
        bias = torch.empty(4, h)
        for i, name in enumerate(("theta", "eta", "alpha")):
            value = _INITIAL_GATES[name]
            sparse = self.gates == "sparse" and name != "eta"
            bias[i] = _sparse_gate_logit(value) if sparse else math.log(value / (1 - value))
        bias[3] = math.log(math.expm1(_INITIAL_DELTA))
        with torch.no_grad():
            self.to_gates.bias.copy_(bias.flatten())

    def _memory_inputs(self, x: Tensor, mask: Tensor | None, conv: Tensor):
        """The memory's ``(q, k, v)`` ``[B, T, H, D]``, its gates ``[B, T, H]`` (a dict of
        theta, eta, alpha, delta, and channel ``[B, T, H, D]`` with a channel rank) and the
        convolution's next state."""
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
        squash = sparse_gate if self.gates == "sparse" else torch.sigmoid
        theta = self.max_step * squash(raw[:, :, 0])
        eta, alpha = torch.sigmoid(raw[:, :, 1]), squash(raw[:, :, 2])
        delta = F.softplus(raw[:, :, 3])
        if keep is not None:
            theta, alpha = theta * keep, alpha * keep
        if not self.writes:
            theta, eta, alpha = (torch.zeros_like(g) for g in (theta, eta, alpha))
        gates = {"theta": theta, "eta": eta, "alpha": alpha, "delta": delta}
        if self.to_channel is not None:
            gates["channel"] = 2 * squash(self.to_channel(xn)).view(b, t, h, d)
        return (q, k, v), gates, conv_state

    def initial_state(self, batch: int, like: Tensor) -> MemoryLayerState:
        """The state before a sequence: the learned initial memory, after the persistent
        tokens when there are any."""
        state = MemoryLayerState(
            self.conv.initial_state(batch, like), self.memory.initial_state(batch, like.dtype)
        )
        if self.persistent is None:
            return state
        tokens = self.persistent.to(like.dtype).expand(batch, -1, -1)
        return self._step(tokens, None, state)[1]

    def forward(
        self, x: Tensor, mask: Tensor | None = None, state: MemoryLayerState | None = None
    ) -> tuple[Tensor, MemoryLayerState]:
        return self._step(x, mask, state or self.initial_state(x.shape[0], x))

    def _step(
        self, x: Tensor, mask: Tensor | None, state: MemoryLayerState
    ) -> tuple[Tensor, MemoryLayerState]:
        b, t, _ = x.shape
        h, d = self.config.num_heads, self.config.head_dim
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
