"""A Titans forecaster: instance normalisation -> patches -> Titans backbone -> forecast head.

``x [B, L, C]`` (lookback ``L``, ``C`` channels) -> a forecast of ``[B, H, C]``:

1. Instance normalisation (RevIN without affine): each window and channel is shifted by its
   mean and divided by its standard deviation; the head's output is mapped back.
2. Patching (as PatchTST): the window is cut into patches of ``patch_len`` steps every
   ``stride`` steps (the last value repeated ``stride`` times at the end, so the newest steps
   get a full patch). In ``channel_independent`` mode every channel is its own univariate
   sequence of patches (weights shared across channels); in ``multivariate`` mode a patch holds
   all channels.
3. Each patch is linearly embedded to ``dim`` (plus a learned position embedding) and the
   backbone (any Titans variant) reads the sequence of patches.
4. The head (point, Student-t or quantile; see :mod:`titans_sci.heads.forecasting`) reads the
   flattened patch features and predicts all ``H`` steps at once. With ``lookback_skip`` it
   also reads the normalised lookback itself, so the forecast is the backbone's term plus a
   linear map of the window (RLinear's lookback->horizon map, learned jointly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from titans_sci.config import Config
from titans_sci.heads.forecasting import HEADS, QuantileHead

from . import build_backbone
from .config import Backbone, LMMConfig

MODES = ("channel_independent", "multivariate")
LOSS_UNITS = ("window", "data")


@dataclass(frozen=True)
class ForecasterConfig(Config):
    """What a :class:`TitansForecaster` is.

    Attributes:
        lookback: input steps ``L``.
        horizon: forecast steps ``H``.
        channels: number of series ``C`` in a window.
        backbone: the Titans backbone's config (its class picks the variant; its ``dim`` is the
            patch embedding width).
        mode: ``"channel_independent"`` or ``"multivariate"`` (see the module docstring).
        patch_len: steps per patch.
        stride: steps between patch starts.
        head: ``"point"``, ``"student_t"`` or ``"quantile"``.
        quantiles: the quantile head's levels (kept sorted, the order of its output axis).
        instance_norm: normalise each window (and undo it on the forecast).
        dropout: dropout on the patch embeddings and before the head.
        lookback_skip: the head also reads the normalised lookback window (``L`` values per
            channel-independent sequence, ``L * C`` in multivariate mode): a linear
            lookback->horizon path beside the backbone (under the head's dropout too).
    """

    lookback: int = 96
    horizon: int = 96
    channels: int = 1
    backbone: Backbone = field(default_factory=LMMConfig)
    mode: Literal["channel_independent", "multivariate"] = "channel_independent"
    patch_len: int = 16
    stride: int = 8
    head: Literal["point", "student_t", "quantile"] = "point"
    quantiles: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    instance_norm: bool = True
    dropout: float = 0.0
    lookback_skip: bool = False

    def __post_init__(self) -> None:
        for name in ("lookback", "horizon", "channels", "patch_len", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ForecasterConfig.{name}={value!r}; expected an int >= 1")
        if self.patch_len > self.lookback:
            raise ValueError(
                f"ForecasterConfig.patch_len={self.patch_len} is longer than lookback="
                f"{self.lookback}"
            )
        if self.mode not in MODES:
            raise ValueError(f"ForecasterConfig.mode={self.mode!r}; expected one of {MODES}")
        if self.head not in HEADS:
            raise ValueError(f"ForecasterConfig.head={self.head!r}; expected one of {list(HEADS)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ForecasterConfig.dropout={self.dropout}; expected in [0, 1)")
        object.__setattr__(self, "quantiles", tuple(sorted(float(q) for q in self.quantiles)))

    @property
    def num_patches(self) -> int:
        """Patches per window: ``(L - patch_len) // stride + 2`` (the padded end adds one)."""
        return (self.lookback - self.patch_len) // self.stride + 2


class TitansForecaster(nn.Module):
    """``x [B, L, C] -> forecast`` (``[B, H, C]`` for the point head; a ``StudentT`` of batch
    shape ``[B, H, C]``; or quantiles ``[B, H, C, Q]``). :meth:`loss` and :meth:`predict` work
    for every head."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        if config.backbone.bidirectional:
            raise ValueError("a forecaster reads its window causally; use bidirectional=False")
        self.config = config
        width = 1 if config.mode == "channel_independent" else config.channels
        dim = config.backbone.dim
        self.embed = nn.Linear(config.patch_len * width, dim)
        self.position = nn.Parameter(torch.zeros(config.num_patches, dim))
        nn.init.normal_(self.position, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        self.backbone = build_backbone(config.backbone)
        head = HEADS[config.head]
        features = config.num_patches * dim + (
            config.lookback * width if config.lookback_skip else 0
        )
        if head is QuantileHead:
            self.head = head(features, config.horizon, width, config.quantiles, config.dropout)
        else:
            self.head = head(features, config.horizon, width, config.dropout)

    def _check(self, x: Tensor) -> None:
        cfg = self.config
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[1:] != (cfg.lookback, cfg.channels):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected [B, {cfg.lookback}, {cfg.channels}]")
        if not x.is_floating_point():
            raise ValueError(f"x has dtype {x.dtype}; expected a floating dtype")

    def _normalise(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B, L, C]`` -> (normalised x, loc ``[B, 1, C]``, scale ``[B, 1, C]``)."""
        if not self.config.instance_norm:
            return x, torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])
        loc = x.mean(dim=1, keepdim=True)
        scale = (x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).sqrt()
        return (x - loc) / scale, loc, scale

    def _patches(self, x: Tensor) -> Tensor:
        """``x [B, L, C]`` -> patches ``[B', N, patch_len * width]`` (``B' = B*C`` in
        channel-independent mode)."""
        cfg = self.config
        x = _sequences(x, cfg.mode)  # [B', L, W]
        end = x[:, -1:].expand(-1, cfg.stride, -1)
        x = torch.cat([x, end], dim=1)  # [B', L + stride, W]
        patches = x.unfold(1, cfg.patch_len, cfg.stride)  # [B', N, W, P]
        return patches.transpose(2, 3).flatten(2)[:, : cfg.num_patches]

    def forward(self, x: Tensor):
        self._check(x)
        cfg = self.config
        normalised, loc, scale = self._normalise(x)
        tokens = self.dropout(self.embed(self._patches(normalised)) + self.position)
        h, _ = self.backbone(tokens)  # [B', N, D]
        features = h.flatten(1)
        if cfg.lookback_skip:
            window = _sequences(normalised, cfg.mode).flatten(1)  # [B', L * W]
            features = torch.cat([features, window], dim=1)
        if cfg.mode == "channel_independent":
            batch = x.shape[0]
            # Per channel a [1, H, 1] forecast; loc/scale per (window, channel).
            ci_loc = loc.transpose(1, 2).reshape(-1, 1, 1)
            ci_scale = scale.transpose(1, 2).reshape(-1, 1, 1)
            out = self.head(features, ci_loc, ci_scale)
            return _regroup(out, batch, cfg.channels)
        return self.head(features, loc, scale)

    @torch.no_grad()
    def surprise(self, x: Tensor) -> Tensor:
        """The backbone memories' surprise at each patch of ``x [B, L, C]``: ``[B, C', N, L',
        H]`` for ``C'`` patch sequences per window (``C`` channel-independent, 1 multivariate),
        ``N`` patches, ``L'`` memory layers and ``H`` heads (see ``TitansBackbone.surprise``)."""
        self._check(x)
        normalised, _, _ = self._normalise(x)
        tokens = self.embed(self._patches(normalised)) + self.position
        surprise = self.backbone.surprise(tokens)  # [B * C', N, L', H]
        return surprise.reshape(x.shape[0], -1, *surprise.shape[1:])

    def loss(
        self, x: Tensor, y: Tensor, units: str = "window", observed: Tensor | None = None
    ) -> Tensor:
        """The head's training loss of the forecast of ``x`` against ``y [B, H, C]``.

        ``units``: ``"window"`` normalises by each window's own location and scale (``x``'s,
        as the head sees them), so every series weighs the same whatever its scale (raw series
        of many scales, as in M4); ``"data"`` keeps the data's units, the units of MSE and MAE
        on data scaled once for the whole set (the long-horizon protocol's metric).

        ``observed`` (``[B, H, C]``, bool or 0/1; None: every step): which target steps were
        observed, as GluonTS' ``observed_values``. The loss is then the mean over the observed
        steps only; a missing step (its ``y`` may be NaN) changes neither the loss nor its
        gradient, and a batch with no observed step has loss 0. ``x`` itself must be finite
        (impute missing input steps before calling)."""
        cfg = self.config
        if y.shape[1:] != (cfg.horizon, cfg.channels) or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"y has shape {tuple(y.shape)}; expected [{x.shape[0]}, {cfg.horizon}, "
                f"{cfg.channels}]"
            )
        if units not in LOSS_UNITS:
            raise ValueError(f"loss units={units!r}; expected one of {LOSS_UNITS}")
        if units == "window":
            _, loc, scale = self._normalise(x)
        else:
            loc, scale = torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])
        return self.head.loss(self(x), y, loc, scale, observed)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Point forecast ``[B, H, C]``: the value, the distribution's mean or the median."""
        return self.head.point(self(x))


def _sequences(x: Tensor, mode: str) -> Tensor:
    """``x [B, L, C]`` -> the sequences the model reads, ``[B', L, W]``: one univariate
    sequence per window and channel channel-independent (``[B*C, L, 1]``, window-major), the
    window itself multivariate (``[B, L, C]``)."""
    if mode == "channel_independent":
        return x.transpose(1, 2).reshape(-1, x.shape[1], 1)
    return x


def _regroup(out, batch: int, channels: int):
    """Channel-independent outputs (leading ``B*C``, a channel axis of 1) -> leading ``B`` with
    ``C`` channels, for tensors and Student-t distributions alike."""

    def fold(t: Tensor) -> Tensor:  # [B*C, H, 1, ...] -> [B, H, C, ...]
        return t.reshape(batch, channels, *t.shape[1:]).squeeze(3).movedim(1, 2)

    if isinstance(out, torch.distributions.StudentT):
        return torch.distributions.StudentT(fold(out.df), fold(out.loc), fold(out.scale))
    return fold(out)
