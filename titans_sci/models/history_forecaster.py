"""A forecaster that reads the whole history: a Titans memory streams every step of the series
before the forecast origin, and a linear map reads the recent window.

Each channel is a univariate stream (the weights are shared across channels). For a forecast
made at origin ``t`` (the first step forecast is ``t``; everything before ``t`` may be read):

1. **The long memory.** The series is cut into non-overlapping patches of ``patch_len`` steps
   from its first step on. Each patch is normalised by running statistics of the stream so far
   (an exponential moving mean and variance over patches, updated with the patch itself: no
   look-ahead, and no fixed window to normalise over an unbounded history), joined by that
   running mean and log standard deviation (the level, which the normalised patch no longer
   shows), embedded, and read by the backbone (any causal Titans variant), whose memory keeps
   writing as it reads: the state is carried from patch to patch over the whole series,
   train, validation and test ranges in order, in constant memory. The features after the
   last patch that ends at or before ``t`` summarise the history.
2. **The recent window.** The last ``lookback`` steps before ``t`` (left-padded with the first
   value near the start of the series), normalised by their own mean and standard deviation
   (RevIN).
3. **The forecast**, in the window's normalised units and mapped back: a linear map of the
   window (RLinear's lookback->horizon map) plus an MLP of the memory's features next to the
   window. The window keeps what a short-window model sees; the memory adds what only the
   history holds, at every origin (not only at patch boundaries).

Why this split: the memory is a sequence model over patches, so its natural clock is the patch;
origins fall at every step, so the recent steps come from the window, which costs ``O(L * H)``
per origin and nothing per step of history. Training streams the series too (see
:func:`stretch_loss`), so the memory learns to write what later forecasts need.

Covariates (the config's ``past_covariates``, ``known_covariates``, ``calendar`` and static
features; the streams' series of them, :meth:`HistoryForecaster.covariates_at`) are read where
each forecast is made, as the window forecaster's head reads them: every kind over the recent
window, the known ones over the horizon too, the data ones normalised by their own window
(:func:`~titans_sci.models.covariates.normalise_covariates`), joining the window in the linear
map and in the MLP (with the static features' vector). The memory streams the target alone.

With the memory frozen (:func:`~titans_sci.layers.memory_writes` ``False``), the backbone reads
the memory as it stood when writing stopped: the ablation of test-time learning. With
``memory = False`` there is no memory at all: the window alone (the ablation of the memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_sci.config import Config
from titans_sci.memory import recording_surprise

from . import build_backbone
from .backbones import BackboneState
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

__all__ = [
    "HistoryForecaster",
    "HistoryForecasterConfig",
    "HistoryState",
    "Forecasts",
    "series_covariates",
    "stream_forecasts",
    "stretch_loss",
    "windows_before",
]


@dataclass(frozen=True)
class HistoryForecasterConfig(Config):
    """What a :class:`HistoryForecaster` is.

    Attributes:
        horizon: forecast steps ``H``.
        channels: number of series ``C`` (each its own stream; the weights are shared).
        lookback: steps ``L`` of the recent window read beside the memory.
        patch_len: steps per token of the stream.
        backbone: the causal Titans backbone reading the stream of patches.
        norm_decay: per patch, the decay of the running mean and variance that normalise the
            stream (0.99: about the last 100 patches weigh), in [0.5, 1).
        dropout: dropout on the patch embeddings and on the memory's features.
        memory: ``False`` leaves the memory out (no backbone, nothing streamed): the forecast
            reads the recent window alone, through the same linear map and MLP (the ablation
            that measures what the memory adds).
        past_covariates: ``Cp``, covariate series known up to the origin only.
        known_covariates: ``Ck``, covariate series known over the horizon too.
        calendar: ``Cc``, calendar features (known over the horizon; not normalised).
        static_cardinalities: the number of categories of each static categorical feature.
        static_real: ``R``, the static real features.
    """

    horizon: int = 96
    channels: int = 1
    lookback: int = 96
    patch_len: int = 16
    backbone: Backbone = field(default_factory=LMMConfig)
    norm_decay: float = 0.99
    dropout: float = 0.0
    memory: bool = True
    past_covariates: int = 0
    known_covariates: int = 0
    calendar: int = 0
    static_cardinalities: tuple[int, ...] = ()
    static_real: int = 0

    def __post_init__(self) -> None:
        for name in ("horizon", "channels", "lookback", "patch_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HistoryForecasterConfig.{name}={value!r}; expected an int >= 1")
        if not 0.5 <= self.norm_decay < 1:
            raise ValueError(
                f"HistoryForecasterConfig.norm_decay={self.norm_decay}; expected in [0.5, 1)"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"HistoryForecasterConfig.dropout={self.dropout}; expected in [0, 1)")
        if self.backbone.bidirectional:
            raise ValueError("a history forecaster streams its series; use bidirectional=False")
        check_counts(self)

    @property
    def known_width(self) -> int:
        """The columns of ``known``: the known covariates, then the calendar features."""
        return self.known_covariates + self.calendar

    @property
    def covariate_inputs(self) -> int:
        """The covariate values a forecast reads: every covariate over the lookback, and the
        known ones over the horizon."""
        lookback, horizon = self.lookback, self.horizon
        return lookback * (self.past_covariates + self.known_width) + horizon * self.known_width

    @property
    def has_static(self) -> bool:
        return bool(self.static_cardinalities or self.static_real)


@dataclass
class HistoryState:
    """Where a stream stands, for ``B'`` streams (``B * C``, series-major): the backbone's
    state, the running sums of the normalisation (``total``, ``squares`` and ``weight``,
    ``[B']`` float64), the steps of a patch not yet complete (``pending [B', r]``, ``r <
    patch_len``) and the features after the last complete patch (``features [B', D]``,
    ``None`` before the first). Its size does not depend on how much has been read."""

    backbone: BackboneState | None
    total: Tensor
    squares: Tensor
    weight: Tensor
    pending: Tensor
    features: Tensor | None
    steps: int = 0

    def detach(self) -> HistoryState:
        return HistoryState(
            None if self.backbone is None else self.backbone.detach(),
            self.total,
            self.squares,
            self.weight,
            self.pending.detach(),
            None if self.features is None else self.features.detach(),
            self.steps,
        )


class HistoryForecaster(nn.Module):
    """Reads series as streams (:meth:`read`) and forecasts from the memory's features and the
    recent window (:meth:`forecast`); see the module docstring."""

    def __init__(self, config: HistoryForecasterConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.backbone.dim
        # First, so that its initialisation depends on the seed alone, whatever else the model
        # holds: the first training stage (this map alone) is then the same for every dropout,
        # and for the window-only ablation.
        self.linear = nn.Linear(config.lookback + config.covariate_inputs, config.horizon)
        #: The width of the memory's features (0 without a memory).
        self.feature_dim = dim if config.memory else 0
        self.embed = nn.Linear(config.patch_len + 2, dim) if config.memory else None
        self.backbone = build_backbone(config.backbone) if config.memory else None
        self.dropout = nn.Dropout(config.dropout)
        last = nn.Linear(dim, config.horizon)
        nn.init.zeros_(last.weight)  # the forecast starts as the window's linear map
        nn.init.zeros_(last.bias)
        self.static_embeds, self.static_real_embed = static_modules(
            config.static_cardinalities, config.static_real, dim
        )
        inputs = self.feature_dim + self.linear.in_features + (dim if config.has_static else 0)
        self.memory_head = nn.Sequential(nn.Linear(inputs, dim), nn.GELU(), last)

    def stages(self) -> list[tuple[str, list[nn.Parameter]]]:
        """The training stages of "window, then memory": first the window's linear map alone
        (the memory branch stays at zero), then the memory's branch (embedding, backbone and
        MLP) on what the window path leaves, the window path fixed. Without a memory the same
        two stages, the second the MLP alone (``"head"``), so the window-only ablation is
        trained as the model it ablates and differs from it only by the memory."""
        window = ("window", list(self.linear.parameters()))
        head = [*self.memory_head.parameters(), *self.static_embeds.parameters()]
        if self.static_real_embed is not None:
            head += self.static_real_embed.parameters()
        if self.backbone is None or self.embed is None:
            return [window, ("head", head)]
        memory = [*self.embed.parameters(), *self.backbone.parameters()]
        return [window, ("memory", [*memory, *head])]

    @property
    def silent(self) -> bool:
        """True when what the stream gives cannot change any forecast or gradient: there is no
        memory (its features are zeros), or the memory branch's output layer is zero and frozen
        (the first training stage: the branch adds exactly zero, and nothing in it learns).
        Then :func:`stretch_loss` and :func:`stream_forecasts` do not read the stream (the
        same forecasts, losses and gradients, at the window's cost alone)."""
        if self.backbone is None:
            return True
        last = self.memory_head[-1]
        return not any(q.requires_grad for q in last.parameters()) and all(
            not q.any() for q in last.parameters()
        )

    def initial_state(self, streams: int, like: Tensor) -> HistoryState:
        """The state before the first step of ``streams`` series."""
        zeros = torch.zeros(streams, dtype=torch.float64, device=like.device)
        pending = like.new_zeros(streams, 0)
        return HistoryState(None, zeros, zeros.clone(), zeros.clone(), pending, None)

    def read(
        self, values: Tensor, state: HistoryState | None = None
    ) -> tuple[Tensor, HistoryState]:
        """Stream ``values [B', T]`` (``B'`` univariate series, any ``T``) after ``state``:
        ``(features [B', K, D], state)`` with the features after each of the ``K`` patches
        completed by these steps. Reading a series in pieces, carrying the state, gives the
        features of one call."""
        features, _, state = self._stream(values, state, record=False)
        return features, state

    @torch.no_grad()
    def surprise(
        self, values: Tensor, state: HistoryState | None = None
    ) -> tuple[Tensor, HistoryState]:
        """:meth:`read`, reporting how surprised each memory layer is by each patch: ``([B',
        K, L', H], state)`` for ``L'`` memory layers of ``H`` heads (the norm of the memory's
        gradient when it writes the patch; see ``TitansBackbone.surprise``)."""
        if self.backbone is None:
            raise ValueError("this forecaster has no memory (memory = false): no surprise")
        _, surprise, state = self._stream(values, state, record=True)
        assert surprise is not None
        return surprise, state

    def _stream(
        self, values: Tensor, state: HistoryState | None, record: bool
    ) -> tuple[Tensor, Tensor | None, HistoryState]:
        """The features of the patches ``values [B', T]`` completes after ``state``, their
        surprise when ``record``, and the state after them."""
        if values.dim() != 2 or not values.is_floating_point():
            raise ValueError(f"values has shape {tuple(values.shape)}; expected [B', T] floats")
        state = state or self.initial_state(values.shape[0], values)
        p, steps = self.config.patch_len, state.steps + values.shape[1]
        joined = torch.cat([state.pending, values], dim=1)
        whole = joined.shape[1] // p * p
        patches = joined[:, :whole].unflatten(1, (-1, p))  # [B', K, P]
        rest = joined[:, whole:]
        count = patches.shape[1]
        if count == 0 or self.backbone is None or self.embed is None:
            h = values.new_zeros(values.shape[0], count, self.feature_dim)
            surprise = values.new_zeros(values.shape[0], 0, 0, 0) if record else None
            sums = state.total, state.squares, state.weight
            last = h[:, -1] if count else state.features
            return h, surprise, HistoryState(state.backbone, *sums, rest, last, steps)
        tokens, (total, squares, weight) = self._tokens(patches, state)
        embedded = self.dropout(self.embed(tokens))
        recorder: AbstractContextManager[dict] = (
            recording_surprise(self.backbone) if record else nullcontext({})
        )
        with recorder as sinks:
            h, backbone = self.backbone(embedded, state=state.backbone)
        # MAC replays its partial segment: keep this call's patches.
        traces = [torch.cat(sink, dim=1)[:, -count:] for sink in sinks.values()]
        surprise = torch.stack(traces, dim=2) if record else None
        return h, surprise, HistoryState(backbone, total, squares, weight, rest, h[:, -1], steps)

    def _tokens(self, patches: Tensor, state: HistoryState) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Patches ``[B', K, P]`` normalised by the running mean and standard deviation up to
        and including each patch, with that mean and log standard deviation: ``[B', K, P+2]``,
        and the running sums after the last patch."""
        decay = self.config.norm_decay
        means = patches.double().mean(dim=2)  # [B', K]
        meansq = patches.double().square().mean(dim=2)
        total, squares, weight = _discounted_sums(
            (means, meansq, torch.ones_like(means)),
            (state.total, state.squares, state.weight),
            decay,
        )
        mean = total / weight
        std = (squares / weight - mean.square()).clamp_min(0).add(1e-5).sqrt()
        normalised = (patches - mean[..., None].to(patches.dtype)) / std[..., None].to(
            patches.dtype
        )
        stats = torch.stack([mean, std.log()], dim=-1).to(patches.dtype)
        return torch.cat([normalised, stats], dim=-1), (total[:, -1], squares[:, -1], weight[:, -1])

    def forecast(
        self, features: Tensor | None, window: Tensor, *covariates: Tensor | None
    ) -> Tensor:
        """The forecast ``[N, H]`` of ``N`` origins from the memory's features there
        (``[N, D]``; ``None``: before any complete patch, zeros), their recent windows
        ``window [N, L]`` (the ``L`` steps just before each origin) and, for a model that reads
        covariates, theirs in this order (trailing ones may be left out): ``past [N, L, Cp]``,
        ``known [N, L + H, Ck + Cc]``, ``static_cat [N, S]``, ``static_real [N, R]``.

        The covariates are read as the window forecaster reads them
        (:func:`~titans_sci.models.covariates.normalise_covariates`): the data ones normalised
        by their own lookback, the known ones over the horizon too. They join the window both
        in the linear map (so a known covariate equal to the target can be copied into the
        forecast) and in the MLP beside the memory's features, with the static features'
        vector."""
        cfg = self.config
        if window.dim() != 2 or window.shape[1] != cfg.lookback:
            raise ValueError(
                f"window has shape {tuple(window.shape)}; expected [N, {cfg.lookback}]"
            )
        given = checked_covariates(cfg, window.shape[0], covariates)
        normalised, loc, scale = instance_norm(window)
        inputs = [normalised]
        read, future = normalise_covariates(
            given.past if cfg.past_covariates else None,
            given.known if cfg.known_width else None,
            cfg.lookback,
            cfg.known_covariates,
            normalise=True,
        )
        if read is not None and future is not None:
            inputs += [read.flatten(1), future.flatten(1)]
        window_inputs = torch.cat(inputs, dim=1)
        if features is None:
            features = window.new_zeros(window.shape[0], self.feature_dim)
        beside = [self.dropout(features), window_inputs]
        static = static_vector(self.static_embeds, self.static_real_embed, given)
        if static is not None:
            beside.append(static)
        out = self.linear(window_inputs) + self.memory_head(torch.cat(beside, dim=1))
        return out * scale + loc

    def covariates_at(self, covariates: Covariates, origins: Tensor) -> Covariates:
        """The covariates the forecasts at ``origins [n]`` read, ``[B' * n, ...]`` (stream-major,
        as :meth:`forecast` takes them), from the streams' covariates: ``past [B', T_p, Cp]``
        (``T_p`` at least the last origin: step ``t`` is read by origins after ``t`` only),
        ``known [B', T_k, Ck + Cc]`` (``T_k`` at least the last origin plus ``H``: the horizon's
        steps are read), ``static_cat [B', S]``, ``static_real [B', R]``. Near the start of a
        stream the windows are left-padded with the first step, as the target's are."""
        cfg = self.config
        last = int(origins[-1]) if len(origins) else 0
        n = len(origins)
        past = known = None
        if covariates.past is not None:  # one of no columns: _check refuses
            if covariates.past.shape[1] < last:
                raise ValueError(
                    f"past covariates have {covariates.past.shape[1]} steps; the forecast at "
                    f"origin {last} reads the {cfg.lookback} steps before it"
                )
            past = windows_before(covariates.past, origins, cfg.lookback).flatten(0, 1)
        if covariates.known is not None:
            if covariates.known.shape[1] < last + cfg.horizon:
                raise ValueError(
                    f"known covariates have {covariates.known.shape[1]} steps; the forecast at "
                    f"origin {last} reads them over its horizon, to step {last + cfg.horizon}"
                )
            known = windows_before(covariates.known, origins + cfg.horizon,
                                   cfg.lookback + cfg.horizon).flatten(0, 1)  # fmt: skip

        def each(static: Tensor | None) -> Tensor | None:
            return None if static is None else static.repeat_interleave(n, dim=0)

        return Covariates(past, known, each(covariates.static_cat), each(covariates.static_real))


def _discounted_sums(
    values: tuple[Tensor, ...], start: tuple[Tensor, ...], decay: float
) -> tuple[Tensor, ...]:
    """For each ``x [B', K]`` and its carried sum ``s [B']``: ``S_k = decay * S_{k-1} + x_k``
    with ``S_{-1} = s``, ``[B', K]``, in blocks of 64 patches (in float64, ``decay**-64`` is at
    most ``2**64`` for a decay of at least 0.5, so no block loses its early terms)."""
    out: list[list[Tensor]] = [[] for _ in values]
    carried = list(start)
    length = values[0].shape[1]
    for begin in range(0, length, 64):
        end = min(begin + 64, length)
        powers = decay ** torch.arange(
            1, end - begin + 1, dtype=torch.float64, device=start[0].device
        )
        for i, x in enumerate(values):
            block = x[:, begin:end]
            scaled = torch.cumsum(block / powers * decay, dim=1) * powers / decay
            sums = scaled + carried[i][:, None] * powers
            out[i].append(sums)
            carried[i] = sums[:, -1]
    return tuple(torch.cat(parts, dim=1) for parts in out)


def series_covariates(
    past: np.ndarray | Tensor | None, known: np.ndarray | Tensor | None, streams: int
) -> Covariates | None:
    """The covariates of one series (``past [T, Cp]``, ``known [T', Ck + Cc]``, as float32)
    as each of its ``streams`` channels reads them (``[streams, T, Cp]``, ...; views, not
    copies); None where both are None."""
    if past is None and known is None:
        return None

    def each(values: np.ndarray | Tensor | None) -> Tensor | None:
        if values is None:
            return None
        tensor = torch.as_tensor(values, dtype=torch.float32)
        return tensor[None].expand(streams, -1, -1)

    return Covariates(each(past), each(known))


def windows_before(series: Tensor, origins: Tensor, length: int) -> Tensor:
    """The ``length`` steps before each origin: ``series [B', T, ...]``, ``origins [N]`` (steps
    of ``series``, ``1 <= origin <= T``) -> ``[B', N, length, ...]``, left-padded with the
    series' first value where an origin is closer than ``length`` to the start."""
    offsets = torch.arange(-length, 0, device=series.device)
    index = (origins[:, None] + offsets).clamp_min(0)  # [N, length]
    return series[:, index]


def stretch_loss(
    model: HistoryForecaster,
    series: Tensor,
    begin: int,
    end: int,
    state: HistoryState | None,
    stop: int,
    counts: Tensor | None = None,
    covariates: Covariates | None = None,
) -> tuple[Tensor, HistoryState, int]:
    """Dense supervision over one stretch of a stream: ``(mean squared error, state, origins)``.

    ``series [B', T]`` is the whole training series; the state is the stream's after its first
    ``begin`` steps (``begin`` a multiple of ``patch_len``). The model reads steps ``[begin,
    end)`` and forecasts at every origin whose memory features come from this stretch (origins
    ``begin + patch_len ..= end + patch_len - 1``, the features of the last patch ending at or
    before each) and whose horizon ends by ``stop``; the loss is the MSE over all of them, every
    stream and step alike. Gradients reach back to ``begin`` only (the caller detaches the
    state between stretches). While the model is :attr:`~HistoryForecaster.silent` nothing is
    read, and the state comes back as given (a fresh one for None).

    ``counts`` (``[B', T]`` bool, optional): which steps count as targets (observed, and not
    padding before a stream's start); the loss is then the mean over the counted target steps
    of every origin (0 where none counts). ``covariates``: the streams' covariates, as
    :meth:`HistoryForecaster.covariates_at` takes them.
    """
    cfg = model.config
    p = cfg.patch_len
    features: Tensor | None = None
    if model.silent:  # what the stream gives changes nothing: do not read it
        k = ((0 if state is None else state.pending.shape[1]) + end - begin) // p
        if state is None:
            state = model.initial_state(series.shape[0], series)
    else:
        features, state = model.read(series[:, begin:end], state)  # [B', K, D]
        k = features.shape[1]
    origins = torch.arange(begin + p, begin + (k + 1) * p, device=series.device)
    origins = origins[origins + cfg.horizon <= stop]
    if len(origins) == 0:
        return series.new_zeros(()), state, 0
    patch = (origins - begin) // p - 1  # the last patch of the stretch ending by each origin
    picked = None if features is None else features[:, patch].flatten(0, 1)
    forecast = _forecast(model, picked, series, origins, covariates)  # [B', N, H]
    steps = origins[:, None] + torch.arange(cfg.horizon, device=series.device)  # [N, H]
    target = series[:, steps]
    if counts is None:
        return F.mse_loss(forecast, target), state, len(origins)
    weight = counts[:, steps].to(forecast.dtype)  # [B', N, H]
    error = torch.where(weight > 0, forecast - target, 0.0)
    return error.square().mul(weight).sum() / weight.sum().clamp_min(1), state, len(origins)


Forecasts = tuple[Tensor, Tensor]
"""``(origins [n], forecasts [B', n, H])``: forecasts at some origins of a stream."""


@torch.no_grad()
def stream_forecasts(
    model: HistoryForecaster,
    series: Tensor,
    origins: Tensor,
    piece: int = 8192,
    state: HistoryState | None = None,
    covariates: Covariates | None = None,
) -> Iterator[Forecasts]:
    """Forecasts at ``origins`` (sorted steps of ``series [B', T]``, each in ``[1, T]``; ``T``:
    the forecast after the last step) from one streaming pass over ``series``, read in pieces
    of ``piece`` steps after ``state`` (None: from the first step; else the state after the
    first ``state.steps`` steps of ``series``, and no origin before its last complete patch).
    Yields them piece by piece; what a forecast reads is only what is before its origin,
    and the pass holds one piece of features at a time, whatever ``T`` (a
    :attr:`~HistoryForecaster.silent` model's, ``piece`` origins' windows at a time, the
    stream unread). ``covariates``: the streams' covariates, as
    :meth:`HistoryForecaster.covariates_at` takes them (the known ones reaching the last
    origin's horizon)."""
    p = model.config.patch_len
    if len(origins) and (origins[0] < 1 or origins[-1] > series.shape[1]):
        raise ValueError(f"origins run from {int(origins[0])} to {int(origins[-1])}; expected "
                         f"steps in [1, {series.shape[1]}]")  # fmt: skip
    if len(origins) > 1 and bool((origins[1:] <= origins[:-1]).any()):
        raise ValueError("origins must be sorted and distinct")
    start = 0 if state is None else state.steps
    patch = start // p  # the number of the next patch to complete (patch n ends at (n + 1) p)
    if len(origins) and int(origins[0]) < patch * p:
        raise ValueError(
            f"origin {int(origins[0])} is before the state's last complete patch (it has read "
            f"{start} steps); stream from an earlier state"
        )
    if model.silent:  # the forecasts read their windows alone: the stream is not read
        for first in range(0, len(origins), piece):
            chosen = origins[first : first + piece]
            yield chosen, _forecast(model, None, series, chosen, covariates)
        return
    done = int(torch.searchsorted(origins, torch.tensor((patch + 1) * p, device=origins.device)))
    if done:  # origins whose last complete patch is the state's
        chosen = origins[:done]
        features = None if state is None else state.features
        if features is not None:
            features = features[:, None].expand(-1, done, -1).flatten(0, 1)
        yield chosen, _forecast(model, features, series, chosen, covariates)
    for begin in range(start, series.shape[1], piece):
        features, state = model.read(series[:, begin : begin + piece], state)
        count = features.shape[1]
        end = torch.tensor((patch + count + 1) * p, device=origins.device)
        upto = int(torch.searchsorted(origins, end))
        if upto > done:
            chosen = origins[done:upto]
            picked = features[:, chosen // p - 1 - patch].flatten(0, 1)
            yield chosen, _forecast(model, picked, series, chosen, covariates)
            done = upto
        patch += count
        if done == len(origins):  # nothing left to forecast: the rest is not read
            break


def _forecast(
    model: HistoryForecaster,
    features: Tensor | None,
    series: Tensor,
    origins: Tensor,
    covariates: Covariates | None,
) -> Tensor:
    """The forecasts ``[B', n, H]`` at ``origins [n]`` of ``series [B', T]`` from the memory's
    features there (``[B' * n, D]``; None: zeros) and the streams' ``covariates``."""
    window = windows_before(series, origins, model.config.lookback)  # [B', n, L]
    given = () if covariates is None else model.covariates_at(covariates, origins)
    flat = model.forecast(features, window.flatten(0, 1), *given)
    return flat.unflatten(0, window.shape[:2])
