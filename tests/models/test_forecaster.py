"""The Titans forecaster and its heads: shapes, invariances, losses, configs."""

from __future__ import annotations

import pytest
import torch

from titans_sci.heads.forecasting import PointHead, QuantileHead, StudentTHead
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig, MACConfig, MAGConfig, MALConfig
from titans_sci.models.forecaster import MODES, ForecasterConfig, TitansForecaster

MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
HEADS = ("point", "student_t", "quantile")


def make(mode: str = "channel_independent", head: str = "point", **kw) -> TitansForecaster:
    torch.manual_seed(0)
    backbone = kw.pop("backbone", LMMConfig(dim=16, depth=1, memory=MEMORY))
    config = ForecasterConfig(
        lookback=40, horizon=12, channels=3, backbone=backbone, mode=mode, head=head,
        patch_len=8, stride=4, **kw,
    )  # fmt: skip
    return TitansForecaster(config).double().eval()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("head", HEADS)
def test_shapes_losses_and_point_forecasts(mode: str, head: str):
    model = make(mode, head)
    x, y = torch.randn(5, 40, 3).double(), torch.randn(5, 12, 3).double()
    assert model.predict(x).shape == (5, 12, 3)
    loss = model.loss(x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("mode", MODES)
def test_instance_norm_makes_forecasts_affine_equivariant(mode: str):
    """Shifting and scaling a window shifts and scales its forecast the same way, per channel
    (RevIN): forecast(a x + b) = a forecast(x) + b, up to the 1e-5 added to the variance."""
    model = make(mode)
    x = torch.randn(4, 40, 3).double()
    a, b = torch.tensor([2.0, 0.5, 10.0]).double(), torch.tensor([-3.0, 100.0, 0.1]).double()
    expected = a * model.predict(x) + b
    torch.testing.assert_close(model.predict(a * x + b), expected, rtol=1e-3, atol=1e-3)
    assert not torch.allclose(model.predict(x + 1), model.predict(x) + 2)  # not trivially true


def test_channel_independent_mode_keeps_channels_apart():
    """Channel-independent: a channel's forecast depends on that channel alone (shared weights,
    so permuting channels permutes forecasts); the multivariate and channel-mixing modes mix
    them."""
    x = torch.randn(2, 40, 3).double()
    changed = x.clone()
    changed[:, :, 2] += torch.randn(2, 40).double()
    model = make("channel_independent")
    torch.testing.assert_close(model.predict(changed)[..., :2], model.predict(x)[..., :2])
    torch.testing.assert_close(model.predict(x[..., [2, 0, 1]]), model.predict(x)[..., [2, 0, 1]])
    for mode in ("multivariate", "channel_mixing"):
        mixed = make(mode)
        assert not torch.allclose(mixed.predict(changed)[..., :2], mixed.predict(x)[..., :2])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("split", [1, 4, 9])
def test_encode_streams_over_patches(mode: str, split: int):
    """The patch sequences fed in two pieces, carrying the state, give the features of one
    call, with the channel mixers between the blocks too."""
    model = make(mode, backbone=LMMConfig(dim=16, depth=2, memory=MEMORY))
    tokens = model.tokens(torch.randn(2, 40, 3).double())  # [B', 10 patches, D]
    whole, _ = model.encode(tokens)
    head, state = model.encode(tokens[:, :split])
    tail, _ = model.encode(tokens[:, split:], state)
    torch.testing.assert_close(torch.cat([head, tail], dim=1), whole)


@pytest.mark.parametrize("mode", MODES)
def test_features_of_the_past_never_see_a_later_step(mode: str):
    """Causal over time in every mode: changing every channel after the last step of patch 4
    (steps 24..39 of 40; patch n covers steps 4n..4n+7) leaves the features of patches 0..4
    unchanged, channel mixing included, and changes later ones. Instance normalisation is off:
    it scales a window by statistics of the whole window, by design."""
    model = make(mode, backbone=LMMConfig(dim=16, depth=2, memory=MEMORY), instance_norm=False)
    x = torch.randn(2, 40, 3).double()
    future = x.clone()
    future[:, 24:] += torch.randn(2, 16, 3).double()
    past, _ = model.encode(model.tokens(x))
    again, _ = model.encode(model.tokens(future))
    torch.testing.assert_close(again[:, :5], past[:, :5])
    assert not torch.allclose(again[:, 5:], past[:, 5:])


def test_channel_mixing_mixes_channels_at_the_same_patch_only():
    """A change in channel 2 after patch 4 reaches channels 0 and 1 at later patches (the mixer
    mixes series) but not at patches 0..4 (it mixes each patch position alone)."""
    model = make("channel_mixing", instance_norm=False)
    x = torch.randn(2, 40, 3).double()
    changed = x.clone()
    changed[:, 24:, 2] += torch.randn(2, 16).double()
    h, _ = model.encode(model.tokens(x))
    h2, _ = model.encode(model.tokens(changed))
    per_channel = h.reshape(2, 3, *h.shape[1:]), h2.reshape(2, 3, *h2.shape[1:])
    torch.testing.assert_close(per_channel[1][:, :, :5], per_channel[0][:, :, :5])
    assert not torch.allclose(per_channel[1][:, :2, 5:], per_channel[0][:, :2, 5:])
    assert len(model.mixers) == model.config.backbone.depth
    assert len(make("channel_independent").mixers) == 0


@pytest.mark.parametrize(
    "backbone",
    [
        MAGConfig(dim=16, depth=1, memory=MEMORY, window=4),
        MALConfig(dim=16, depth=1, memory=MEMORY, window=4),
        MACConfig(dim=16, depth=1, memory=MEMORY, segment_len=4),
    ],
)
def test_any_backbone_variant(backbone):
    model = make("channel_independent", "student_t", backbone=backbone)
    assert model.predict(torch.randn(2, 40, 3).double()).shape == (2, 12, 3)


def test_quantile_head_is_monotone_and_its_loss_is_the_pinball_loss():
    head = QuantileHead(4, horizon=2, channels=1, quantiles=(0.9, 0.1, 0.5))
    loc, scale = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
    q = head(torch.randn(3, 4), loc, scale)
    assert q.shape == (3, 2, 1, 3) and (q.diff(dim=-1) >= 0).all()
    assert torch.equal(head.point(q), q[..., 1])  # levels sorted: 0.1, 0.5, 0.9
    target = torch.randn(3, 2, 1)
    e = target[..., None] - q
    tau = torch.tensor([0.1, 0.5, 0.9])
    expected = torch.where(e >= 0, tau * e, (tau - 1) * e).mean()
    torch.testing.assert_close(head.loss(q, target, loc, scale), expected)
    with pytest.raises(ValueError, match="quantiles"):
        QuantileHead(4, 2, 1, quantiles=(0.0, 0.5))


def test_student_t_loss_is_the_scale_free_negative_log_likelihood():
    """The loss is the NLL of the target in units of the window's scale, so multiplying the
    data by 10 leaves it unchanged."""
    head = StudentTHead(4, horizon=3, channels=2)
    features = torch.randn(2, 4)
    target = torch.randn(2, 3, 2)
    loc, scale = torch.zeros(2, 1, 2), torch.ones(2, 1, 2)
    dist = head(features, loc, scale)
    torch.testing.assert_close(head.loss(dist, target, loc, scale), -dist.log_prob(target).mean())
    scaled = head(features, loc, 10 * scale)
    torch.testing.assert_close(
        head.loss(scaled, 10 * target, loc, 10 * scale), head.loss(dist, target, loc, scale)
    )
    assert (dist.df > 2).all()
    torch.testing.assert_close(head.point(dist), dist.mean)


def test_point_head_loss_is_mse_in_window_units():
    head = PointHead(4, horizon=3, channels=2)
    out = head(torch.randn(2, 4), torch.zeros(2, 1, 2), 5 * torch.ones(2, 1, 2))
    target = torch.randn(2, 3, 2)
    loc, scale = torch.zeros(2, 1, 2), 5 * torch.ones(2, 1, 2)
    torch.testing.assert_close(
        head.loss(out, target, loc, scale), ((out - target) / 5).pow(2).mean()
    )


@pytest.mark.parametrize("mode", MODES)
def test_loss_units_window_or_data(mode: str):
    """``units="data"``: the MSE of the forecast in the data's units; ``"window"``: in units of
    each window and channel's own scale, so a window ten times larger weighs the same."""
    model = make(mode)
    x, y = torch.randn(4, 40, 3).double(), torch.randn(4, 12, 3).double()
    x[0] *= 10
    y[0] *= 10
    forecast = model(x)
    torch.testing.assert_close(model.loss(x, y, units="data"), (forecast - y).pow(2).mean())
    scale = x.var(dim=1, keepdim=True, unbiased=False).add(1e-5).sqrt()
    torch.testing.assert_close(model.loss(x, y), ((forecast - y) / scale).pow(2).mean())
    with pytest.raises(ValueError, match="loss units='global'"):
        model.loss(x, y, units="global")


def test_config_round_trip_and_errors():
    config = ForecasterConfig(
        lookback=96, horizon=24, channels=7, backbone=MAGConfig(dim=16, memory=MEMORY, window=8)
    )
    again = ForecasterConfig.from_dict(config.to_dict())
    assert again == config and isinstance(again.backbone, MAGConfig)
    assert config.num_patches == 12
    with pytest.raises(ValueError, match="patch_len=16 is longer than lookback=8"):
        ForecasterConfig(lookback=8, horizon=4)
    with pytest.raises(ValueError, match="mode='both'"):
        ForecasterConfig(lookback=96, horizon=4, mode="both")
    with pytest.raises(ValueError, match="head='normal'"):
        ForecasterConfig(lookback=96, horizon=4, head="normal")
    with pytest.raises(ValueError, match="ForecasterConfig: unknown key 'colour'"):
        ForecasterConfig.from_dict({"lookback": 96, "horizon": 4, "colour": 1})
    with pytest.raises(ValueError, match="bidirectional"):
        TitansForecaster(
            ForecasterConfig(lookback=96, horizon=4, backbone=LMMConfig(bidirectional=True))
        )
    model = make()
    with pytest.raises(ValueError, match=r"x has shape \(2, 40, 2\); expected \[B, 40, 3\]"):
        model.predict(torch.randn(2, 40, 2).double())
    with pytest.raises(ValueError, match=r"y has shape"):
        model.loss(torch.randn(2, 40, 3).double(), torch.randn(2, 11, 3).double())


@pytest.mark.parametrize("mode", MODES)
def test_lookback_skip_is_a_linear_map_of_the_normalised_window(mode: str):
    """With the backbone's part of the head zeroed, a skip that copies the last normalised
    value to every step forecasts the window's last value exactly, channel by channel, in both
    modes: the skip sees each channel's own window in the layout the head's output uses."""
    model = make(mode, lookback_skip=True)
    lookback, horizon, channels = 40, 12, 3
    width = 1 if model.config.per_channel else channels
    weight = torch.zeros_like(model.head.linear.weight)  # [H * width, features + L * width]
    skip = weight[:, -lookback * width :].view(horizon, width, lookback, width)
    for c in range(width):
        skip[:, c, -1, c] = 1.0  # step h, channel c <- the window's last step of channel c
    with torch.no_grad():
        model.head.linear.weight.copy_(weight)
        model.head.linear.bias.zero_()
    x = torch.randn(4, lookback, channels).double() * 3 + 5
    expected = x[:, -1:].expand(-1, horizon, -1)
    torch.testing.assert_close(model.predict(x), expected)
    plain = make(mode)
    assert model.head.linear.in_features == plain.head.linear.in_features + lookback * width


@pytest.mark.parametrize("mode", MODES)
def test_surprise_reads_the_windows_as_the_forecast_does(mode: str):
    """``surprise`` gives ``[B, C', N, L', H]`` in every mode; with channel mixing the mixers
    sit between the blocks there too: a change in channel 2 after patch 4 moves channel 0's
    second-layer surprise at later patches only."""
    model = make(mode, backbone=LMMConfig(dim=16, depth=2, memory=MEMORY), instance_norm=False)
    x = torch.randn(2, 40, 3).double()
    surprise = model.surprise(x)
    assert surprise.shape == (2, 1 if mode == "multivariate" else 3, 10, 2, 2)
    if mode == "channel_mixing":
        changed = x.clone()
        changed[:, 24:, 2] += torch.randn(2, 16).double()
        moved = model.surprise(changed)
        torch.testing.assert_close(moved[:, 0, :5], surprise[:, 0, :5])
        assert not torch.allclose(moved[:, 0, 5:, 1], surprise[:, 0, 5:, 1])
