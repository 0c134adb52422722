"""Training and scoring a whole-history forecaster on real series (ETTh1): an epoch is one pass
over the training range, the epoch is chosen on validation, and the score at the test origins
is that of the forecasts of one pass (writing, or frozen where asked)."""

from __future__ import annotations

import pytest
import torch

from titans_sci.data.timeseries import load_dataset
from titans_sci.history import fit_history, read_through, score_history
from titans_sci.layers import memory_writes
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    HistoryForecasterConfig,
    stream_forecasts,
)
from titans_sci.train import TrainConfig

MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=8)
TRAIN, VAL, END, H = 1200, 1500, 1800, 24


@pytest.fixture(scope="module")
def series() -> torch.Tensor:
    """ETTh1's first 1800 hours, three channels, scaled by the first 1200 (training) rows."""
    values = torch.from_numpy(load_dataset("ett/ETTh1").values[:END, :3]).float().T
    train = values[:, :TRAIN]
    return ((values - train.mean(1, keepdim=True)) / train.std(1, keepdim=True)).contiguous()


def make(**kw) -> HistoryForecaster:
    torch.manual_seed(0)
    backbone = LMMConfig(dim=16, depth=1, memory=MEMORY)
    config = HistoryForecasterConfig(horizon=H, channels=3, lookback=48, patch_len=8,
                                     backbone=backbone, **kw)  # fmt: skip
    return HistoryForecaster(config)


def test_training_selects_on_validation_and_scores_match_one_pass(series, tmp_path):
    model = make()
    val = torch.arange(TRAIN, VAL - H + 1)
    result = fit_history(model, series, TRAIN, val, TrainConfig(epochs=3, lr=3e-3), seed=1,
                         stretch=128, directory=tmp_path)  # fmt: skip
    assert len(result.train_losses) == 3
    assert result.best_epoch == max(range(3), key=lambda e: result.dev_scores[e])
    assert -result.dev_scores[result.best_epoch] == pytest.approx(
        score_history(model, series, val).mse
    )
    test = torch.arange(VAL, END - H + 1)
    score = score_history(model, series, test)
    model.eval()
    forecasts = torch.cat([f for _, f in stream_forecasts(model, series, test, piece=64)], dim=1)
    target = series[:, test[:, None] + torch.arange(H)]
    assert score.mse == pytest.approx(float((forecasts - target).double().square().mean()))
    frozen = score_history(model, series, test, freeze_at=TRAIN)
    assert frozen.mse != score.mse and frozen.origins == score.origins == len(test)


def test_reading_through_in_pieces_is_one_read(series):
    model = make()
    _, whole = model.read(series[:, :1000])
    pieces = read_through(model, series, 1000, piece=96)
    torch.testing.assert_close(pieces.features, whole.features)


def test_bad_origins_and_stretches_are_refused(series):
    model = make()
    with pytest.raises(ValueError, match="runs past the series"):
        score_history(model, series, torch.arange(END - H, END))
    with pytest.raises(ValueError, match="before freeze_at"):
        score_history(model, series, torch.arange(VAL, END - H), freeze_at=VAL + 1)
    with pytest.raises(ValueError, match="multiple of patch_len"):
        fit_history(model, series, TRAIN, torch.arange(TRAIN, VAL), TrainConfig(), 0, stretch=100)


def test_an_interrupted_training_resumes_to_the_same_weights(series, tmp_path):
    """Stopped after its second epoch's checkpoint and resumed, training by stretches ends on
    the weights of an uninterrupted run (each epoch starts the stream afresh, so the carried
    state needs no checkpoint)."""
    from titans_sci.history import Stretches
    from titans_sci.train import Trainer

    config = TrainConfig(epochs=4, lr=3e-3)

    def trained(directory, stop_after=None, resume=False):
        model = make()
        stretches = Stretches(model, series, TRAIN, 128)
        calls = []

        def score() -> float:
            calls.append(1)
            if stop_after is not None and len(calls) > stop_after:
                raise KeyboardInterrupt
            return -score_history(model, series, torch.arange(TRAIN, VAL - H + 1)).mse

        Trainer(model, config, 1, directory).fit(stretches.batches, stretches.loss, score, resume)
        return model.state_dict()

    whole = trained(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        trained(tmp_path / "cut", stop_after=2)
    resumed = trained(tmp_path / "cut", resume=True)
    assert any(not torch.equal(value, make().state_dict()[key]) for key, value in whole.items())
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def test_window_then_memory_trains_each_part_alone(series, tmp_path):
    """The first stage moves the window's linear map only (the memory branch stays at its
    zero start), the second the memory's branch only (the window path stays as the first
    stage left it); each stage keeps its own checkpoint and selection on validation."""
    from titans_sci.history import Stretches, fit_stages

    model = make()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    stretches = Stretches(model, series, TRAIN, 128)
    seen: list[dict[str, torch.Tensor]] = []

    def score() -> float:
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return -score_history(model, series, torch.arange(TRAIN, VAL - H + 1)).mse

    config = TrainConfig(epochs=2, lr=3e-3)
    window, memory = fit_stages(model, stretches, config, 1, score, directory=tmp_path)
    after_window = seen[1]  # the second epoch of the first stage
    for key, value in after_window.items():
        moved = not torch.equal(value, start[key])
        assert moved == key.startswith("linear."), key
    for key, value in seen[3].items():  # the second epoch of the second stage
        if key.startswith("linear."):
            assert torch.equal(value, model.state_dict()[key])
    assert not torch.equal(model.memory_head[-1].weight, start["memory_head.2.weight"])
    assert (tmp_path / "window" / "checkpoint.pt").exists()
    assert (tmp_path / "memory" / "checkpoint.pt").exists()
    assert all(p.requires_grad for p in model.parameters())  # restored after the stages
    assert len(window.dev_scores) == len(memory.dev_scores) == 2


def test_the_first_stage_is_shared_by_every_setting_and_a_later_stage_starts_alike(series):
    """The window's linear map starts from the seed alone and its stage trains it alike
    whatever the dropout, the memory or its writes; given those weights, starting at the
    second stage gives the weights of the whole run (its dropout draws are the stage's own)."""
    from titans_sci.history import Stretches, fit_stages

    val = torch.arange(TRAIN, VAL - H + 1)
    config = TrainConfig(epochs=2, lr=3e-3)

    def trained(model, first=0, writes=True):
        stretches = Stretches(model, series, TRAIN, 128)

        def score() -> float:
            return -score_history(model, series, val).mse

        with memory_writes(model, writes):
            fit_stages(model, stretches, config, 1, score, first=first)
        return {k: v.clone() for k, v in model.state_dict().items()}

    whole = trained(make(dropout=0.3))
    maps = [trained(make(dropout=d, memory=m), first=0, writes=w)
            for d, m, w in ((0.1, True, True), (0.0, False, True), (0.3, True, False))]  # fmt: skip
    for other in maps:
        for key in ("linear.weight", "linear.bias"):
            torch.testing.assert_close(other[key], whole[key], rtol=0, atol=0)
    assert not torch.equal(whole["linear.weight"], make().state_dict()["linear.weight"])
    model = make(dropout=0.3)
    model.linear.load_state_dict({"weight": whole["linear.weight"], "bias": whole["linear.bias"]})
    resumed = trained(model, first=1)
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def test_a_silent_model_trains_on_the_same_stretches_in_a_random_order(series):
    """The first stage (nothing streamed) takes an epoch's stretches shuffled: the same
    stretches, each with the loss it has in time order (no state is carried between them)."""
    from titans_sci.history import Stretches
    from titans_sci.train import only

    model = make()
    stretches = Stretches(model, series, TRAIN, 128)
    ordered = list(stretches.batches(0, torch.Generator().manual_seed(5)))
    assert ordered == sorted(ordered)
    with only(model, list(model.linear.parameters())), torch.no_grad():
        assert model.silent
        shuffled = list(stretches.batches(0, torch.Generator().manual_seed(5)))
        assert shuffled != ordered and sorted(shuffled) == ordered
        losses = [{b: float(stretches.loss(b)) for b in order} for order in (ordered, shuffled)]
    assert losses[0] == losses[1]
