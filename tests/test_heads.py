"""Classification head: masked pooling and view averaging."""

from __future__ import annotations

import pytest
import torch

from titans_sci.heads.classification import (
    ClassificationHead,
    average_probabilities,
    masked_max,
    masked_mean,
)


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
