"""The trainer: selection on dev, early stopping, checkpoints and exact resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from titans_sci.data.timeseries import load_dataset
from titans_sci.train import CHECKPOINT, TrainConfig, Trainer


def _data():
    """Real rows of ETTh1: predict the oil temperature (OT) from the six load columns."""
    table = load_dataset("ett/ETTh1")
    values = torch.from_numpy(table.values[:1200]).float()
    values = (values - values.mean(0)) / values.std(0)
    x, y = values[:, :6], values[:, 6:]
    return (x[:1000], y[:1000]), (x[1000:], y[1000:])


def _setup(seed: int = 0):
    torch.manual_seed(seed)  # the model's initialisation and dropout
    model = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Dropout(0.2), nn.Linear(32, 1))
    (x, y), (dev_x, dev_y) = _data()

    def batches(epoch: int, gen: torch.Generator):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            yield x[idx], y[idx]

    def loss(batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    @torch.no_grad()
    def score_dev() -> float:
        model.eval()
        return -nn.functional.mse_loss(model(dev_x), dev_y).item()

    return model, batches, loss, score_dev


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("patience", [None, 1])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, patience):
    """Stop a run in the middle of epoch 2 (after its first checkpoint), resume it in a fresh
    process-like setup (new model, new trainer): the same weights, dev scores and losses as a
    run that was never interrupted, with dropout and shuffling in play."""
    config = TrainConfig(epochs=6, lr=3e-3, clip_norm=1.0, patience=patience)
    model, batches, loss, score = _setup()
    whole = Trainer(model, config, seed=5).fit(batches, loss, score)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, batches, loss, score = _setup()

    def interrupted(epoch, gen):
        for i, batch in enumerate(batches(epoch, gen)):
            if epoch == 1 and i == 3:
                raise Interrupt
            yield batch

    with pytest.raises(Interrupt):
        Trainer(model, config, seed=5, directory=tmp_path).fit(interrupted, loss, score)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["epochs_done"] == 1
    assert not (tmp_path / (CHECKPOINT + ".tmp")).exists()

    model, batches, loss, score = _setup(seed=123)  # whatever the new process starts from
    resumed = Trainer(model, config, seed=5, directory=tmp_path).fit(
        batches, loss, score, resume=True
    )
    assert resumed == whole
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    model, batches, loss, score = _setup()
    config = TrainConfig(epochs=50, lr=0.05, patience=2)
    result = Trainer(model, config, seed=0, directory=tmp_path).fit(batches, loss, score)
    assert result.stopped_early and len(result.dev_scores) < 50
    assert len(result.dev_scores) == result.best_epoch + 3
    assert score() == pytest.approx(max(result.dev_scores))
    # A finished run resumed is not trained again.
    again = Trainer(model, config, seed=0, directory=tmp_path).fit(
        batches, loss, score, resume=True
    )
    assert again == result


def test_resume_with_other_settings_or_a_bad_file_is_refused(tmp_path):
    model, batches, loss, score = _setup()
    Trainer(model, TrainConfig(epochs=1, lr=1e-3), 0, tmp_path).fit(batches, loss, score)
    with pytest.raises(ValueError, match=r"checkpoint.pt: cannot resume.*training.lr: 0.001"):
        Trainer(model, TrainConfig(epochs=1, lr=1e-2), 0, tmp_path).fit(
            batches, loss, score, resume=True
        )
    with pytest.raises(ValueError, match=r"training.batch_size: 32 before, 64 now"):
        Trainer(model, TrainConfig(epochs=1, lr=1e-3, batch_size=64), 0, tmp_path).fit(
            batches, loss, score, resume=True
        )
    with pytest.raises(ValueError, match=r"data.train: \"aa\" before, \"bb\" now"):
        Trainer(
            model, TrainConfig(epochs=1), 0, tmp_path, fingerprint={"data": {"train": "aa"}}
        ).fit(batches, loss, score)
        Trainer(
            model, TrainConfig(epochs=1), 0, tmp_path, fingerprint={"data": {"train": "bb"}}
        ).fit(batches, loss, score, resume=True)
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot resume from this checkpoint"):
        Trainer(model, TrainConfig(epochs=1, lr=1e-3), 0, tmp_path).fit(
            batches, loss, score, resume=True
        )


def test_a_non_finite_loss_stops_training():
    model, batches, _, score = _setup()

    def loss(batch):
        return model(batch[0]).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="training loss is nan in epoch 0"):
        Trainer(model, TrainConfig(epochs=1, lr=1e-3), 0).fit(batches, loss, score)
    with pytest.raises(ValueError, match="epochs=0"):
        TrainConfig(epochs=0, lr=1e-3)


def _eager_and_compiled() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A small bidirectional LMM classifier and a copy of it compiled by the trainer
    (``compile = true``), with the same weights."""
    from titans_sci.models.config import LMMConfig
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

    memory = {"preset": "titans", "num_heads": 2, "head_dim": 8, "chunk_size": 16}
    backbone = LMMConfig.from_dict({"dim": 16, "depth": 1, "bidirectional": True, "memory": memory})
    torch.manual_seed(0)
    eager = DNAClassifier(ClassifierConfig(backbone))
    compiled = DNAClassifier(ClassifierConfig(backbone))
    compiled.load_state_dict(eager.state_dict())
    Trainer(compiled, TrainConfig(epochs=1, compile=True), seed=1)
    return eager, compiled


def test_compile_runs_the_same_module_through_torch_compile():
    """``compile = true`` (the suite's ``--compile``): the model's calls are compiled in place,
    its forward gives the eager one's numbers, and its state dict (what is saved) is the plain
    module's."""
    eager, compiled = _eager_and_compiled()
    ids = torch.randint(5, 9, (4, 37))
    mask = torch.ones(4, 37, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, mask), eager(ids, mask), rtol=1e-5, atol=1e-6)
    assert list(compiled.state_dict()) == list(eager.state_dict())


def test_compiled_training_step_gives_the_eager_outputs_and_gradients():
    """The genomics queue trains through ``torch.compile``: in training mode (the memory's lean
    path with its explicit backward, which Dynamo leaves to run eagerly between the compiled
    graphs) the compiled model's outputs and every parameter's gradient are the eager model's,
    at an odd length with a padded row."""
    eager, compiled = _eager_and_compiled()
    ids = torch.randint(5, 9, (4, 37))
    mask = torch.ones(4, 37, dtype=torch.bool)
    mask[1, 30:] = False
    outputs = []
    for model in (eager, compiled):
        model.train()
        out = model(ids, mask)
        out.square().sum().backward()
        outputs.append(out.detach())
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(
        eager.named_parameters(), compiled.named_parameters(), strict=True
    ):
        assert a.grad is not None and b.grad is not None, name
        assert a.grad.abs().max() > 0, name  # every parameter takes part
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
