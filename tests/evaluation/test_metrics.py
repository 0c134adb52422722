"""Classification metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from titans_sci.evaluation.metrics import classification_metrics


def test_binary_metrics_by_hand():
    labels = np.array([1, 1, 0, 0, 1, 0])
    p1 = np.array([0.9, 0.4, 0.2, 0.6, 0.8, 0.1])  # predictions: 1 0 0 1 1 0
    m = classification_metrics(labels, np.stack([1 - p1, p1], axis=1))
    tp, tn, fp, fn = 2, 2, 1, 1
    assert m["accuracy"] == pytest.approx(4 / 6)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m["mcc"] == pytest.approx(mcc)
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # AUROC: 8 of the 9 positive/negative pairs are ordered correctly.
    assert m["auroc"] == pytest.approx(8 / 9)


def test_multiclass_and_degenerate_cases():
    labels = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 2, 1]]
    m = classification_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(0.75)
    assert 0 < m["auroc"] <= 1
    assert classification_metrics(np.array([1, 1]), np.eye(2)[[1, 0]])["auroc"] is None
    with pytest.raises(ValueError, match="labels outside 0..1"):
        classification_metrics(np.array([0, 2]), np.eye(2))
    with pytest.raises(ValueError, match="probabilities have shape"):
        classification_metrics(np.array([0, 1, 1]), np.eye(2))


def test_forecast_errors_are_pure_sums_that_add_over_batches():
    from titans_sci.evaluation.forecasting import error_sums, point_errors

    gen = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(10, 4, 3, generator=gen), torch.randn(10, 4, 3, generator=gen)
    whole = point_errors(error_sums(prediction, target))
    halves = error_sums(prediction[:3], target[:3]) + error_sums(prediction[3:], target[3:])
    assert point_errors(halves) == pytest.approx(whole)
    assert whole["mse"] == pytest.approx(float((prediction - target).square().mean()))
    assert whole["mae"] == pytest.approx(float((prediction - target).abs().mean()))
    with pytest.raises(ValueError, match="shape"):
        error_sums(prediction, target[:, :2])
