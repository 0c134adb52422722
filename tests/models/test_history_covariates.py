"""The whole-history forecaster with covariates, on real electricity prices (bundled EPF, Nord
Pool): no forecast reads a past covariate or the target at or after its origin while a known
covariate over the horizon is read; the stream in pieces equals one pass; a constant covariate
changes nothing; a covariate that is the future target is learned to near zero error; static
features reach the forecast; bad covariates are refused in one line."""

from __future__ import annotations

import pytest
import torch

from titans_sci.data.covariates import calendar_features
from titans_sci.data.timeseries import load_dataset
from titans_sci.history import fit_history, score_history
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.covariates import Covariates
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    HistoryForecasterConfig,
    series_covariates,
    stream_forecasts,
)
from titans_sci.train import TrainConfig

MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
P, L, H = 8, 48, 24
ROWS = 1200


def make(**kw) -> HistoryForecaster:
    torch.manual_seed(0)
    config = HistoryForecasterConfig(
        horizon=H, lookback=L, patch_len=P, backbone=LMMConfig(dim=16, depth=2, memory=MEMORY),
        **{"past_covariates": 1, "known_covariates": 1, "calendar": 2, **kw},
    )  # fmt: skip
    model = HistoryForecaster(config).double().eval()
    with torch.no_grad():  # both branches start at zero on the covariates; give them weight
        model.memory_head[-1].weight.normal_(std=0.1)
        model.linear.weight.normal_(std=0.05)
    return model


@pytest.fixture(scope="module")
def nord_pool() -> tuple[torch.Tensor, Covariates]:
    """Nord Pool's first hours, standardised: the price ``[1, ROWS]``; the wind forecast as a
    past covariate ``[1, ROWS, 1]``, the load forecast and two calendar features as known ones
    ``[1, ROWS, 3]``."""
    table = load_dataset("epf/NP")
    values = torch.from_numpy(table.values[:ROWS]).double()
    values = (values - values.mean(0)) / values.std(0)
    load, wind, price = (table.columns.index(c) for c in
                         ("Grid load forecast", "Wind power forecast", "OT"))  # fmt: skip
    calendar = torch.from_numpy(
        calendar_features(table.timestamps[:ROWS], ("hour_of_day", "day_of_week"))
    ).double()
    known = torch.cat([values[:, [load]], calendar], dim=1)
    covariates = series_covariates(values[:, [wind]], known, 1)
    assert covariates is not None
    return values[:, price][None], Covariates(covariates.past.double(), covariates.known.double())


def forecasts(model, series, origins, covariates, **kw) -> torch.Tensor:
    parts = list(stream_forecasts(model, series, origins, covariates=covariates, **kw))
    return torch.cat([f for _, f in parts], dim=1)


def test_a_known_covariate_over_the_horizon_is_read_and_nothing_after_the_origin_else(
    nord_pool,
):
    """Changing the target or the past covariate at or after step ``t``, or the known one after
    the horizon of origin ``t``, changes no forecast made at or before ``t``; changing the
    known covariate at step ``t`` changes the forecast at origin ``t``."""
    model = make()
    series, covariates = nord_pool
    origins = torch.arange(100, 700, 7)
    before = forecasts(model, series, origins, covariates)
    for t in (205, 401, 520):  # origins, each
        noise = torch.randn(ROWS - t, dtype=torch.float64)
        changed = series.clone()
        changed[:, t:] += noise
        past = covariates.past.clone()
        past[:, t:, 0] += noise
        known = covariates.known.clone()
        known[:, t + H :, 0] += noise[H:]
        after = forecasts(model, changed, origins, Covariates(past, known))
        kept = origins <= t
        torch.testing.assert_close(after[:, kept], before[:, kept], rtol=0, atol=0)
        assert not torch.allclose(after[:, ~kept], before[:, ~kept])
        known = covariates.known.clone()
        known[:, t + H - 1, 0] += 1.0  # the last step of origin t's horizon
        moved = forecasts(model, series, origins, Covariates(covariates.past, known))
        at = int((origins == t).nonzero())
        assert not torch.allclose(moved[:, at], before[:, at])
        torch.testing.assert_close(moved[:, origins <= t - H], before[:, origins <= t - H])


def test_streaming_with_covariates_in_pieces_gives_the_forecasts_of_one_pass(nord_pool):
    model = make()
    series, covariates = nord_pool
    origins = torch.arange(1, ROWS - H + 1, 5)
    whole = forecasts(model, series, origins, covariates, piece=ROWS)
    for piece in (8, 56, 333):
        pieces = forecasts(model, series, origins, covariates, piece=piece)
        torch.testing.assert_close(pieces, whole, rtol=1e-10, atol=1e-10)


def test_a_constant_covariate_changes_nothing(nord_pool):
    """Data covariates are normalised by their own lookback, so a constant reads as zeros:
    two constants of any level give the same forecasts."""
    model = make(calendar=0)
    series, _ = nord_pool
    origins = torch.arange(60, ROWS - H, 11)

    def constant(level: float, steps: int) -> torch.Tensor:
        return torch.full((1, steps, 1), level, dtype=torch.float64)

    low = forecasts(model, series, origins, Covariates(constant(-3.0, ROWS), constant(0.5, ROWS)))
    high = forecasts(model, series, origins, Covariates(constant(7.0, ROWS), constant(2e3, ROWS)))
    torch.testing.assert_close(low, high, rtol=1e-9, atol=1e-9)


def test_a_known_covariate_that_is_the_future_target_is_learned_to_near_zero_error(nord_pool):
    """A leak planted on purpose: the known covariate is the price itself. The window's linear
    map (the first training stage) learns to copy it over the horizon, so the test error is
    near zero; without the leak the same training leaves the price's real error."""
    series, _ = nord_pool
    series = series.float()
    train, val = 800, torch.arange(820, 900)
    test = torch.arange(900, ROWS - H + 1)
    scores = {}
    for leak in (True, False):
        known = series[0, :, None] if leak else torch.zeros(ROWS, 1)
        covariates = series_covariates(None, known, 1)
        torch.manual_seed(0)
        config = HistoryForecasterConfig(
            horizon=H, lookback=L, patch_len=P, known_covariates=1,
            backbone=LMMConfig(dim=16, depth=1, memory=MEMORY),
        )  # fmt: skip
        model = HistoryForecaster(config)
        training = TrainConfig(epochs=30, lr=1e-2, weight_decay=0.0)
        fit_history(model, series, train, val, training, seed=1, stretch=64, writes=False,
                    covariates=covariates)  # fmt: skip
        scores[leak] = score_history(model, series, test, covariates=covariates).mse
    assert scores[True] < 0.05 * scores[False], scores


def test_static_features_reach_the_forecast_and_bad_ones_are_refused(nord_pool):
    model = make(static_cardinalities=(3,), static_real=1)
    series, covariates = nord_pool
    origins = torch.arange(100, 300, 13)

    def with_static(category: int, real: float) -> torch.Tensor:
        given = covariates._replace(
            static_cat=torch.tensor([[category]]), static_real=torch.tensor([[real]]).double()
        )
        return forecasts(model, series, origins, given)

    assert not torch.allclose(with_static(0, 0.5), with_static(2, 0.5))
    assert not torch.allclose(with_static(0, 0.5), with_static(0, -1.0))
    with pytest.raises(ValueError, match=r"static_cat feature 0: categories 3..3; the model "
                                         r"knows 0..2"):  # fmt: skip
        with_static(3, 0.5)


def test_covariates_missing_or_too_short_are_refused_in_one_line(nord_pool):
    model = make()
    series, covariates = nord_pool
    origins = torch.arange(100, 300, 13)
    with pytest.raises(ValueError, match=r"known covariates: none; expected \[16, 72, 3\]"):
        forecasts(model, series, origins, Covariates(covariates.past, None))
    with pytest.raises(ValueError, match=r"past covariates: none; expected \[16, 48, 1\]"):
        forecasts(model, series, origins, None)
    short = covariates.known[:, :300]
    message = r"known covariates have 300 steps; the forecast at origin 295 reads them over its "
    with pytest.raises(ValueError, match=message + r"horizon, to step 319"):
        forecasts(model, series, torch.arange(100, 300, 13), Covariates(covariates.past, short))
    plain = make(past_covariates=0, known_covariates=0, calendar=0)
    with pytest.raises(ValueError, match=r"past covariates were given; the model was built"):
        forecasts(plain, series, origins, covariates)
