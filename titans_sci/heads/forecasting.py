"""Forecasting heads: features ``[B, F]`` -> a forecast of ``horizon`` steps of ``channels``.

Every head is a direct multi-horizon head (all steps at once, no autoregression) and knows its
own training loss and point forecast, so a forecaster can swap them without other changes:

- :class:`PointHead`: ``[B, H, C]`` values, trained with MSE.
- :class:`StudentTHead`: a Student-t per step and channel (degrees of freedom > 2, so the mean
  and variance exist), trained with its negative log-likelihood; the point forecast is the mean.
- :class:`QuantileHead`: ``[B, H, C, Q]`` quantiles, trained with the pinball (quantile) loss;
  the point forecast is the median (or the quantile nearest to 0.5).

Heads work in normalised units; ``loc`` and ``scale`` (``[B, 1, C]``) map their output back to
the data's units (the forecaster's instance normalisation).

Missing targets: every loss takes an optional ``observed`` mask (``[B, H, C]``, bool or 0/1;
nonzero means observed), as GluonTS' ``observed_values``. The loss is then the mean over the
observed entries only (:func:`masked_mean`): a missing entry contributes nothing to the loss or
its gradient, whatever its target value (NaN included), and a batch with no observed entry
has loss 0. Without a mask (``None``) every entry counts, with the same numbers as before masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import StudentT


def observed_mask(observed: Tensor, target: Tensor) -> Tensor:
    """``observed`` (bool or 0/1, the shape of ``target``) as a bool mask."""
    if not isinstance(observed, Tensor) or observed.shape != target.shape:
        shape = tuple(observed.shape) if isinstance(observed, Tensor) else type(observed).__name__
        raise ValueError(
            f"observed has shape {shape}; expected the target's shape {tuple(target.shape)}"
        )
    return observed if observed.dtype == torch.bool else observed != 0


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """The mean of ``values`` over the entries where the bool ``mask`` is set (0 where it is set
    nowhere). Entries outside the mask get a zero gradient; the heads first replace missing
    targets by a finite value, so no NaN reaches the backward through them either."""
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return total.sum() / mask.sum().clamp(min=1)


def _fill_missing(target: Tensor, mask: Tensor, value: Tensor) -> Tensor:
    """``target`` with ``value`` (finite, broadcast) at its missing entries, so the per-entry
    losses there, masked afterwards, are finite and their gradient is exactly zero."""
    return torch.where(mask, target, value.to(target.dtype).expand_as(target))


class ForecastHead(nn.Module):
    """Shared shape bookkeeping: ``features [B, F] -> raw [B, H, C, per_step]``."""

    per_step: int = 1

    def __init__(self, in_features: int, horizon: int, channels: int, dropout: float = 0.0):
        super().__init__()
        if horizon < 1 or channels < 1:
            raise ValueError(f"horizon={horizon}, channels={channels}; both must be >= 1")
        self.horizon, self.channels = horizon, channels
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, horizon * channels * self.per_step)

    def raw(self, features: Tensor) -> Tensor:
        out = self.linear(self.dropout(features))
        return out.view(features.shape[0], self.horizon, self.channels, self.per_step)

    def forward(self, features: Tensor, loc: Tensor, scale: Tensor):  # pragma: no cover
        raise NotImplementedError

    def loss(
        self, output, target: Tensor, loc: Tensor, scale: Tensor, observed: Tensor | None = None
    ) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def point(self, output) -> Tensor:
        raise NotImplementedError  # pragma: no cover


class PointHead(ForecastHead):
    """Point forecast ``[B, H, C]``; MSE loss in normalised units (so every series and channel
    weighs the same whatever its scale)."""

    def forward(self, features: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        return self.raw(features)[..., 0] * scale + loc

    def loss(
        self,
        output: Tensor,
        target: Tensor,
        loc: Tensor,
        scale: Tensor,
        observed: Tensor | None = None,
    ) -> Tensor:
        if observed is None:
            return F.mse_loss((output - loc) / scale, (target - loc) / scale)
        mask = observed_mask(observed, target)
        target = _fill_missing(target, mask, loc)
        return masked_mean(((output - loc) / scale - (target - loc) / scale).pow(2), mask)

    def point(self, output: Tensor) -> Tensor:
        return output


class StudentTHead(ForecastHead):
    """A Student-t distribution per step and channel: ``batch_shape [B, H, C]``."""

    per_step = 3

    def forward(self, features: Tensor, loc: Tensor, scale: Tensor) -> StudentT:
        raw = self.raw(features)
        df = 2.0 + F.softplus(raw[..., 0])
        mean = raw[..., 1] * scale + loc
        spread = (F.softplus(raw[..., 2]) + 1e-4) * scale
        return StudentT(df, mean, spread)

    def loss(
        self,
        output: StudentT,
        target: Tensor,
        loc: Tensor,
        scale: Tensor,
        observed: Tensor | None = None,
    ) -> Tensor:
        # Negative log-likelihood in normalised units: the log|scale| term is a constant.
        if observed is None:
            return -(output.log_prob(target) + scale.log()).mean()
        mask = observed_mask(observed, target)
        target = _fill_missing(target, mask, loc)
        return masked_mean(-(output.log_prob(target) + scale.log()), mask)

    def point(self, output: StudentT) -> Tensor:
        return output.mean


class QuantileHead(ForecastHead):
    """Quantiles ``[B, H, C, Q]`` (non-decreasing in Q by construction: a first value plus
    softplus increments)."""

    levels: Tensor  # the quantile levels ``[Q]``, a buffer

    def __init__(
        self,
        in_features: int,
        horizon: int,
        channels: int,
        quantiles: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        dropout: float = 0.0,
    ) -> None:
        levels = sorted(float(q) for q in quantiles)
        if not levels or levels[0] <= 0 or levels[-1] >= 1 or len(set(levels)) != len(levels):
            raise ValueError(f"quantiles={tuple(quantiles)}; expected distinct levels in (0, 1)")
        self.per_step = len(levels)
        super().__init__(in_features, horizon, channels, dropout)
        self.register_buffer("levels", torch.tensor(levels), persistent=False)

    def forward(self, features: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        raw = self.raw(features)
        steps = torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1).cumsum(dim=-1)
        return steps * scale[..., None] + loc[..., None]

    def loss(
        self,
        output: Tensor,
        target: Tensor,
        loc: Tensor,
        scale: Tensor,
        observed: Tensor | None = None,
    ) -> Tensor:
        mask = None if observed is None else observed_mask(observed, target)
        if mask is not None:
            target = _fill_missing(target, mask, loc)
        error = ((target - loc) / scale)[..., None] - (output - loc[..., None]) / scale[..., None]
        pinball = torch.maximum(self.levels * error, (self.levels - 1) * error)
        if mask is None:
            return pinball.mean()
        return masked_mean(pinball.mean(dim=-1), mask)  # each entry: its mean over the levels

    def point(self, output: Tensor) -> Tensor:
        return output[..., int((self.levels - 0.5).abs().argmin())]


HEADS = {"point": PointHead, "student_t": StudentTHead, "quantile": QuantileHead}
