"""What the forecasters share of their covariates: the counts a config holds, how the
covariates of a window are normalised, and the vector of a series' static features.

A window's covariates (see :class:`Covariates`): ``past [B, L, Cp]`` known up to the origin
only, ``known [B, L + H, Ck + Cc]`` known over the horizon too (the ``Ck`` data covariates,
then the ``Cc`` calendar features), ``static_cat [B, S]`` and ``static_real [B, R]``.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

__all__ = [
    "Covariates",
    "CovariateCounts",
    "check_categories",
    "check_counts",
    "checked_covariates",
    "instance_norm",
    "normalise_covariates",
    "static_modules",
    "static_vector",
]


class Covariates(NamedTuple):
    """A batch's covariates, each ``None`` where the model reads none of that kind."""

    past: Tensor | None = None
    known: Tensor | None = None
    static_cat: Tensor | None = None
    static_real: Tensor | None = None


class CovariateCounts(Protocol):
    """The covariate fields of a forecaster's config (and its window)."""

    @property
    def lookback(self) -> int: ...
    @property
    def horizon(self) -> int: ...
    @property
    def known_width(self) -> int: ...

    @property
    def past_covariates(self) -> int: ...
    @property
    def known_covariates(self) -> int: ...
    @property
    def calendar(self) -> int: ...
    @property
    def static_cardinalities(self) -> tuple[int, ...]: ...
    @property
    def static_real(self) -> int: ...


def check_counts(config: CovariateCounts) -> None:
    """Refuse a config's covariate counts that are not ints >= 0 (cardinalities >= 1), in one
    line naming the field; the cardinalities are kept as a tuple."""
    name = type(config).__name__
    cardinalities = config.static_cardinalities
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in cardinalities):
        raise ValueError(f"{name}.static_cardinalities={cardinalities!r}; expected ints >= 1")
    object.__setattr__(config, "static_cardinalities", tuple(cardinalities))
    for field in ("past_covariates", "known_covariates", "calendar", "static_real"):
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}.{field}={value!r}; expected an int >= 0")


def instance_norm(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """RevIN without affine over the time axis (dim 1) of ``x [B, L, ...]``: ``(normalised x,
    loc [B, 1, ...], scale [B, 1, ...])``, the scale the standard deviation plus 1e-5 under the
    root."""
    loc = x.mean(dim=1, keepdim=True)
    scale = (x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).sqrt()
    return (x - loc) / scale, loc, scale


def normalise_covariates(
    past: Tensor | None, known: Tensor | None, lookback: int, known_data: int, normalise: bool
) -> tuple[Tensor, Tensor] | tuple[None, None]:
    """A window's covariates as a model reads them: over the lookback ``[B, L, Cp + Ck +
    Cc]`` and over the horizon ``[B, H, Ck + Cc]`` (``(None, None)`` for neither). With
    ``normalise``, the ``Cp`` past and the first ``known_data`` (``Ck``) known columns are
    shifted and divided by their own lookback's mean and standard deviation (the known ones'
    horizon by the same statistics), as TimeXer normalises its exogenous series; the calendar
    columns are read as they come. So a covariate constant over the lookback reads as zeros,
    and a known covariate equal to the target reads as the target does under RevIN."""
    if past is None and known is None:
        return None, None
    some = past if past is not None else known
    assert some is not None
    columns = []
    future = some.new_zeros(some.shape[0], 0, 0)
    if past is not None:
        columns.append(instance_norm(past)[0] if normalise else past)
    if known is not None:
        data, calendar = known[..., :known_data], known[..., known_data:]
        if normalise and known_data:
            _, loc, scale = instance_norm(data[:, :lookback])
            data = (data - loc) / scale
        known = torch.cat([data, calendar], dim=-1)
        columns.append(known[:, :lookback])
        future = known[:, lookback:]
    return torch.cat(columns, dim=-1), future


def static_modules(
    cardinalities: tuple[int, ...], real: int, dim: int
) -> tuple[nn.ModuleList, nn.Linear | None]:
    """The embedding table of each static categorical feature (``N(0, 0.02)``) and the
    bias-free map of the ``real`` static real features, to width ``dim``."""
    tables = [nn.Embedding(cardinality, dim) for cardinality in cardinalities]
    for table in tables:
        nn.init.normal_(table.weight, std=0.02)
    return nn.ModuleList(tables), (nn.Linear(real, dim, bias=False) if real else None)


def static_vector(
    tables: nn.ModuleList, real_map: nn.Linear | None, given: Covariates
) -> Tensor | None:
    """The static features' vector ``[B, D]``: the sum of each category's embedding and the
    map of the real features; ``None`` without any."""
    parts = []
    if given.static_cat is not None:
        cat = given.static_cat.long()
        parts += [table(cat[:, i]) for i, table in enumerate(tables)]
    if given.static_real is not None and real_map is not None:
        parts.append(real_map(given.static_real))
    return torch.stack(parts).sum(dim=0) if parts else None


def check_categories(static_cat: Tensor | None, cardinalities: tuple[int, ...]) -> None:
    """Refuse a category outside ``0..cardinality - 1`` of its feature, in one line."""
    if static_cat is None:
        return
    for i, cardinality in enumerate(cardinalities):
        values = static_cat[:, i]
        if values.numel() and not 0 <= int(values.min()) <= int(values.max()) < cardinality:
            raise ValueError(
                f"static_cat feature {i}: categories {int(values.min())}..{int(values.max())}; "
                f"the model knows 0..{cardinality - 1}"
            )


def checked_covariates(
    config: CovariateCounts, count: int, covariates: tuple[Tensor | None, ...]
) -> Covariates:
    """The covariates of ``count`` windows (``past, known, static_cat, static_real``, the
    trailing ones optional) checked against ``config``, one line naming what is wrong."""
    cfg = config
    if len(covariates) > len(Covariates._fields):
        raise ValueError(f"{len(covariates)} covariate tensors; expected at most 4")
    given = Covariates(*covariates)
    expected = {
        "past": (cfg.past_covariates, (count, cfg.lookback, cfg.past_covariates)),
        "known": (cfg.known_width, (count, cfg.lookback + cfg.horizon, cfg.known_width)),
        "static_cat": (len(cfg.static_cardinalities), (count, len(cfg.static_cardinalities))),
        "static_real": (cfg.static_real, (count, cfg.static_real)),
    }
    for name, (width, shape) in expected.items():
        tensor = getattr(given, name)
        if width == 0 and tensor is not None and tensor.shape[-1] != 0:
            raise ValueError(f"{name} covariates were given; the model was built without")
        if width and (tensor is None or tuple(tensor.shape) != shape):
            found = "none" if tensor is None else f"shape {tuple(tensor.shape)}"
            raise ValueError(f"{name} covariates: {found}; expected {list(shape)}")
    check_categories(given.static_cat, cfg.static_cardinalities)
    return given
