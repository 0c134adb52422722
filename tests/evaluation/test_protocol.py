"""The selection protocol: test data never influence the selected checkpoint; folds and
summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.evaluation.protocol import stratified_folds, summarize
from titans_sci.train import TrainConfig, Trainer


def _data(seed: int, n: int = 200):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=gen) > 0).long()
    return x, y


def _run(dev, test, epochs: int = 8):
    """Train with the one trainer (select on dev), then evaluate ``test`` once."""
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    train_x, train_y = _data(1)

    def accuracy(x, y) -> float:
        with torch.no_grad():
            probs = model(x).softmax(-1).numpy()
        return classification_metrics(y.numpy(), probs)["accuracy"]

    selection = Trainer(model, TrainConfig(epochs=epochs, lr=0.5), seed=0).fit(
        batches=lambda epoch, generator: [(train_x, train_y)],
        loss=lambda batch: nn.functional.cross_entropy(model(batch[0]), batch[1]),
        score_dev=lambda: accuracy(*dev),
    )
    return selection, accuracy(*test)


def test_test_set_never_influences_selection():
    dev, test, other_test = _data(2, 60), _data(3, 60), _data(4, 60)
    chosen, _ = _run(dev, test)
    # Another test set: same selection, only the reported number changes.
    chosen_other, _ = _run(dev, other_test)
    assert chosen_other.best_epoch == chosen.best_epoch
    assert chosen_other.dev_scores == chosen.dev_scores
    # Swapping dev and test changes the selection only through the (new) dev set.
    swapped, _ = _run(test, dev)
    assert swapped.dev_scores != chosen.dev_scores
    assert swapped.best_epoch == int(np.argmax(swapped.dev_scores))


def test_folds_and_summaries():
    labels = np.array([0] * 30 + [1] * 20)
    folds = stratified_folds(labels, k=5, seed=0)
    held_out = np.concatenate([h for _, h in folds])
    assert sorted(held_out.tolist()) == list(range(50))  # every sample held out exactly once
    for train, held in folds:
        assert set(train).isdisjoint(held)
        assert labels[held].sum() == 4  # stratified: 20 positives over 5 folds
    summary = summarize([{"accuracy": 0.5}, {"accuracy": 0.7}])
    assert summary["accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["accuracy"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    undefined = summarize([{"auroc": None}, {"auroc": 0.7}, {"auroc": 0.9}])["auroc"]
    assert undefined == {"mean": pytest.approx(0.8), "std": pytest.approx(0.1414, abs=1e-4), "n": 2}
    assert summarize([{"auroc": None}])["auroc"] == {"mean": None, "std": None, "n": 0}
