"""The whole-history forecaster on real series (ETTh1): streaming in pieces equals one pass, no
forecast reads its origin or later, evaluation leaves the weights alone while the memory
writes, the frozen-memory switch stops the writes, and memory stays flat over 1M steps."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from titans_sci.data.timeseries import load_dataset
from titans_sci.layers import memory_writes
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    HistoryForecasterConfig,
    _discounted_sums,
    stream_forecasts,
    stretch_loss,
)

MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
P, L, H = 8, 24, 12


def make(**kw) -> HistoryForecaster:
    torch.manual_seed(0)
    config = HistoryForecasterConfig(
        horizon=H, lookback=L, patch_len=P, backbone=LMMConfig(dim=16, depth=2, memory=MEMORY),
        **kw,
    )  # fmt: skip
    model = HistoryForecaster(config).double().eval()
    with torch.no_grad():  # the memory head starts at zero; give it weight so it shows
        model.memory_head[-1].weight.normal_(std=0.1)
    return model


@pytest.fixture(scope="module")
def series() -> torch.Tensor:
    """Two channels of ETTh1's first 700 hours, standardised: ``[2, 700]``."""
    values = torch.from_numpy(load_dataset("ett/ETTh1").values[:700, :2]).double().T
    return (values - values.mean(1, keepdim=True)) / values.std(1, keepdim=True)


def forecasts(model, series, origins, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    parts = list(stream_forecasts(model, series, origins, **kw))
    return torch.cat([o for o, _ in parts]), torch.cat([f for _, f in parts], dim=1)


def memories(state) -> list[torch.Tensor]:
    return [t for block in state.backbone.blocks for t in block.memory.weights]


def test_reading_in_pieces_gives_the_features_and_state_of_one_pass(series):
    model = make()
    whole, one = model.read(series)
    parts, state = [], None
    for begin, end in [(0, 5), (5, 37), (37, 38), (38, 400), (400, 700)]:  # odd, unaligned
        h, state = model.read(series[:, begin:end], state)
        parts.append(h)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)
    assert whole.shape == (2, 700 // P, 16) and state.steps == one.steps == 700
    torch.testing.assert_close(state.pending, one.pending)
    for a, b in zip(memories(state), memories(one), strict=True):
        torch.testing.assert_close(a, b)


def test_streamed_forecasts_do_not_depend_on_the_piece_size(series):
    model = make()
    origins = torch.arange(1, 701)
    at, reference = forecasts(model, series, origins, piece=700)
    assert torch.equal(at, origins) and reference.shape == (2, 700, H)
    for piece in (8, 13, 100):
        torch.testing.assert_close(forecasts(model, series, origins, piece=piece)[1], reference)
    # From a state part way: the same forecasts as one pass.
    _, state = model.read(series[:, :301])
    later = origins[origins >= 296]
    torch.testing.assert_close(
        forecasts(model, series, later, state=state, piece=50)[1], reference[:, 295:]
    )
    with pytest.raises(ValueError, match="before the state's last complete patch"):
        forecasts(model, series, origins, state=state)


@pytest.mark.parametrize("cut", [250, 256, 263])
def test_no_forecast_reads_its_origin_or_later(series, cut):
    """Changing every value from step ``cut`` on changes no forecast made at an origin <= cut
    (the first step a forecast at origin t predicts is t) and does change later ones."""
    model = make()
    origins = torch.arange(1, 701)
    _, before = forecasts(model, series, origins, piece=64)
    changed = series.clone()
    changed[:, cut:] = torch.randn_like(changed[:, cut:]) * 3
    _, after = forecasts(model, changed, origins, piece=64)
    assert torch.equal(after[:, :cut], before[:, :cut])
    assert not torch.allclose(after[:, cut + P :], before[:, cut + P :])


def test_evaluation_leaves_the_weights_alone_while_the_memory_writes(series):
    model = make()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    _, start = model.read(series[:, :P])
    _, end = model.read(series)
    forecasts(model, series, torch.arange(1, 701))
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    pairs = zip(memories(start), memories(end), strict=True)
    assert all(not torch.allclose(a, b) for a, b in pairs)


def test_the_frozen_memory_switch_stops_the_writes(series):
    """Frozen, the memory stays as it stood when writing stopped (the tokens read before the
    switch included): reading more changes no memory weight, and the features differ from
    those of a memory that keeps writing."""
    model = make()
    _, state = model.read(series[:, :400])
    with memory_writes(model, False):
        h_frozen, frozen = model.read(series[:, 400:500], state)
        _, later = model.read(series[:, 500:], frozen)
    for a, b in zip(memories(frozen), memories(later), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    h_writing, writing = model.read(series[:, 400:500], state)
    _, writing = model.read(series[:, 500:], writing)
    assert not torch.allclose(h_frozen, h_writing)
    pairs = zip(memories(later), memories(writing), strict=True)
    assert all(not torch.allclose(a, b) for a, b in pairs)
    assert all(layer.writes for layer in model.modules() if hasattr(layer, "writes"))


def test_discounted_sums_match_the_recurrence():
    x = torch.randn(3, 150, dtype=torch.float64)
    start = torch.randn(3, dtype=torch.float64)
    (sums,) = _discounted_sums((x,), (start,), 0.9)
    expected, s = [], start
    for k in range(150):
        s = 0.9 * s + x[:, k]
        expected.append(s)
    torch.testing.assert_close(sums, torch.stack(expected, dim=1))


def test_stretches_carry_the_state_and_train_every_origin_once(series):
    """Dense supervision: stretches of the training series, the state carried, forecast at
    every origin whose horizon fits, each once; the loss is that of the one-pass forecasts."""
    model = make()
    origins, losses, state = [], [], None
    for begin in range(0, 600, 10 * P):
        loss, state, count = stretch_loss(model, series, begin, begin + 10 * P, state, stop=600)
        state = state.detach()
        losses.append(loss * count)
        origins.append(count)
    all_origins = torch.arange(P, 600 - H + 1)
    assert sum(origins) == len(all_origins)
    _, reference = forecasts(model, series, all_origins)
    target = series[:, all_origins[:, None] + torch.arange(H)]
    expected = torch.nn.functional.mse_loss(reference, target)
    torch.testing.assert_close(sum(losses) / sum(origins), expected)


def test_memory_stays_flat_over_a_million_steps():
    """Peak RSS of streaming 2**20 steps (generated piece by piece, so the data is not held)
    is within 32 MiB of streaming 2**17: the state does not grow with the history."""
    code = textwrap.dedent(
        """
        import json, resource, sys, torch
        from titans_sci.memory import MemoryConfig
        from titans_sci.models import LMMConfig
        from titans_sci.models.history_forecaster import HistoryForecaster, HistoryForecasterConfig
        torch.set_num_threads(1)
        memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=16)
        backbone = LMMConfig(dim=16, depth=1, memory=memory)
        config = HistoryForecasterConfig(patch_len=64, backbone=backbone)
        model = HistoryForecaster(config).eval()
        state, steps = None, int(sys.argv[1])
        with torch.no_grad():
            for begin in range(0, steps, 65536):
                t = torch.arange(begin, begin + 65536, dtype=torch.float32)
                _, state = model.read(torch.sin(t / 24)[None] + 0.01 * t[None] / steps, state)
        print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                          "steps": state.steps}))
        """
    )
    peaks = {}
    for steps in (2**17, 2**20):
        out = subprocess.run(
            [sys.executable, "-c", code, str(steps)], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        assert result["steps"] == steps
        peaks[steps] = result["rss"]  # KiB
    assert peaks[2**20] - peaks[2**17] < 32 * 1024, peaks


def test_surprise_streams_like_the_features(series):
    """The surprise per patch read in pieces is that of one pass, with the same state."""
    model = make()
    whole, one = model.surprise(series)
    first, state = model.surprise(series[:, :333])
    second, state = model.surprise(series[:, 333:], state)
    assert whole.shape == (2, 700 // P, 2, 2)  # [B', K, layers, heads]
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(state.features, one.features)
    assert bool((whole > 0).all())


def test_without_the_memory_the_forecast_reads_the_window_alone(series):
    """``memory = False``: no backbone, nothing streamed; forecasts depend only on the last
    ``lookback`` steps before each origin, so a change before them changes nothing."""
    model = make(memory=False)
    assert model.backbone is None and model.embed is None
    origins = torch.arange(100, 701)
    _, before = forecasts(model, series, origins, piece=64)
    changed = series.clone()
    changed[:, :50] += 5.0  # more than lookback steps before the first origin
    _, after = forecasts(model, changed, origins)
    assert torch.equal(after, before)
    with pytest.raises(ValueError, match="no memory"):
        model.surprise(series)


def test_the_window_only_ablation_trains_in_the_stages_of_the_model_it_ablates():
    """Both train the window's linear map first; then the memory model its memory's branch,
    the window-only model the same MLP alone: the two differ only by the memory. Each
    parameter is in exactly one stage."""
    for memory, second in ((True, "memory"), (False, "head")):
        model = make(memory=memory)
        stages = model.stages()
        assert [name for name, _ in stages] == ["window", second]
        assert {id(p) for p in stages[0][1]} == {id(p) for p in model.linear.parameters()}
        staged = [id(p) for _, params in stages for p in params]
        assert sorted(staged) == sorted(id(p) for p in model.parameters())


def test_a_silent_memory_branch_is_not_read_and_changes_nothing(series, monkeypatch):
    """While the memory branch's output layer is zero and frozen (the first training stage)
    the model is silent: the stream is not read, and the losses, the window's gradients and the
    forecasts are those of reading it. A weight of the layer set, it reads again."""
    model = make()
    last = model.memory_head[-1]
    with torch.no_grad():
        last.weight.zero_()
    origins = torch.arange(P + 5, 600 - H + 1, 7)

    def measured():
        model.zero_grad()
        first, state, n = stretch_loss(model, series, 0, 10 * P, None, stop=600)
        second, _, m = stretch_loss(model, series, 10 * P, 25 * P + 3, state.detach(), stop=600)
        (first + second).backward()
        grad = model.linear.weight.grad
        assert grad is not None and bool(grad.abs().sum() > 0)
        return first, second, n, m, grad.clone(), forecasts(model, series, origins, piece=50)

    assert not model.silent
    reading = measured()
    last.requires_grad_(False)
    assert model.silent

    def unread(*args, **kwargs):
        raise AssertionError("a silent model read its stream")

    monkeypatch.setattr(model, "read", unread)
    silent = measured()
    for got, expected in zip(silent, reading, strict=True):
        torch.testing.assert_close(got, expected)
    with torch.no_grad():
        last.weight[0, 0] = 1e-3
    assert not model.silent
