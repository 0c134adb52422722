"""Titans backbones: LMM, MAG, MAL and MAC over embeddings ``[B, T, D]``.

Every backbone is called ``model(x, mask=None, state=None) -> (h, state)``: ``x: [B, T, D]``
embeddings, ``mask: [B, T]`` bool (True = real token), ``h: [B, T, D]``. Feeding a sequence in
pieces, carrying the returned state, gives exactly the outputs of one call (MAC replays the
current partial segment, so this holds at any split, not only at segment boundaries), and the
state never grows with the length processed. With ``bidirectional=True`` the same weights also
read the reversed sequence and the two are averaged; such a backbone does not stream. The
reversal is per sequence and over its real tokens only (padding stays where it is), so a
right-padded sequence gets exactly the outputs it gets alone, whatever the batch.

``after_block`` (``(i, h [B, T, D]) -> h``, optional) is applied to the output of block ``i``
before the next block reads it: a caller's own mixing between the blocks (the forecaster's
channel mixing mixes the channels' sequences at each position). It must act on each position
alone for the streaming and causality above to hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_sci.layers.attention import AttentionState, SlidingWindowAttention
from titans_sci.layers.basic import SwiGLU
from titans_sci.layers.memory_layer import MemoryLayerState, NeuralMemoryLayer
from titans_sci.memory import NonFiniteSurpriseError, recording_surprise
from titans_sci.padding import reversal
from titans_sci.recompute import recomputed

from .config import BackboneConfig, LMMConfig, MACConfig, MAGConfig, MALConfig

AfterBlock = Callable[[int, Tensor], Tensor]
"""``(block index, h [B, T, D]) -> h [B, T, D]``: what a caller runs between the blocks."""


@dataclass
class BackboneState:
    """Streaming state of a backbone: one entry per block, plus (MAC) the partial segment."""

    config: dict[str, Any]
    blocks: list[Any]
    pending: tuple[Tensor, Tensor] | None = None  # MAC: (x, mask) since the last segment

    def detach(self) -> BackboneState:
        pending = None if self.pending is None else (self.pending[0].detach(), self.pending[1])
        return BackboneState(self.config, [b.detach() for b in self.blocks], pending)


class _Gate(nn.Module):
    """``norm(y) * sigmoid(norm(m))``: attention output gated by the memory branch (MAG, MAC)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm_y, self.norm_m = nn.RMSNorm(dim, eps=1e-6), nn.RMSNorm(dim, eps=1e-6)

    def forward(self, y: Tensor, m: Tensor) -> Tensor:
        return self.norm_y(y) * torch.sigmoid(self.norm_m(m))


class _MLP(nn.Module):
    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(config.dim, eps=1e-6)
        self.mlp = SwiGLU(config.dim, config.mlp_hidden)

    def forward(self, x: Tensor) -> Tensor:
        return x + recomputed(self._branch, x)

    def _branch(self, x: Tensor) -> Tensor:
        return self.mlp(self.norm(x))


def _memory_layer(config: BackboneConfig) -> NeuralMemoryLayer:
    return NeuralMemoryLayer(
        config.dim,
        config.memory,
        config.max_step,
        config.conv_kernel,
        config.gates,
        config.memory_persistent,
        config.channel_gates,
    )


def _attention(config: MAGConfig | MALConfig | MACConfig, window: int) -> SlidingWindowAttention:
    return SlidingWindowAttention(config.dim, config.attention_heads, window, config.num_persistent)


class _LMMBlock(nn.Module):
    def __init__(self, config: LMMConfig) -> None:
        super().__init__()
        self.memory, self.mlp = _memory_layer(config), _MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None, state: MemoryLayerState | None):
        y, state = self.memory(x, mask, state)
        return self.mlp(x + y), state


@dataclass
class _PairState:
    memory: MemoryLayerState
    attention: AttentionState

    def detach(self) -> _PairState:
        return _PairState(self.memory.detach(), self.attention.detach())


class _MALBlock(nn.Module):
    def __init__(self, config: MALConfig) -> None:
        super().__init__()
        self.memory, self.attention = _memory_layer(config), _attention(config, config.window)
        self.mlp = _MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None, state: _PairState | None):
        m, memory_state = self.memory(x, mask, None if state is None else state.memory)
        x = x + m
        a, attention_state = recomputed(
            self.attention, x, mask, None if state is None else state.attention
        )
        return self.mlp(x + a), _PairState(memory_state, attention_state)


class _MAGBlock(nn.Module):
    def __init__(self, config: MAGConfig) -> None:
        super().__init__()
        self.memory, self.attention = _memory_layer(config), _attention(config, config.window)
        self.gate, self.mlp = _Gate(config.dim), _MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None, state: _PairState | None):
        a, attention_state = recomputed(
            self.attention, x, mask, None if state is None else state.attention
        )
        m, memory_state = self.memory(x, mask, None if state is None else state.memory)
        return self.mlp(x + self.gate(a, m)), _PairState(memory_state, attention_state)


class _MACBlock(nn.Module):
    """Per segment: read the memory with the segment's queries (state before the segment);
    attend over [persistent | retrieved | segment] (causal within the segment); write the
    attention output ``y`` into the memory and read it back, ``M(y)`` (read after each token's
    write, so causal); add ``o = gate(y, M(y))`` to the residual stream (``form="paper"``; see
    :class:`MACConfig` for ``"residual"``)."""

    def __init__(self, config: MACConfig) -> None:
        super().__init__()
        mem = config.memory
        self.segment_len, self.paper = config.segment_len, config.form == "paper"
        self.memory = _memory_layer(config)
        self.read_norm = nn.RMSNorm(config.dim, eps=1e-6)
        self.to_read_query = nn.Linear(config.dim, mem.num_heads * mem.head_dim, bias=False)
        self.from_read = nn.Linear(mem.num_heads * mem.head_dim, config.dim, bias=False)
        self.attention = _attention(config, config.segment_len)
        self.gate, self.mlp = _Gate(config.dim), _MLP(config)

    def _retrieve(self, x: Tensor, state: MemoryLayerState) -> Tensor:
        mem = self.memory.config
        b, t, _ = x.shape
        q = F.silu(self.to_read_query(self.read_norm(x))).view(b, t, mem.num_heads, mem.head_dim)
        read = self.memory.memory.read(F.normalize(q, dim=-1), state.memory)
        return self.from_read(read.flatten(2))

    def forward(self, x: Tensor, mask: Tensor | None, state: MemoryLayerState | None):
        """Segments of ``x``; returns the outputs and the state after the last *whole* segment
        (the caller replays a trailing partial segment)."""
        state = state or self.memory.initial_state(x.shape[0], x)
        outputs, boundary_state = [], state
        for start in range(0, x.shape[1], self.segment_len):
            seg = x[:, start : start + self.segment_len]
            seg_mask = None if mask is None else mask[:, start : start + self.segment_len]
            retrieved = self._retrieve(seg, state)
            y = recomputed(self.attention.forward_with_memory, seg, retrieved, seg_mask)
            if not self.paper:
                seg = seg + y
            try:
                m, state = self.memory(y if self.paper else seg, seg_mask, state)
            except NonFiniteSurpriseError as error:
                raise error.moved(start) from None
            outputs.append(self.mlp(seg + self.gate(y, m)))
            if outputs[-1].shape[1] == self.segment_len:
                boundary_state = state
        return torch.cat(outputs, dim=1), boundary_state


_BLOCKS: dict[type[BackboneConfig], type[nn.Module]] = {
    LMMConfig: _LMMBlock,
    MALConfig: _MALBlock,
    MAGConfig: _MAGBlock,
    MACConfig: _MACBlock,
}


class TitansBackbone(nn.Module):
    """A stack of Titans blocks with a final RMSNorm; see the module docstring for the call."""

    config_class: type[BackboneConfig] = BackboneConfig

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ValueError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got "
                f"{type(config).__name__}"
            )
        self.config = config
        block = _BLOCKS[type(config)]
        self.blocks = nn.ModuleList(block(config) for _ in range(config.depth))
        self.norm = nn.RMSNorm(config.dim, eps=1e-6)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        state: BackboneState | None = None,
        after_block: AfterBlock | None = None,
    ) -> tuple[Tensor, BackboneState | None]:
        self._check(x, mask, state)
        if self.config.bidirectional:
            # Both readings in one batch: the same weights, half the calls.
            order = reversal(mask, x.shape[1], x.device)
            both = torch.cat([x, _gather_time(x, order)])
            if after_block is not None:
                raise ValueError("after_block needs a causal backbone; this one is bidirectional")
            h, _ = self._causal(both, None if mask is None else torch.cat([mask, mask]), None)
            forward, backward = h.chunk(2)
            return (forward + _gather_time(backward, order)) / 2, None
        return self._causal(x, mask, state, after_block)

    @torch.no_grad()
    def surprise(
        self, x: Tensor, mask: Tensor | None = None, after_block: AfterBlock | None = None
    ) -> Tensor:
        """How surprised each memory layer is by each token, reading left to right: ``[B, T,
        L, H]`` for ``L`` memory layers (one per block) of ``H`` heads. A token's surprise is
        the norm of the gradient of its memory's attentional bias with respect to the memory's
        weights when the memory writes it (see :meth:`NeuralMemory.surprise`): large where the
        memory did not expect what it read. Bidirectional backbones report the forward pass."""
        return self.surprise_and_state(x, mask, after_block=after_block)[0]

    @torch.no_grad()
    def surprise_and_state(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        state: BackboneState | None = None,
        after_block: AfterBlock | None = None,
    ) -> tuple[Tensor, BackboneState]:
        """:meth:`surprise` of a piece of a stream, and the state after it: feeding a sequence
        in pieces, carrying the state, gives the surprise of one call. A bidirectional
        backbone streams here too, since its forward pass is causal."""
        self._check(x, mask, None)
        if state is not None:
            self._check_state(x, state)
        with recording_surprise(self) as sinks:
            _, state = self._causal(x, mask, state, after_block)
        length = x.shape[1]  # MAC replays its partial segment: keep this call's tokens
        traces = [
            torch.cat(sink, dim=1)[:, -length:]
            if length
            else x.new_zeros(x.shape[0], 0, memory.config.num_heads)
            for memory, sink in sinks.items()
        ]
        return torch.stack(traces, dim=2), state

    def _causal(
        self,
        x: Tensor,
        mask: Tensor | None,
        state: BackboneState | None,
        after_block: AfterBlock | None = None,
    ) -> tuple[Tensor, BackboneState]:
        states = [None] * len(self.blocks) if state is None else list(state.blocks)
        for i, block in enumerate(self.blocks):
            try:
                x, states[i] = block(x, mask, states[i])
            except NonFiniteSurpriseError as error:
                raise error.moved(where=f"block {i} ({type(self).__name__})") from None
            if after_block is not None:
                x = after_block(i, x)
        return recomputed(self.norm, x), BackboneState(self.config.to_dict(), states)

    def _check(self, x: Tensor, mask: Tensor | None, state: BackboneState | None) -> None:
        dim = self.config.dim
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected embeddings [B, T, {dim}]")
        if not x.is_floating_point():
            raise ValueError(f"x has dtype {x.dtype}; expected a floating dtype")
        if mask is not None and (
            not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != x.shape[:2]
        ):
            got = f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, Tensor) else type(mask)
            raise ValueError(f"mask is {got}; expected a bool tensor [B, T] = {tuple(x.shape[:2])}")
        if state is None:
            return
        if self.config.bidirectional:
            raise ValueError("a bidirectional backbone does not stream; pass state=None")
        self._check_state(x, state)

    def _check_state(self, x: Tensor, state: BackboneState) -> None:
        if not isinstance(state, BackboneState) or state.config != self.config.to_dict():
            raise ValueError(
                f"state comes from another backbone config; this one is "
                f"{type(self.config).__name__}({self.config.to_dict()})"
            )
        batch = _state_batch(state)
        if batch is not None and batch != x.shape[0]:
            raise ValueError(f"state is for batch size {batch}; x has batch size {x.shape[0]}")


def _state_batch(state: BackboneState) -> int | None:
    for block in state.blocks:
        layer = block if isinstance(block, MemoryLayerState) else getattr(block, "memory", None)
        if isinstance(layer, MemoryLayerState):
            return layer.conv.shape[0]
    return None


class TitansLMM(TitansBackbone):
    """Titans (LMM): the neural memory alone (memory layer + SwiGLU per block)."""

    config_class = LMMConfig


class TitansMAG(TitansBackbone):
    """Titans (MAG): sliding-window attention with persistent tokens, gated by the memory."""

    config_class = MAGConfig


class TitansMAL(TitansBackbone):
    """Titans (MAL): memory layer, then sliding-window attention with persistent tokens."""

    config_class = MALConfig


class TitansMAC(TitansBackbone):
    """Titans (MAC): memory as context for segment-local attention (see ``_MACBlock``)."""

    config_class = MACConfig
    config: MACConfig  # checked in TitansBackbone.__init__

    def _causal(
        self,
        x: Tensor,
        mask: Tensor | None,
        state: BackboneState | None,
        after_block: AfterBlock | None = None,
    ) -> tuple[Tensor, BackboneState]:
        replayed = 0
        if state is not None and state.pending is not None:
            pending_x, pending_mask = state.pending
            replayed = pending_x.shape[1]
            x = torch.cat([pending_x, x], dim=1)
            mask = torch.cat([pending_mask, _all_real(x[:, replayed:], mask)], dim=1)
        h, new_state = super()._causal(x, mask, state, after_block)
        tail = x.shape[1] % self.config.segment_len
        if tail:
            tail_x = x[:, x.shape[1] - tail :]
            tail_mask = _all_real(x, mask)[:, x.shape[1] - tail :]
            new_state.pending = (tail_x, tail_mask)
        return h[:, replayed:], new_state


def _all_real(x: Tensor, mask: Tensor | None) -> Tensor:
    """``mask``, or an all-True mask ``[B, T]`` for ``x`` without one."""
    if mask is not None:
        return mask
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


def _gather_time(x: Tensor, order: Tensor) -> Tensor:
    """``x [B, T, D]`` reordered in time by ``order [B or 1, T]``."""
    return x.gather(1, order[..., None].expand(x.shape[0], -1, x.shape[-1]))
