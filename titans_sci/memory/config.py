"""Configuration of a MIRAS memory: architecture, attentional bias, retention, algorithm.

The four choices of the MIRAS framework are plain fields of one frozen dataclass. Presets give the
combinations of the Titans and MIRAS papers:

=========  ============  ==============  ============================  =================
preset     architecture  bias            retention                     algorithm
=========  ============  ==============  ============================  =================
titans     mlp (L=2)     l2              decay                         momentum
moneta     mlp (L=2)     lp (p=3)        decay + lq normalise (q=4)    gd
yaad       mlp (L=2)     huber           decay                         gd
memora     mlp (L=2)     l2              decay + KL/softmax + lag      gd
=========  ============  ==============  ============================  =================

Choices the papers leave open, and what is taken here:

* Gates are per token and per head scalars. ``alpha`` is always the *forget* rate: every retention
  multiplies the memory's free parameters by ``1 - alpha_t`` per token (Titans' weight decay;
  MIRAS' retention rate is ``1 - alpha_t`` in this naming).
* Losses are sums over the output dimension, with ``1/2`` on the square (``bias="l2"``), so that the
  surprise of a linear memory is ``(k W - v)^T k``; the step size ``theta`` absorbs any other scale.
* Memory reads happen after the token's own write (read-after-write, causal).
* Inside a chunk every gradient is taken at the chunk-start memory; momentum and forgetting stay per
  token. Non-linear retention maps (lq normalisation, softmax, soft threshold) act on the state at
  chunk ends; reads inside a chunk use the linear iterate (for ``lq`` scaled by the chunk-start
  normaliser), and the last token of each complete chunk reads the exactly mapped state, so chunk
  size 1 is exact online learning for every preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from titans_sci.config import Config, build

Architecture = Literal["mlp", "linear"]
Bias = Literal["l2", "lp", "huber", "value_robust"]
Retention = Literal["decay", "lq", "kl", "elastic"]
Algorithm = Literal["momentum", "gd"]
Backend = Literal["auto", "torch", "triton", "autograd"]

#: The options of each choice field, read from its ``Literal`` (written once, above).
_CHOICES: dict[str, tuple[str, ...]] = {
    "architecture": get_args(Architecture),
    "bias": get_args(Bias),
    "retention": get_args(Retention),
    "algorithm": get_args(Algorithm),
    "backend": get_args(Backend),
}

PRESETS: dict[str, dict[str, Any]] = {
    "titans": dict(bias="l2", retention="decay", algorithm="momentum"),
    "moneta": dict(bias="lp", p=3.0, retention="lq", q=4.0, algorithm="gd"),
    "yaad": dict(bias="huber", retention="decay", algorithm="gd"),
    "memora": dict(bias="l2", retention="kl", algorithm="gd"),
}


@dataclass(frozen=True)
class MemoryConfig(Config):
    """One MIRAS memory per head.

    Attributes:
        num_heads: H, independent memories per layer.
        head_dim: D, width of keys, values and queries of one head.
        architecture: ``"mlp"``: ``M(x) = x + LN(W_L s(... s(W_1 x)))`` with GELU ``s``, hidden
            width ``expansion * D`` and a LayerNorm without affine parameters (MIRAS section 5.3);
            ``"linear"``: ``M(x) = x W`` (online linear regression).
        depth: number of weight matrices of the MLP memory (L >= 2).
        expansion: hidden width of the MLP memory as a multiple of ``head_dim``.
        bias: attentional bias (inner loss on ``e = M(k) - v``). ``"l2"``: ``1/2 ||e||^2``.
            ``"lp"``: ``(1/p) sum (e^2 + eps)^(p/2)``, whose gradient is the smooth
            ``sign(e) |e|^(p-1)`` with ``sign(e) ~ e / sqrt(e^2 + eps)`` and
            ``|e| ~ sqrt(e^2 + eps)`` (MIRAS remark 5; this surrogate, unlike ``tanh``, is the
            exact gradient of a smooth loss). ``"huber"``: Yaad's switch (MIRAS eq. 16), ``l2`` if
            ``||e||_2 <= delta_t`` else ``delta_t`` times the smooth ``l1`` loss.
            ``"value_robust"``: ``1/2 ||e||^2 + delta_t ||e||_2`` (MIRAS eq. 17, the worst case
            over value shifts of radius ``delta_t``; the constant ``delta^2/2`` is dropped).
        p: exponent of the ``lp`` bias.
        retention: how the memory forgets and which set it lives on. All of them decay the free
            parameters by ``1 - alpha_t``. ``"decay"``: nothing more (Titans). ``"lq"``: the state
            is an accumulator ``A`` and the memory is ``A / ||A||_q^(q-2)`` per weight matrix
            (entrywise q-norm; Moneta, MIRAS eqs. 24-25). ``"kl"``: the state is a matrix of
            logits ``Z`` and the memory is ``simplex_scale * softmax(Z)`` over each column (the
            input axis), the KL retention of Memora (MIRAS eq. 27), with a lag token: the first
            token of each chunk takes one exact step alone (MIRAS eq. 30). ``"elastic"``: the state
            is an accumulator ``A`` and the memory its soft threshold ``S_gamma(A)`` with
            ``gamma = elastic_threshold`` (FTRL elastic net, MIRAS eq. 23).
        q: exponent of the ``lq`` normalisation.
        simplex_scale: ``c``, the sum of each column of a ``kl`` memory; ``None`` takes
            ``sqrt(fan_in)`` of each matrix, so its entries start at the scale of a standard
            initialisation (with ``c = 1`` an MLP memory's entries are ``1/fan_in`` and it
            barely learns: its recall in the associative-recall demo stays at chance).
        elastic_threshold: ``gamma`` of the ``elastic`` soft threshold.
        algorithm: ``"momentum"``: ``S_t = eta_t S_{t-1} - theta_t g_t`` (Titans);
            ``"gd"``: plain gradient steps ``-theta_t g_t`` (MIRAS models; ``eta`` is unused).
        chunk_size: b, tokens per chunk whose gradients share the chunk-start memory (1 to 256).
        eps: smoothing constant of the smooth sign and absolute value.
        ln_eps: epsilon of the memory's LayerNorm.
        backend: which implementation the chunked path uses. ``"auto"``: the Triton kernels on
            CUDA tensors when they cover this memory (``titans_sci.kernels.supports``), else
            PyTorch; ``"torch"``: always the chunked PyTorch path, with its explicit lean
            backward (:mod:`~titans_sci.memory.lean`) where that covers the memory and
            recomputation per group of chunks (activation checkpointing) where it does not;
            ``"triton"``: always the kernels (an error if they do not cover this memory or the
            tensors are not on CUDA, unless ``TRITON_INTERPRET=1`` runs them on the CPU);
            ``"autograd"``: the chunked PyTorch path under plain autograd, the reference the
            fast paths are tested against (it keeps every intermediate: slow, memory-hungry).
        init_scale: initial free parameters are ``N(0, init_scale^2 / fan_in)``; for ``kl`` they
            are logits and ``N(0, init_scale^2)``.
    """

    num_heads: int = 4
    head_dim: int = 32
    architecture: Architecture = "mlp"
    depth: int = 2
    expansion: int = 4
    bias: Bias = "l2"
    p: float = 3.0
    retention: Retention = "decay"
    q: float = 4.0
    simplex_scale: float | None = None
    elastic_threshold: float = 1e-3
    algorithm: Algorithm = "momentum"
    chunk_size: int = 16
    eps: float = 1e-6
    ln_eps: float = 1e-5
    init_scale: float = 1.0
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        for name, options in _CHOICES.items():
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"MemoryConfig.{name}={value!r}; expected one of {options}")
        positive_ints = ("num_heads", "head_dim", "expansion", "chunk_size")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MemoryConfig.{name}={value!r}; expected a positive integer")
        if self.architecture == "mlp" and self.depth < 2:
            raise ValueError(f"MemoryConfig.depth={self.depth}; an MLP memory needs depth >= 2")
        if not 1 <= self.chunk_size <= 256:
            raise ValueError(f"MemoryConfig.chunk_size={self.chunk_size}; expected 1 to 256")
        if self.p < 1:
            raise ValueError(f"MemoryConfig.p={self.p}; the lp bias needs p >= 1")
        if self.q <= 1:
            raise ValueError(f"MemoryConfig.q={self.q}; the lq retention needs q > 1")
        for name in ("simplex_scale", "eps", "ln_eps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"MemoryConfig.{name}={value}; must be > 0")
        if self.elastic_threshold < 0:
            raise ValueError(
                f"MemoryConfig.elastic_threshold={self.elastic_threshold}; must be >= 0"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MemoryConfig:
        """The named preset (``titans``, ``moneta``, ``yaad``, ``memora``) with ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown memory preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def needs_delta(self) -> bool:
        """Whether the bias reads the per-token ``delta`` gate (Huber threshold, value radius)."""
        return self.bias in ("huber", "value_robust")

    @property
    def uses_momentum(self) -> bool:
        return self.algorithm == "momentum"

    def weight_shapes(self) -> list[tuple[int, int]]:
        """``(fan_in, fan_out)`` of each weight matrix of one head's memory."""
        d = self.head_dim
        if self.architecture == "linear":
            return [(d, d)]
        hidden = self.expansion * d
        return [(d, hidden)] + [(hidden, hidden)] * (self.depth - 2) + [(hidden, d)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryConfig:
        """The config :meth:`to_dict` wrote, or a task file's memory table (see
        :func:`expand_preset`)."""
        return build(cls, expand_preset(data), "MemoryConfig")

    def replace(self, **changes: Any) -> MemoryConfig:
        return replace(self, **changes)


def expand_preset(data: Any) -> Any:
    """A memory table with a ``preset`` key (``{"preset": "yaad", "num_heads": 4}``) as the
    preset's fields with the table's overrides; any other value unchanged."""
    if not isinstance(data, dict) or "preset" not in data:
        return data
    data = dict(data)
    name = data.pop("preset")
    if name not in PRESETS:
        raise ValueError(f"unknown memory preset {name!r}; expected one of {sorted(PRESETS)}")
    return {**PRESETS[name], **data}
