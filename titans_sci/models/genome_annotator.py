"""A per-base genome annotator that reads a whole chromosome in both directions, its state
carried, in constant memory in the chromosome's length.

One reading direction (a *branch*), ``codes [B, L]`` (base codes: 0..3 = ACGT, 4 = any other
letter; :data:`titans_sci.data.dna.BASE_CODE`) -> ``logits [B, L, K]``:

1. embedding, then a causal convolution over the last ``stem_kernel`` bases (GELU): local
   features ``f [B, L, D]``;
2. every ``patch`` consecutive bases become one token (a linear map of their features);
3. the long-range *mixer* reads the tokens in order, causally, carrying its state:
   ``"memory"``, a Titans backbone (the memory writes what it reads: its reach is the whole
   chromosome); ``"attention"``, sliding-window attention over the last ``window`` tokens;
   ``"conv"``, dilated causal convolutions (a fixed receptive field). All three share
   everything else, so they compare at matched size;
4. each base adds its token's mixer output and a learned vector for its place in the patch to
   its own features, then a causal convolution over ``refine_kernel`` bases and a linear head.

A branch is causal in whole patches: the output at a base depends on the bases before it and
on the rest of its patch, never on a later patch. Reading a chromosome in pieces (each a whole
number of patches but the last), the state carried, gives the logits of one pass.

Both strands (:class:`GenomeAnnotator`): the same branch reads the sequence 5' to 3' and reads
its reverse complement 5' to 3' (the other strand, the chromosome from its end); the logits of
a base are the first reading's plus the second's at the same base, with the labels of the two
strands swapped (:data:`~titans_sci.data.annotation.STRAND_SWAP`: what is ``CDS+`` on the
reverse complement is ``CDS-`` on the sequence). So each base sees the whole chromosome (one
side through each reading), and the model is reverse-complement equivariant by construction:
annotating the reverse complement gives the reversed annotation with the strands swapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_sci.config import Config
from titans_sci.data.annotation import LABELS, STRAND_SWAP
from titans_sci.layers.attention import SlidingWindowAttention
from titans_sci.layers.basic import SwiGLU
from titans_sci.layers.memory_layer import NeuralMemoryLayer

from . import build_backbone
from .backbones import BackboneState, TitansLMM, _LMMBlock
from .config import Backbone, LMMConfig

#: Base codes: 0..3 for ACGT, 4 for anything else; the complement of code c < 4 is 3 - c.
N_CODE = 4
_COMPLEMENT = torch.tensor([3, 2, 1, 0, N_CODE])

Mixer = Literal["memory", "attention", "conv"]


@dataclass(frozen=True)
class AnnotatorConfig(Config):
    """What a :class:`GenomeAnnotator` is.

    Attributes:
        mixer: the long-range part over tokens (see the module docstring).
        backbone: the Titans backbone of the ``"memory"`` mixer; its ``dim`` and ``depth`` are
            every mixer's width and number of blocks (not bidirectional: both readings are the
            annotator's).
        patch: bases per token.
        stem_kernel: bases the causal stem convolution reads (the base and those before it).
        refine_kernel: bases the causal per-base convolution after the mixer reads.
        window: tokens each ``"attention"`` block sees (itself and those before it).
        heads: attention heads of the ``"attention"`` mixer.
        conv_kernel: taps of each dilated causal convolution over tokens.
        front: dilated convolution blocks every mixer starts with (block ``i`` has dilation
            ``2 ** i``), before its long-range part: the memory's ``depth`` blocks, as many
            attention blocks, or as many more dilated convolution blocks (the CNN).
        num_labels: labels per base (:data:`~titans_sci.data.annotation.LABELS`).
    """

    mixer: Mixer = "memory"
    backbone: Backbone = field(default_factory=lambda: LMMConfig(dim=64, depth=2))
    patch: int = 8
    stem_kernel: int = 9
    refine_kernel: int = 9
    window: int = 512
    heads: int = 4
    conv_kernel: int = 9
    front: int = 2
    num_labels: int = len(LABELS)

    def __post_init__(self) -> None:
        for name in ("patch", "stem_kernel", "refine_kernel", "window", "heads", "conv_kernel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")
        if self.front < 0:
            raise ValueError(f"front={self.front}; expected >= 0")
        if self.backbone.bidirectional:
            raise ValueError(
                "backbone.bidirectional must be false: the annotator reads both strands itself"
            )
        if self.num_labels != len(LABELS):
            raise ValueError(f"num_labels={self.num_labels}; the label set has {len(LABELS)}")

    @property
    def dim(self) -> int:
        return self.backbone.dim

    def reach(self) -> int | None:
        """At most how many bases before a base one reading can see (``None``: all of them):
        the tokens the mixer reaches back, plus the base's own patch and both convolutions."""
        if self.mixer == "memory":
            return None
        depth, k = self.backbone.depth, self.conv_kernel
        convs = self.front + (depth if self.mixer == "conv" else 0)
        tokens = sum((k - 1) * 2**i for i in range(convs))
        if self.mixer == "attention":
            tokens += depth * (self.window - 1)
        return (tokens + 1) * self.patch + self.stem_kernel - 1 + self.refine_kernel - 1


class _CausalConv(nn.Module):
    """A dense (or depthwise) convolution over time that looks back only: ``[B, T, C] -> [B,
    T, C]``, with its last inputs as the streaming state ``[B, (kernel - 1) * dilation, C]``."""

    def __init__(self, channels: int, kernel: int, dilation: int = 1, depthwise: bool = False):
        super().__init__()
        self.context = (kernel - 1) * dilation
        groups = channels if depthwise else 1
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=groups)

    def forward(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = x.new_zeros(x.shape[0], self.context, x.shape[2])
        padded = torch.cat([state, x], dim=1)
        y = self.conv(padded.transpose(1, 2)).transpose(1, 2)
        return y, padded[:, padded.shape[1] - self.context :]


class _Residual(nn.Module):
    """``x + mix(norm(x))`` then ``x + mlp(norm(x))``; ``mix`` streams a state."""

    def __init__(self, dim: int, mix: nn.Module) -> None:
        super().__init__()
        self.norm, self.mix = nn.RMSNorm(dim, eps=1e-6), mix
        self.mlp_norm, self.mlp = nn.RMSNorm(dim, eps=1e-6), SwiGLU(dim)

    def forward(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        if isinstance(self.mix, SlidingWindowAttention):
            y, state = self.mix(x, None, state)  # pre-norm inside
        else:
            y, state = self.mix(self.norm(x), state)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), state


class _Stack(nn.Module):
    """Blocks of :class:`_Residual` and a final RMSNorm; state: one entry per block."""

    def __init__(self, dim: int, mixes: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Residual(dim, mix) for mix in mixes)
        self.norm = nn.RMSNorm(dim, eps=1e-6)

    def forward(self, x: Tensor, state: list[Any] | None) -> tuple[Tensor, list[Any]]:
        states = list(state) if state is not None else [None] * len(self.blocks)
        for i, block in enumerate(self.blocks):
            x, states[i] = block(x, states[i])
        return self.norm(x), states


class _MemoryMixer(nn.Module):
    """A Titans backbone over the tokens. Each memory layer's output map starts at zero, so the
    memory joins the residual stream as its reads become useful: a memory that writes from the
    first step adds a read that changes along the chromosome before the rest of the model can
    use it, and slowed learning on yeast (``benchmarks/probe_annotation_learning.py``)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone)
        for layer in self.backbone.modules():
            if isinstance(layer, NeuralMemoryLayer):
                nn.init.zeros_(layer.out.weight)

    @property
    def silent(self) -> bool:
        """True when the memory cannot change any output or gradient: an LMM backbone whose
        memory layers' output maps are zero and frozen (the first training stage). Then each
        block is ``x -> mlp(x)`` and the memory is not run (the same outputs and gradients at
        a fraction of the cost; tested)."""
        layers = [m for m in self.backbone.modules() if isinstance(m, NeuralMemoryLayer)]
        return isinstance(self.backbone, TitansLMM) and all(
            not layer.out.weight.requires_grad and not layer.out.weight.any() for layer in layers
        )

    def forward(
        self, x: Tensor, state: BackboneState | None
    ) -> tuple[Tensor, BackboneState | None]:
        if self.silent:
            for block in self.backbone.blocks:
                assert isinstance(block, _LMMBlock)  # mlp(x + memory(x)), the memory's part 0
                x = block.mlp(x)
            return self.backbone.norm(x), state
        h, state = self.backbone(x, None, state)
        return h, state


class _Mixer(nn.Module):
    """The tokens' mixer: :attr:`AnnotatorConfig.front` dilated causal convolution blocks
    (what every mixer shares: the local patterns around a token), then the long-range part
    (``long``): the memory, attention, or more dilated convolutions. State: ``(front, long)``.
    """

    def __init__(self, config: AnnotatorConfig) -> None:
        super().__init__()
        dim, depth, k = config.dim, config.backbone.depth, config.conv_kernel
        self.front = _Stack(dim, [_CausalConv(dim, k, 2**i, depthwise=True)
                                  for i in range(config.front)])  # fmt: skip
        self.long: nn.Module
        if config.mixer == "memory":
            self.long = _MemoryMixer(config.backbone)
        elif config.mixer == "attention":
            self.long = _Stack(dim, [SlidingWindowAttention(dim, config.heads, config.window)
                                     for _ in range(depth)])  # fmt: skip
        else:
            self.long = _Stack(dim, [_CausalConv(dim, k, 2 ** (config.front + i), depthwise=True)
                                     for i in range(depth)])  # fmt: skip

    def forward(self, x: Tensor, state: tuple[Any, Any] | None) -> tuple[Tensor, tuple[Any, Any]]:
        front, long = (None, None) if state is None else state
        x, front = self.front(x, front)
        x, long = self.long(x, long)
        return x, (front, long)


@dataclass
class BranchState:
    """Where one reading of a stream stands: the last inputs of the two convolutions, the
    mixer's state, the bases read so far, and whether the stream has ended (a last piece
    that was not whole patches)."""

    stem: Tensor
    refine: Tensor
    mixer: Any
    bases: int
    ended: bool = False

    def detach(self) -> BranchState:
        """The state cut from the graph and copied into tensors of its own: a state's tensors
        are slices of a piece's activations (25 MB of them after 32 kb), which a kept state
        would otherwise keep alive."""
        owned: BranchState = _owned(self)
        return owned


def _owned(state: Any) -> Any:
    """``state`` with every tensor in it (in lists, tuples and dataclasses) detached and
    copied."""
    if isinstance(state, Tensor):
        return state.detach().clone()
    if isinstance(state, (list, tuple)):
        return type(state)(_owned(s) for s in state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        fields = {f.name: _owned(getattr(state, f.name)) for f in dataclasses.fields(state)}
        return dataclasses.replace(state, **fields)
    return state


class GenomeAnnotator(nn.Module):
    """``codes [B, L]`` -> per-base logits ``[B, L, K]`` over both strands (module docstring).

    :meth:`branch` is one reading with its streaming state; :meth:`forward` adds both."""

    swap: Tensor  # [K]: the label of each label on the other strand

    def __init__(self, config: AnnotatorConfig) -> None:
        super().__init__()
        self.config = config
        dim, patch = config.dim, config.patch
        self.embedding = nn.Embedding(N_CODE + 1, dim)
        self.stem = _CausalConv(dim, config.stem_kernel)
        self.to_token = nn.Linear(patch * dim, dim)
        self.mixer = _Mixer(config)
        self.from_token = nn.Linear(dim, dim)
        nn.init.zeros_(self.from_token.weight)  # starts as a local model; learns to use the mixer
        self.place = nn.Parameter(torch.zeros(patch, dim))
        self.refine = _CausalConv(dim, config.refine_kernel)
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, config.num_labels)
        self.register_buffer("swap", torch.tensor(STRAND_SWAP), persistent=False)

    def _tokens(self, codes: Tensor, stem: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``codes [B, n]`` padded with ``N`` to whole patches: the bases' stem features ``f
        [B, n', D]``, the tokens ``[B, n' / patch, D]`` and the stem's state after them."""
        b, n = codes.shape
        padded = F.pad(codes, (0, -n % self.config.patch), value=N_CODE)
        f, stem = self.stem(self.embedding(padded), stem)
        f = F.gelu(f)
        return f, self.to_token(f.reshape(b, -1, self.config.patch * f.shape[-1])), stem

    def branch(self, codes: Tensor, state: BranchState | None = None) -> tuple[Tensor, BranchState]:
        """One reading of the next ``codes [B, n]`` of a stream (``state`` from the previous
        piece, ``None`` at its start): ``(logits [B, n, K], state)``. Every piece but the last
        must be a whole number of patches."""
        patch = self.config.patch
        if state is not None and state.ended:
            raise ValueError(
                f"the stream already ended: a piece of {state.bases % patch} bases (not a "
                f"multiple of the patch, {patch}) can only be the last"
            )
        b, n = codes.shape
        f, tokens, stem = self._tokens(codes, None if state is None else state.stem)
        h, mixer = self.mixer(tokens, None if state is None else state.mixer)
        z = f + (self.from_token(h)[:, :, None] + self.place).reshape(b, -1, f.shape[-1])
        r, refine = self.refine(z, None if state is None else state.refine)
        logits = self.head(self.norm(z + F.gelu(r)))[:, :n]
        bases = n + (0 if state is None else state.bases)
        return logits, BranchState(stem, refine, mixer, bases, ended=n % patch != 0)

    def stages(self) -> list[tuple[str, list[nn.Parameter]]]:
        """The training stages of "local, then memory": first every parameter but the memory
        layers' (whose output maps start at zero and stay there: the memory adds nothing, the
        rest learns as a model without it), then every parameter. Without a memory, one stage
        (named ``""``)."""
        everything = list(self.parameters())
        if not isinstance(self.mixer.long, _MemoryMixer):
            return [("", everything)]
        memory = {id(p) for m in self.modules() if isinstance(m, NeuralMemoryLayer)
                  for p in m.parameters()}  # fmt: skip
        return [("local", [p for p in everything if id(p) not in memory]), ("memory", everything)]

    @torch.no_grad()
    def surprise(self, codes: Tensor) -> Tensor:
        """How surprised the memories are by each token of the first reading (5' to 3') of
        ``codes [B, L]``: ``[B, ceil(L / patch), layers, heads]`` (see
        ``TitansBackbone.surprise``); only a ``"memory"`` mixer has one."""
        memory = self.mixer.long
        if not isinstance(memory, _MemoryMixer):
            raise ValueError(f"a {self.config.mixer!r} annotator has no memory to be surprised")
        _, tokens, _ = self._tokens(codes, None)
        tokens, _ = self.mixer.front(tokens, None)
        return memory.backbone.surprise(tokens)

    def forward(self, codes: Tensor) -> Tensor:
        """Logits ``[B, L, K]`` of whole sequences ``codes [B, L]`` (both readings, one pass
        each)."""
        forward, _ = self.branch(codes)
        backward, _ = self.branch(reverse_complement_codes(codes))
        return combine(forward, backward, self.swap)


def reverse_complement_codes(codes: Tensor) -> Tensor:
    """The reverse complement of base codes ``[..., L]`` (``N`` stays ``N``)."""
    return _COMPLEMENT.to(codes.device)[codes.flip(-1).long()]


def combine(forward: Tensor, backward: Tensor, swap: Tensor) -> Tensor:
    """The logits of both readings at each base: ``forward [B, L, K]`` plus ``backward`` (the
    reverse complement's reading, ``[B, L, K]`` in its own order) reversed, its strand labels
    swapped."""
    return forward + backward.flip(1)[..., swap]


def _bounds(length: int, piece: int, reset_every: int | None) -> list[tuple[int, int, bool]]:
    """``(start, stop, reset)`` of the pieces of a ``length``-base reading: ``piece`` bases
    each, also cut where the state is reset (every ``reset_every`` bases)."""
    cuts = set(range(0, length, piece))
    if reset_every:
        cuts |= set(range(0, length, reset_every))
    starts = sorted(cuts)
    stops = [*starts[1:], length]
    every = reset_every or 0
    return [(a, b, every > 0 and a % every == 0) for a, b in zip(starts, stops, strict=True)]


@torch.no_grad()
def stream_logits(
    model: GenomeAnnotator,
    codes: np.ndarray,
    piece: int = 1 << 16,
    reset_every: int | None = None,
    out: np.ndarray | None = None,
    progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """The logits ``[L, K]`` (float32) of a whole chromosome, ``codes [L]`` (uint8 base
    codes), read in pieces of ``piece`` bases, each reading's state carried from piece to
    piece, so the model holds a constant amount whatever ``L``; they equal ``model(codes)``.
    ``reset_every``: the state is dropped every that many bases of each reading (the same
    model with a shorter memory; ``None``: never). ``out``: where to write them (an array or
    a ``numpy.memmap`` of shape ``[L, K]``; a new array if ``None``; ``codes`` may be a
    memmap too). ``progress``: called with the bases of each piece read."""
    patch = model.config.patch
    for name, value in (("piece", piece), ("reset_every", reset_every or patch)):
        if value < 1 or value % patch:
            raise ValueError(f"{name}={value}; expected a positive multiple of the patch, {patch}")
    length, k = len(codes), model.config.num_labels
    out = np.empty((length, k), dtype=np.float32) if out is None else out
    if out.shape != (length, k):
        raise ValueError(f"out has shape {out.shape}; expected {(length, k)}")
    model.eval()
    swap = model.swap.cpu().numpy()
    complement = _COMPLEMENT.numpy().astype(np.uint8)
    device = next(model.parameters()).device
    for backward in (False, True):
        state = None
        for start, stop, reset in _bounds(length, piece, reset_every):
            if reset:
                state = None
            if backward:  # the reverse complement's bases start..stop: the chromosome's end first
                bases = complement[codes[length - stop : length - start][::-1]]
            else:
                bases = codes[start:stop]
            x = torch.from_numpy(np.ascontiguousarray(bases, dtype=np.int64))[None].to(device)
            logits, state = model.branch(x, state)
            values = logits[0].float().cpu().numpy()
            if backward:
                out[length - stop : length - start] += values[::-1][:, swap]
            else:
                out[start:stop] = values
            if progress is not None:
                progress(stop - start)
    return out
