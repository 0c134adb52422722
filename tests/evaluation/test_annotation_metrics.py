"""Genome-annotation metrics against scikit-learn (base level) and hand counts (feature level)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from titans_sci.data.annotation import LABELS, Feature
from titans_sci.evaluation.annotation import base_scores, confusion, feature_scores


def test_base_scores_match_scikit_learn_and_add_over_chromosomes():
    rng = np.random.default_rng(0)
    pieces = []
    for length in (1001, 377):
        truth = rng.integers(0, 5, length)
        predicted = np.where(rng.random(length) < 0.6, truth, rng.integers(0, 5, length))
        pieces.append((truth, predicted))
    matrix = sum(confusion(t, p) for t, p in pieces)
    truth = np.concatenate([t for t, _ in pieces])
    predicted = np.concatenate([p for _, p in pieces])
    scores = base_scores(matrix)
    for label, name in enumerate(LABELS):
        t, p = truth == label, predicted == label
        assert scores[name]["precision"] == pytest.approx(metrics.precision_score(t, p))
        assert scores[name]["recall"] == pytest.approx(metrics.recall_score(t, p))
        assert scores[name]["f1"] == pytest.approx(metrics.f1_score(t, p))
        assert scores[name]["mcc"] == pytest.approx(metrics.matthews_corrcoef(t, p))
    assert scores["all"]["mcc"] == pytest.approx(metrics.matthews_corrcoef(truth, predicted))
    assert scores["all"]["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))


def test_a_label_never_predicted_has_no_precision_not_nan():
    scores = base_scores(confusion(np.array([0, 1, 1, 0]), np.array([0, 0, 0, 0])))
    assert scores["CDS+"]["precision"] is None and scores["CDS+"]["recall"] == 0.0
    assert scores["CDS+"]["f1"] is None and scores["CDS+"]["mcc"] is None
    assert scores["intron"]["recall"] is None  # no intron in the truth either


def test_labels_outside_the_set_are_refused():
    with pytest.raises(ValueError, match="predicted holds labels outside 0..4"):
        confusion(np.array([0, 1]), np.array([0, 7]))


def test_feature_scores_count_exact_exons_and_exact_cds():
    truth = {
        "a": [Feature("CDS", 1, ((0, 10), (40, 50))), Feature("CDS", -1, ((60, 90),))],
        "b": [Feature("CDS", 1, ((5, 25),)), Feature("RNA", 0, ((30, 40),))],
    }
    predicted = {
        "a": [
            Feature("CDS", 1, ((0, 10), (41, 50))),  # first exon right, CDS end wrong
            Feature("CDS", 1, ((60, 90),)),  # wrong strand
        ],
        "b": [Feature("CDS", 1, ((5, 25),)), Feature("CDS", 1, ((100, 110),))],
    }
    scores = feature_scores(truth, predicted)
    assert scores["exon"] == {"precision": 2 / 5, "recall": 2 / 4, "f1": pytest.approx(4 / 9),
                              "true": 4, "predicted": 5}  # fmt: skip
    # CDS exact: b's (5, 25) on + and a's first CDS (right start and end, an exon off inside)
    assert scores["cds"]["true"] == 3 and scores["cds"]["predicted"] == 4
    assert scores["cds"]["precision"] == 2 / 4 and scores["cds"]["recall"] == 2 / 3
