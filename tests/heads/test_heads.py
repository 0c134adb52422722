"""Classification head: masked pooling and view averaging. Forecasting heads: losses masked to
the observed target steps."""

from __future__ import annotations

import pytest
import torch

from titans_sci.heads.classification import (
    ClassificationHead,
    average_probabilities,
    masked_max,
    masked_mean,
)
from titans_sci.heads.forecasting import HEADS, QuantileHead


def test_masked_mean_ignores_padding_on_either_side():
    h = torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 4 + [False] * 2, [False] * 3 + [True] * 3])
    pooled = masked_mean(h, mask)
    torch.testing.assert_close(pooled[0], h[0, :4].mean(0))
    torch.testing.assert_close(pooled[1], h[1, 3:].mean(0))
    garbage = h.clone()
    garbage[~mask] = 1e6
    torch.testing.assert_close(masked_mean(garbage, mask), pooled)


def test_masked_mean_without_mask_and_bad_mask():
    h = torch.randn(2, 5, 3)
    torch.testing.assert_close(masked_mean(h), h.mean(1))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\)"):
        masked_mean(h, torch.ones(2, 4, dtype=torch.bool))


def test_head_and_view_averaging():
    head = ClassificationHead(dim=3, num_classes=4)
    logits = head(torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool))
    assert logits.shape == (2, 4)
    other = torch.randn(2, 4)
    probs = average_probabilities(logits, other)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    torch.testing.assert_close(probs, average_probabilities(other, logits))
    with pytest.raises(ValueError, match="num_classes=1"):
        ClassificationHead(dim=3, num_classes=1)


def test_masked_max_ignores_padding_and_pools_empty_rows_to_zero():
    h = torch.randn(3, 6, 3)
    mask = torch.tensor([[True] * 4 + [False] * 2, [False] * 3 + [True] * 3, [False] * 6])
    pooled = masked_max(h, mask)
    torch.testing.assert_close(pooled[0], h[0, :4].amax(0))
    torch.testing.assert_close(pooled[1], h[1, 3:].amax(0))
    torch.testing.assert_close(pooled[2], torch.zeros(3))
    garbage = h.clone()
    garbage[~mask] = 1e6
    torch.testing.assert_close(masked_max(garbage, mask), pooled)
    torch.testing.assert_close(masked_max(h), h.amax(1))


def test_head_pool_choice():
    h, mask = torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    head = ClassificationHead(dim=3, num_classes=2, pool="max")
    torch.testing.assert_close(head(h, mask), head.linear(h.amax(1)))
    with pytest.raises(ValueError, match="pool='median'"):
        ClassificationHead(dim=3, num_classes=2, pool="median")


# ----------------------------------------------------------------------------- forecasting heads

B, F, H, C = 4, 6, 5, 2


def _forecast_head(name: str, seed: int = 0):
    """A forecasting head, its (leaf) features, loc/scale ``[B, 1, C]`` and a target."""
    torch.manual_seed(seed)
    cls = HEADS[name]
    head = cls(F, H, C, quantiles=(0.1, 0.5, 0.9)) if cls is QuantileHead else cls(F, H, C)
    features = torch.randn(B, F, requires_grad=True)
    loc, scale = torch.randn(B, 1, C), torch.rand(B, 1, C) + 0.5
    target = loc + scale * torch.randn(B, H, C)
    return head, features, loc, scale, target


def _loss_and_grads(head, features, loc, scale, target, observed=None):
    head.zero_grad()
    features.grad = None
    loss = head.loss(head(features, loc, scale), target, loc, scale, observed)
    loss.backward()
    grads = [features.grad.clone()] + [p.grad.clone() for p in head.parameters()]
    return loss.detach(), grads


@pytest.mark.parametrize("name", sorted(HEADS))
def test_a_mask_of_ones_is_the_unmasked_loss(name):
    head, features, loc, scale, target = _forecast_head(name)
    plain, plain_grads = _loss_and_grads(head, features, loc, scale, target)
    for ones in (torch.ones(B, H, C, dtype=torch.bool), torch.ones(B, H, C)):
        masked, grads = _loss_and_grads(head, features, loc, scale, target, ones)
        torch.testing.assert_close(masked, plain)
        for a, b in zip(grads, plain_grads, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_masked_entries_change_neither_the_loss_nor_the_gradient(name):
    """The values at missing steps (NaN, inf, huge, anything) do not matter, bit for bit; the
    loss is the mean of the per-entry losses over the observed entries."""
    head, features, loc, scale, target = _forecast_head(name)
    observed = torch.rand(B, H, C) < 0.6
    observed[0] = False  # a window with nothing observed
    observed[1, 0, 0] = True
    reference, grads = _loss_and_grads(head, features, loc, scale, target, observed)
    for garbage in (float("nan"), float("inf"), -1e30, 7.0):
        other = torch.where(observed, target, torch.full_like(target, garbage))
        loss, other_grads = _loss_and_grads(head, features, loc, scale, other, observed)
        assert torch.equal(loss, reference), garbage
        for a, b in zip(other_grads, grads, strict=True):
            assert torch.equal(a, b), garbage
    # 0/1 floats are a mask too.
    loss, _ = _loss_and_grads(head, features, loc, scale, target, observed.float())
    assert torch.equal(loss, reference)
    # The mean over the observed entries of each entry's loss (one window, one step at a time).
    with torch.no_grad():
        output = head(features, loc, scale)
        entries = []
        for b, h, c in observed.nonzero().tolist():
            single = torch.zeros(B, H, C, dtype=torch.bool)
            single[b, h, c] = True
            entries.append(head.loss(output, target, loc, scale, single))
    torch.testing.assert_close(reference, torch.stack(entries).mean())


def test_masked_losses_by_hand():
    head, features, loc, scale, target = _forecast_head("point")
    observed = torch.rand(B, H, C) < 0.5
    out = head(features, loc, scale)
    expected = ((out - target) / scale).pow(2)[observed].mean()
    torch.testing.assert_close(head.loss(out, target, loc, scale, observed), expected)

    head, features, loc, scale, target = _forecast_head("student_t")
    dist = head(features, loc, scale)
    nll = -(dist.log_prob(target) + scale.log())
    torch.testing.assert_close(head.loss(dist, target, loc, scale, observed), nll[observed].mean())

    head, features, loc, scale, target = _forecast_head("quantile")
    q = head(features, loc, scale)
    e = ((target[..., None] - q) / scale[..., None])[observed]  # [n, Q]
    tau = torch.tensor([0.1, 0.5, 0.9])
    expected = torch.where(e >= 0, tau * e, (tau - 1) * e).mean()
    torch.testing.assert_close(head.loss(q, target, loc, scale, observed), expected)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_an_all_missing_batch_has_loss_zero_and_zero_gradients(name):
    head, features, loc, scale, target = _forecast_head(name)
    nowhere = torch.zeros(B, H, C, dtype=torch.bool)
    loss, grads = _loss_and_grads(head, features, loc, scale, target * float("nan"), nowhere)
    assert loss.item() == 0.0
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_a_mask_of_another_shape_is_refused():
    head, features, loc, scale, target = _forecast_head("point")
    with pytest.raises(ValueError, match=r"observed has shape \(4, 5\); expected the target's"):
        head.loss(head(features, loc, scale), target, loc, scale, torch.ones(B, H))
