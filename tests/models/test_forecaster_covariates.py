"""Covariates in the window forecaster: what each kind may change, a constant one changing
nothing, a planted leak learned (the path works), shapes refused in one line."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from titans_sci.data.covariates import CovariateColumns
from titans_sci.data.timeseries import load_dataset, make_splits
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.forecaster import MODES, ForecasterConfig, TitansForecaster

L, H = 32, 8
EPOCHS = 3
BACKBONE = LMMConfig(
    dim=16, depth=1, memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
)


def _model(mode: str = "channel_independent", **covariates: int) -> TitansForecaster:
    config = ForecasterConfig(lookback=L, horizon=H, channels=2, backbone=BACKBONE, mode=mode,
                              patch_len=8, stride=8, **covariates)  # fmt: skip
    return TitansForecaster(config).eval()


def _inputs(batch: int = 3, past: int = 2, known: int = 1, calendar: int = 1):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, L, 2, generator=g),
        torch.randn(batch, L, past, generator=g),
        torch.randn(batch, L + H, known + calendar, generator=g),
    )


@pytest.mark.parametrize("mode", MODES)
def test_known_covariates_reach_the_horizon_and_past_ones_the_window(mode):
    model = _model(mode, past_covariates=2, known_covariates=1, calendar=1)
    x, past, known = _inputs()
    base = model(x, past, known)
    assert base.shape == (3, H, 2)
    ahead = known.clone()
    ahead[:, L:, 0] += 1.0  # the day-ahead forecast over the horizon
    assert not torch.allclose(model(x, past, ahead), base)
    calendar = known.clone()
    calendar[:, L:, 1] += 0.1  # a calendar feature over the horizon
    assert not torch.allclose(model(x, past, calendar), base)
    measured = past.clone()
    measured[:, -1, 1] += 1.0  # the last measurement before the origin
    assert not torch.allclose(model(x, measured, known), base)


@pytest.mark.parametrize("mode", MODES)
def test_a_constant_covariate_changes_nothing(mode):
    """Instance-normalised over the window, a constant covariate is zero whatever its value,
    and the covariate maps have no bias: the forecast is that of the covariates all zero."""
    model = _model(mode, past_covariates=1, known_covariates=1)
    x, _, _ = _inputs()
    forecasts = [
        model(x, torch.full((3, L, 1), value), torch.full((3, L + H, 1), -value))
        for value in (0.0, 5.0, -300.0)
    ]
    for other in forecasts[1:]:
        torch.testing.assert_close(other, forecasts[0])


@pytest.mark.parametrize("mode", MODES)
def test_static_features_give_each_series_its_own_forecast(mode):
    model = _model(mode, static_cardinalities=(3, 5), static_real=2)
    x = _inputs()[0]
    categories = torch.tensor([[0, 4], [1, 4], [0, 2]])
    real = torch.zeros(3, 2)
    same_window = x[:1].expand(3, -1, -1)
    out = model(same_window, None, None, categories, real)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], out[2])
    other = model(same_window, None, None, categories, real + torch.tensor([1.0, 0.0]))
    assert not torch.allclose(other, out)
    with pytest.raises(ValueError, match=r"static_cat feature 1: categories 3..5; .* 0..4"):
        model(same_window, None, None, categories + torch.tensor([0, 1]), real)


def test_covariates_are_refused_where_the_model_does_not_read_them_or_misses_them():
    plain = _model()
    x, past, known = _inputs()
    with pytest.raises(ValueError, match="past covariates were given"):
        plain(x, past, None)
    reading = _model(past_covariates=2, known_covariates=1, calendar=1)
    with pytest.raises(ValueError, match=r"known covariates: none; expected \[3, 40, 2\]"):
        reading(x, past, None)
    with pytest.raises(ValueError, match=r"known covariates: shape \(3, 32, 2\); expected"):
        reading(x, past, known[:, :L])


def test_a_planted_leak_is_learned_to_near_zero_error():
    """A known covariate that is the future target itself (ETTh1's OT, copied): the head's map
    of the known covariates over the horizon can copy it, and training finds that; the same
    model without the copy cannot come near."""
    table = load_dataset("ett/ETTh1")
    ot = table.values[:4000, [table.columns.index("OT")]]
    leaky = replace(table, values=np.concatenate([ot, ot], axis=1), columns=["OT", "copy"],
                    timestamps=table.timestamps[:4000])  # fmt: skip
    errors = {}
    for name, known in (("leak", ("copy",)), ("plain", ())):
        data = leaky if known else replace(leaky, values=ot, columns=["OT"])
        covariates = CovariateColumns(known=known) if known else None
        splits = make_splits(data, "ratio_70_10_20", 48, 24, covariates=covariates)
        torch.manual_seed(0)
        config = ForecasterConfig(lookback=48, horizon=24, channels=1, backbone=BACKBONE,
                                  patch_len=8, stride=8, known_covariates=len(known))  # fmt: skip
        model = TitansForecaster(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        loader = DataLoader(splits.train, batch_size=64, shuffle=True)
        for _ in range(EPOCHS):
            for x, y, *covariates in loader:
                optimizer.zero_grad()
                model.loss(x, y, "data", None, *covariates).backward()
                optimizer.step()
        model.eval()
        x, y, *covariates = next(iter(DataLoader(splits.val, batch_size=512)))
        errors[name] = float((model.predict(x, *covariates) - y).square().mean())
    assert errors["leak"] < 0.05 * errors["plain"], errors
