"""A Titans forecaster: instance normalisation -> patches -> Titans backbone -> forecast head.

``x [B, L, C]`` (lookback ``L``, ``C`` channels) -> a forecast of ``[B, H, C]``:

1. Instance normalisation (RevIN without affine): each window and channel is shifted by its
   mean and divided by its standard deviation; the head's output is mapped back.
2. Patching (as PatchTST): the window is cut into patches of ``patch_len`` steps every
   ``stride`` steps (the last value repeated ``stride`` times at the end, so the newest steps
   get a full patch). In ``channel_independent`` mode every channel is its own univariate
   sequence of patches (weights shared across channels); in ``multivariate`` mode a patch holds
   all channels; ``channel_mixing`` mode (the layout of Simba, which the Titans paper's
   forecasting experiments use with the memory in place of Mamba) reads the channels' patch
   sequences as ``channel_independent`` does and, after every backbone block, mixes the
   channels at each patch position (:class:`ChannelMixer`): the memory mixes time, the mixer
   mixes series, and no channel's features at a patch see a later patch of any channel.
3. Each patch is linearly embedded to ``dim`` (plus a learned position embedding) and the
   backbone (any Titans variant) reads the sequence of patches (:meth:`TitansForecaster.encode`,
   causal over patches, and streaming: the patches in pieces, carrying the state, give the
   features of one call).
4. The head (point, Student-t or quantile; see :mod:`titans_sci.heads.forecasting`) reads the
   flattened patch features and predicts all ``H`` steps at once. With ``lookback_skip`` it
   also reads the normalised lookback itself, so the forecast is the backbone's term plus a
   linear map of the window (RLinear's lookback->horizon map, learned jointly).

Covariates (:meth:`TitansForecaster.forward`'s ``past`` and ``known``): series read beside the
target, never forecast. ``past [B, L, Cp]``, known up to the origin only (measurements), and
``known [B, L + H, Ck + Cc]``, known over the horizon too (day-ahead forecasts, then calendar
features), are cut into patches at the target's patch positions, and the patches of all of
them are embedded (without bias) and added to every channel's token; the known ones' horizon
part, flattened, joins the head's features, so the forecast of each step can read what is
known of it. The ``Cp`` past and ``Ck`` known data covariates are instance-normalised by their
own lookback's mean and scale, as TimeXer normalises its exogenous series (the known ones'
horizon by the same statistics); the ``Cc`` calendar features are read as they come (in
[-0.5, 0.5]). So a covariate that is constant over the window adds exactly nothing, and a
known covariate equal to the future target can be copied into the forecast by the head's
linear map (both tested). The model reads no past covariate after the origin: it is never
given one. Static features of a series (``static_cat [B, S]`` categories, each embedded, and
``static_real [B, R]`` values, mapped without bias; GluonTS' ``feat_static_cat`` and
``feat_static_real``) add one vector to every token of the series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from titans_sci.config import Config
from titans_sci.heads.forecasting import HEADS, QuantileHead

from . import build_backbone
from .backbones import AfterBlock, BackboneState
from .config import Backbone, LMMConfig
from .covariates import (
    Covariates,
    check_counts,
    checked_covariates,
    instance_norm,
    normalise_covariates,
    static_modules,
    static_vector,
)

#: How the channels meet the backbone (see :class:`ForecasterConfig`).
Mode = Literal["channel_independent", "multivariate", "channel_mixing"]
#: The units a training loss is taken in (see :meth:`TitansForecaster.loss`).
LossUnits = Literal["window", "data"]
MODES: tuple[str, ...] = get_args(Mode)
LOSS_UNITS: tuple[str, ...] = get_args(LossUnits)


@dataclass(frozen=True)
class ForecasterConfig(Config):
    """What a :class:`TitansForecaster` is.

    Attributes:
        lookback: input steps ``L``.
        horizon: forecast steps ``H``.
        channels: number of series ``C`` in a window.
        backbone: the Titans backbone's config (its class picks the variant; its ``dim`` is the
            patch embedding width).
        mode: ``"channel_independent"``, ``"multivariate"`` or ``"channel_mixing"`` (see the
            module docstring).
        patch_len: steps per patch.
        stride: steps between patch starts.
        head: ``"point"``, ``"student_t"`` or ``"quantile"``.
        quantiles: the quantile head's levels (kept sorted, the order of its output axis).
        instance_norm: normalise each window (and undo it on the forecast).
        dropout: dropout on the patch embeddings and before the head.
        lookback_skip: the head also reads the normalised lookback window (``L`` values per
            channel-independent sequence, ``L * C`` in multivariate mode): a linear
            lookback->horizon path beside the backbone (under the head's dropout too).
        past_covariates: ``Cp``, the covariate series known up to the origin only.
        known_covariates: ``Ck``, the covariate series known over the horizon too.
        calendar: ``Cc``, the calendar features (known over the horizon; not normalised).
        static_cardinalities: the number of categories of each static categorical feature.
        static_real: ``R``, the static real features.
    """

    lookback: int = 96
    horizon: int = 96
    channels: int = 1
    backbone: Backbone = field(default_factory=LMMConfig)
    mode: Mode = "channel_independent"
    patch_len: int = 16
    stride: int = 8
    head: Literal["point", "student_t", "quantile"] = "point"
    quantiles: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    instance_norm: bool = True
    dropout: float = 0.0
    lookback_skip: bool = False
    past_covariates: int = 0
    known_covariates: int = 0
    calendar: int = 0
    static_cardinalities: tuple[int, ...] = ()
    static_real: int = 0

    def __post_init__(self) -> None:
        for name in ("lookback", "horizon", "channels", "patch_len", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ForecasterConfig.{name}={value!r}; expected an int >= 1")
        check_counts(self)
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
    def per_channel(self) -> bool:
        """Whether each channel is its own sequence of patches (every mode but multivariate)."""
        return self.mode != "multivariate"

    @property
    def known_width(self) -> int:
        """The columns of ``known``: the known covariates, then the calendar features."""
        return self.known_covariates + self.calendar

    @property
    def covariate_width(self) -> int:
        """Every covariate column the tokens read over the lookback."""
        return self.past_covariates + self.known_width

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
        width = 1 if config.per_channel else config.channels
        dim = config.backbone.dim
        self.embed = nn.Linear(config.patch_len * width, dim)
        self.position = nn.Parameter(torch.zeros(config.num_patches, dim))
        nn.init.normal_(self.position, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        self.backbone = build_backbone(config.backbone)
        self.mixers = nn.ModuleList(
            ChannelMixer(config.channels, dim, config.dropout)
            for _ in range(config.backbone.depth if config.mode == "channel_mixing" else 0)
        )
        self.covariate_embed = (
            nn.Linear(config.patch_len * config.covariate_width, dim, bias=False)
            if config.covariate_width
            else None
        )
        self.static_embeds, self.static_real_embed = static_modules(
            config.static_cardinalities, config.static_real, dim
        )
        head = HEADS[config.head]
        features = (
            config.num_patches * dim
            + (config.lookback * width if config.lookback_skip else 0)
            + config.horizon * config.known_width
        )
        if head is QuantileHead:
            self.head = head(features, config.horizon, width, config.quantiles, config.dropout)
        else:
            self.head = head(features, config.horizon, width, config.dropout)

    def _check(self, x: Tensor, covariates: tuple[Tensor | None, ...] = ()) -> Covariates:
        """``x`` and ``covariates`` (``past, known, static_cat, static_real``, the trailing
        ones optional) checked against the config, one line naming what is wrong."""
        cfg = self.config
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[1:] != (cfg.lookback, cfg.channels):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected [B, {cfg.lookback}, {cfg.channels}]")
        if not x.is_floating_point():
            raise ValueError(f"x has dtype {x.dtype}; expected a floating dtype")
        return checked_covariates(cfg, x.shape[0], covariates)

    def _covariates(self, given: Covariates) -> tuple[Tensor, Tensor] | tuple[None, None]:
        """The covariates as the model reads them: over the lookback ``[B, L, Cp + Ck + Cc]``
        and over the horizon ``[B, H, Ck + Cc]``, the data covariates instance-normalised by
        their lookback's statistics (when ``instance_norm``); ``(None, None)`` without any."""
        cfg = self.config
        if not cfg.covariate_width:
            return None, None
        past = given.past if cfg.past_covariates else None
        known = given.known if cfg.known_width else None
        return normalise_covariates(
            past, known, cfg.lookback, cfg.known_covariates, cfg.instance_norm
        )

    def _static(self, given: Covariates) -> Tensor | None:
        """The static features' vector ``[B, D]`` (the sum of each category's embedding and
        the map of the real ones), or ``None`` without any."""
        return static_vector(self.static_embeds, self.static_real_embed, given)

    def _normalise(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B, L, C]`` -> (normalised x, loc ``[B, 1, C]``, scale ``[B, 1, C]``)."""
        if not self.config.instance_norm:
            return x, torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])
        return instance_norm(x)

    def _patches(self, x: Tensor, per_channel: bool | None = None) -> Tensor:
        """``x [B, L, C]`` -> patches ``[B', N, patch_len * width]`` (``B' = B*C`` in
        channel-independent mode; ``per_channel`` overrides the config's)."""
        cfg = self.config
        x = _sequences(x, cfg.per_channel if per_channel is None else per_channel)  # [B', L, W]
        end = x[:, -1:].expand(-1, cfg.stride, -1)
        x = torch.cat([x, end], dim=1)  # [B', L + stride, W]
        patches = x.unfold(1, cfg.patch_len, cfg.stride)  # [B', N, W, P]
        return patches.transpose(2, 3).flatten(2)[:, : cfg.num_patches]

    def tokens(self, x: Tensor, *covariates: Tensor | None) -> Tensor:
        """The backbone's input for ``x [B, L, C]`` (and its covariates, as :meth:`forward`
        takes them): embedded patches plus their positions, ``[B', N, D]`` (``B' = B*C``,
        window-major, in the per-channel modes), normalised first (RevIN) when the config says
        so."""
        given = self._check(x, covariates)
        return self._embed(self._normalise(x)[0], given, self._covariates(given)[0])

    def _embed(
        self, normalised: Tensor, given: Covariates | None = None, read: Tensor | None = None
    ) -> Tensor:
        """Tokens ``[B', N, D]`` of the normalised window, plus the embedded patches of the
        covariates as read (``read [B, L, W]``) and the static features' vector."""
        tokens = self.embed(self._patches(normalised)) + self.position
        sequences = tokens.shape[0] // normalised.shape[0]
        if read is not None:
            assert self.covariate_embed is not None
            extra = self.covariate_embed(self._patches(read, per_channel=False))  # [B, N, D]
            tokens = tokens + _per_sequence(extra, sequences)
        static = None if given is None else self._static(given)
        if static is not None:
            tokens = tokens + _per_sequence(static, sequences)[:, None]
        return tokens

    def _mixing(self) -> AfterBlock | None:
        """What runs after each backbone block: the channel mixers (``channel_mixing``)."""
        if not self.mixers:
            return None
        return lambda i, h: self.mixers[i](h)

    def encode(
        self, tokens: Tensor, state: BackboneState | None = None
    ) -> tuple[Tensor, BackboneState]:
        """The backbone (and, in ``channel_mixing`` mode, the channel mixers after its blocks)
        over ``tokens [B', N', D]``, any ``N'`` patches of the windows' sequences: ``(h [B',
        N', D], state)``. Causal over patches; ``tokens`` in pieces, carrying ``state``, give
        the ``h`` of one call."""
        h, state = self.backbone(tokens, state=state, after_block=self._mixing())
        assert state is not None  # the forecaster's backbone is causal (checked at __init__)
        return h, state

    def forward(self, x: Tensor, *covariates: Tensor | None):
        """The forecast of ``x [B, L, C]``, with the covariates the config names, in this
        order (trailing ones may be left out; ``None`` for a kind the model does not read):
        ``past [B, L, Cp]``, ``known [B, L + H, Ck + Cc]``, ``static_cat [B, S]`` (integer
        categories) and ``static_real [B, R]`` (see the module docstring)."""
        given = self._check(x, covariates)
        cfg = self.config
        normalised, loc, scale = self._normalise(x)
        read, future = self._covariates(given)
        h, _ = self.encode(self.dropout(self._embed(normalised, given, read)))  # [B', N, D]
        features = h.flatten(1)
        if cfg.lookback_skip:
            window = _sequences(normalised, cfg.per_channel).flatten(1)  # [B', L * W]
            features = torch.cat([features, window], dim=1)
        if future is not None and cfg.known_width:
            ahead = _per_sequence(future.flatten(1), features.shape[0] // x.shape[0])
            features = torch.cat([features, ahead], dim=1)
        if cfg.per_channel:
            batch = x.shape[0]
            # Per channel a [1, H, 1] forecast; loc/scale per (window, channel).
            ci_loc = loc.transpose(1, 2).reshape(-1, 1, 1)
            ci_scale = scale.transpose(1, 2).reshape(-1, 1, 1)
            out = self.head(features, ci_loc, ci_scale)
            return _regroup(out, batch, cfg.channels)
        return self.head(features, loc, scale)

    @torch.no_grad()
    def surprise(self, x: Tensor, *covariates: Tensor | None) -> Tensor:
        """The backbone memories' surprise at each patch of ``x [B, L, C]`` (with its
        covariates): ``[B, C', N, L', H]`` for ``C'`` patch sequences per window (``C`` in the
        per-channel modes, 1 multivariate), ``N`` patches, ``L'`` memory layers and ``H`` heads
        (see ``TitansBackbone.surprise``)."""
        tokens = self.tokens(x, *covariates)
        surprise = self.backbone.surprise(tokens, after_block=self._mixing())
        # surprise: [B * C', N, L', H]
        return surprise.reshape(x.shape[0], -1, *surprise.shape[1:])

    def loss(
        self,
        x: Tensor,
        y: Tensor,
        units: str = "window",
        observed: Tensor | None = None,
        *covariates: Tensor | None,
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
        (impute missing input steps before calling). ``covariates``: as :meth:`forward` takes
        them."""
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
        return self.head.loss(self(x, *covariates), y, loc, scale, observed)

    @torch.no_grad()
    def predict(self, x: Tensor, *covariates: Tensor | None) -> Tensor:
        """Point forecast ``[B, H, C]``: the value, the distribution's mean or the median."""
        return self.head.point(self(x, *covariates))


class ChannelMixer(nn.Module):
    """Mixes the channels of a window at each patch position: ``h [B*C, N, D]`` (window-major,
    as the per-channel modes lay the channels out) -> ``h`` plus, per window, patch and feature,
    an MLP across the ``C`` channels (``C -> 2C -> C``, GELU) of the RMS-normalised ``h``
    (TSMixer's feature mixing, a residual branch). Position ``n`` of the output reads position
    ``n`` of the input only, so it adds no look-ahead to a causal backbone."""

    def __init__(self, channels: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.channels = channels
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 2 * channels),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * channels, channels),
            nn.Dropout(dropout),
        )

    def forward(self, h: Tensor) -> Tensor:
        rows, length, dim = h.shape
        if rows % self.channels:
            raise ValueError(
                f"h has {rows} sequences; expected a multiple of the {self.channels} channels"
            )
        grouped = self.norm(h).reshape(-1, self.channels, length, dim)  # [B, C, N, D]
        mixed = self.mlp(grouped.movedim(1, -1)).movedim(-1, 1)  # MLP over C
        return h + mixed.reshape(rows, length, dim)


def _sequences(x: Tensor, per_channel: bool) -> Tensor:
    """``x [B, L, C]`` -> the sequences the model reads, ``[B', L, W]``: one univariate
    sequence per window and channel in the per-channel modes (``[B*C, L, 1]``, window-major),
    the window itself multivariate (``[B, L, C]``)."""
    if per_channel:
        return x.transpose(1, 2).reshape(-1, x.shape[1], 1)
    return x


def _per_sequence(t: Tensor, sequences: int) -> Tensor:
    """``t [B, ...]``, one row per window, repeated for each of a window's ``sequences``
    (window-major, as :func:`_sequences` lays them out): ``[B * sequences, ...]``."""
    return t if sequences == 1 else t.repeat_interleave(sequences, dim=0)


def _regroup(out, batch: int, channels: int):
    """Channel-independent outputs (leading ``B*C``, a channel axis of 1) -> leading ``B`` with
    ``C`` channels, for tensors and Student-t distributions alike."""

    def fold(t: Tensor) -> Tensor:  # [B*C, H, 1, ...] -> [B, H, C, ...]
        return t.reshape(batch, channels, *t.shape[1:]).squeeze(3).movedim(1, 2)

    if isinstance(out, torch.distributions.StudentT):
        return torch.distributions.StudentT(fold(out.df), fold(out.loc), fold(out.scale))
    return fold(out)
