"""One config dataclass per backbone variant, serialisable to and from a plain dict.

Each variant's config carries its name in ``variant`` (``"lmm"``, ``"mac"``, ``"mag"``,
``"mal"``); :data:`Backbone` is the union a model config holds, told apart by that field (a
missing ``variant`` means ``"lmm"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BeforeValidator

from titans_sci.config import Config, tagged
from titans_sci.layers.memory_layer import GateForm
from titans_sci.memory import MemoryConfig
from titans_sci.memory.config import expand_preset


@dataclass(frozen=True)
class BackboneConfig(Config):
    """What every Titans backbone shares.

    Attributes:
        dim: model width D of the embeddings ``[B, T, D]`` the backbone takes.
        depth: number of blocks.
        memory: the per-head memory of every memory layer (any preset; its ``num_heads *
            head_dim`` is the memory layer's inner width).
        max_step: largest step size ``theta`` of the memory gates.
        conv_kernel: kernel size of the causal depthwise convolution on q, k, v.
        mlp_hidden: SwiGLU hidden width (``None``: 8/3 of ``dim``).
        bidirectional: also run the backbone over the reversed sequence (same weights) and
            average, for non-causal use such as sequence classification; no streaming then.
        gates: how the memory layers squash their step size theta and forget rate alpha:
            ``"sigmoid"``, or ``"sparse"``, a stretched sigmoid clipped to [0, 1] that reaches
            exactly 0 ("do not write", "do not forget"), which is what lets recall survive far
            past the training length (``benchmarks/results/long_context.md``).
        memory_persistent: learned tokens every memory layer reads before the sequence (the
            paper's persistent memory passed through the memory branch; 0: none).
        channel_gates: rank of the low-rank projection that makes the memory's step size
            channel-wise (MIRAS' channel-wise gates; 0: one step size per head and token).
    """

    dim: int = 128
    depth: int = 2
    memory: Annotated[MemoryConfig, BeforeValidator(expand_preset)] = field(
        default_factory=MemoryConfig
    )
    max_step: float = 1.0
    conv_kernel: int = 4
    mlp_hidden: int | None = None
    bidirectional: bool = False
    gates: GateForm = "sigmoid"
    memory_persistent: int = 0
    channel_gates: int = 0

    def __post_init__(self) -> None:
        for name in ("memory_persistent", "channel_gates"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{type(self).__name__}.{name}={value!r}; expected an int >= 0")
        for name in ("dim", "depth", "conv_kernel"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name}={value!r}; expected an int >= 1")
        if self.max_step <= 0:
            raise ValueError(f"{type(self).__name__}.max_step={self.max_step}; must be > 0")


@dataclass(frozen=True)
class LMMConfig(BackboneConfig):
    """Titans (LMM): blocks of a memory layer and a SwiGLU MLP, no attention."""

    variant: Literal["lmm"] = "lmm"


@dataclass(frozen=True)
class _AttentionFields(BackboneConfig):
    attention_heads: int = 4
    num_persistent: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dim % self.attention_heads:
            raise ValueError(
                f"dim={self.dim} is not divisible by attention_heads={self.attention_heads}"
            )
        if self.num_persistent < 0:
            raise ValueError(f"num_persistent={self.num_persistent}; expected >= 0")


@dataclass(frozen=True)
class MAGConfig(_AttentionFields):
    """Titans (MAG): sliding-window attention (persistent tokens, ``window``) gated by the
    memory branch."""

    variant: Literal["mag"] = "mag"
    window: int = 64


@dataclass(frozen=True)
class MALConfig(_AttentionFields):
    """Titans (MAL): a memory layer followed by sliding-window attention."""

    variant: Literal["mal"] = "mal"
    window: int = 64


@dataclass(frozen=True)
class MACConfig(_AttentionFields):
    """Titans (MAC): segments of ``segment_len`` tokens attend over [persistent | retrieved
    memory | segment]; ``segment_len`` must be a multiple of the memory's ``chunk_size``.

    ``form="paper"`` is the paper's block: the memory is written with the attention output
    ``y`` and the block adds ``o = y * M(y)`` (a gate) to the residual stream, never ``y`` on
    its own. ``form="residual"`` is this library's first form, kept for comparison: the memory
    is written with ``x + y`` and the block adds ``y + gate(y, M(x + y))``."""

    variant: Literal["mac"] = "mac"
    segment_len: int = 32
    form: Literal["paper", "residual"] = "paper"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.segment_len < 1 or self.segment_len % self.memory.chunk_size:
            raise ValueError(
                f"MACConfig.segment_len={self.segment_len} must be a positive multiple of "
                f"memory.chunk_size={self.memory.chunk_size}"
            )
        if self.memory_persistent % self.memory.chunk_size:
            raise ValueError(
                f"MACConfig.memory_persistent={self.memory_persistent} must be a multiple of "
                f"memory.chunk_size={self.memory.chunk_size} (MAC reads the memory at chunk ends)"
            )


#: Any backbone's config, told apart by its ``variant`` field.
Backbone = tagged("variant", "lmm", lmm=LMMConfig, mac=MACConfig, mag=MAGConfig, mal=MALConfig)
