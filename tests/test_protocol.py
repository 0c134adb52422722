"""The selection protocol: test data never influence the selected checkpoint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.evaluation.protocol import select_on_dev, stratified_folds, summarize


def _data(seed: int, n: int = 200):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=gen) > 0).long()
    return x, y


def _run(dev, test, epochs: int = 8):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train_x, train_y = _data(1)
    test_calls = []

    def train_epoch(epoch: int) -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(train_x), train_y).backward()
        opt.step()

    def accuracy(x, y) -> float:
        with torch.no_grad():
            probs = model(x).softmax(-1).numpy()
        return classification_metrics(y.numpy(), probs)["accuracy"]

    def evaluate_test():
        test_calls.append(1)
        return {"accuracy": accuracy(*test)}

    selection = select_on_dev(
        epochs,
        train_epoch,
        score_dev=lambda: accuracy(*dev),
        snapshot=lambda: copy.deepcopy(model.state_dict()),
        restore=model.load_state_dict,
        evaluate_test=evaluate_test,
    )
    return selection, len(test_calls)


def test_test_set_never_influences_selection():
    dev, test, other_test = _data(2, 60), _data(3, 60), _data(4, 60)
    chosen, calls = _run(dev, test)
    assert calls == 1  # the test set is evaluated once, after selection
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
    with pytest.raises(ValueError, match="epochs=0"):
        select_on_dev(0, print, float, dict, print, dict)
