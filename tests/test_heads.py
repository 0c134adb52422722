"""Classification head: masked pooling and view averaging."""

from __future__ import annotations

import pytest
import torch

from titans_sci.heads.classification import ClassificationHead, average_probabilities, masked_mean


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
