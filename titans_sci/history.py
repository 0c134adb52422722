"""Training and scoring a :class:`~titans_sci.models.history_forecaster.HistoryForecaster` on
whole series: one stream from the first step, the weights trained on the training range and
frozen after, the memory writing all the way (or frozen too, for the ablation).

- :func:`fit_history` trains with dense supervision over contiguous stretches of the training
  range, in order, the memory's state carried from stretch to stretch (gradients truncated at
  each stretch's start): an epoch is one pass over the training series. It keeps the epoch
  with the lowest validation MSE, scored by :func:`score_history` at the validation origins.
- :func:`score_history` streams the series once and scores the forecasts at the given
  origins: MSE and MAE over every stream, origin and step, as the long-horizon protocol's
  windows are scored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from titans_sci import distributed
from titans_sci.layers import memory_writes
from titans_sci.models.covariates import Covariates
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    HistoryState,
    stream_forecasts,
    stretch_loss,
)
from titans_sci.train import TrainConfig, Trainer, TrainResult, only, seed_stage

__all__ = [
    "STAGES",
    "HistoryScore",
    "Stretches",
    "fit_history",
    "fit_stages",
    "read_through",
    "score_history",
    "training_stages",
]


@dataclass(frozen=True)
class HistoryScore:
    """Errors of the forecasts at a set of origins: the mean over streams, origins and
    horizon steps."""

    mse: float
    mae: float
    origins: int


@torch.no_grad()
def read_through(
    model: HistoryForecaster, series: Tensor, steps: int, piece: int = 8192
) -> HistoryState | None:
    """The stream's state after the first ``steps`` steps of ``series [B', T]``, read in
    pieces of ``piece`` steps (None for no step)."""
    state = None
    for begin in range(0, steps, piece):
        _, state = model.read(series[:, begin : min(begin + piece, steps)], state)
    return state


@torch.no_grad()
def score_history(
    model: HistoryForecaster,
    series: Tensor,
    origins: Tensor,
    freeze_at: int | None = None,
    piece: int = 8192,
    covariates: Covariates | None = None,
) -> HistoryScore:
    """MSE and MAE of the forecasts at ``origins`` (sorted; each with its whole horizon inside
    ``series [B', T]``) from one streaming pass in eval mode. ``freeze_at``: the memory writes
    for the first ``freeze_at`` steps only and is read as it stood after them (every origin
    must be at or after ``freeze_at``); None: it writes all the way. ``covariates``: the
    streams', as :meth:`HistoryForecaster.covariates_at` takes them."""
    horizon = model.config.horizon
    if len(origins) == 0:
        raise ValueError("no origin to score")
    if int(origins[-1]) + horizon > series.shape[1]:
        raise ValueError(
            f"origin {int(origins[-1])} + horizon {horizon} runs past the series' "
            f"{series.shape[1]} steps"
        )
    if freeze_at is not None and int(origins[0]) < freeze_at:
        raise ValueError(f"origin {int(origins[0])} is before freeze_at={freeze_at}")
    was_training = model.training
    model.eval()
    state = None if freeze_at is None else read_through(model, series, freeze_at, piece)
    squares = absolute = 0.0
    steps = torch.arange(horizon, device=series.device)
    with memory_writes(model, freeze_at is None):
        for at, forecast in stream_forecasts(model, series, origins, piece, state, covariates):
            error = forecast - series[:, at[:, None] + steps]  # [B', n, H]
            squares += float(error.double().square().sum())
            absolute += float(error.double().abs().sum())
    model.train(was_training)
    count = series.shape[0] * len(origins) * horizon
    return HistoryScore(squares / count, absolute / count, len(origins))


class Stretches:
    """The batches and loss of whole-history training on the first ``stop`` steps of
    ``series [B', T]``: an epoch's batches are the stretches ``(begin, end)`` of the training
    range in order (:meth:`batches`), and :meth:`loss` reads each after the state the previous
    one left (detached: gradients reach back to the stretch's start only), afresh at step 0.

    ``counts`` (``[B', T]`` bool, optional): the target steps that count in the loss (observed
    values of streams of several lengths, left-padded to one). ``covariates``: the streams',
    as :meth:`HistoryForecaster.covariates_at` takes them.

    The first stretch is cut at a random multiple of ``patch_len`` in ``[patch_len, stretch]``
    (from the trainer's generator), so that the cuts fall elsewhere each epoch; stretches with
    no origin to train are left out. While the model is
    :attr:`~titans_sci.models.history_forecaster.HistoryForecaster.silent` (no state to carry)
    the stretches come in a random order: gradient steps on neighbouring stretches, in time
    order, pull the window's map towards the end of the training range (on ETTh1, H = 96,
    L = 336, its validation MSE after the first stage fell from 0.675 to 0.661, 3 seeds).
    """

    def __init__(
        self,
        model: HistoryForecaster,
        series: Tensor,
        stop: int,
        stretch: int,
        counts: Tensor | None = None,
        covariates: Covariates | None = None,
    ) -> None:
        p, horizon = model.config.patch_len, model.config.horizon
        if distributed.world_size() > 1:
            raise ValueError("whole-history training runs in one process (one stream per series)")
        if stretch < p or stretch % p:
            raise ValueError(f"stretch={stretch}; expected a positive multiple of patch_len={p}")
        if stop < p + horizon:
            raise ValueError(
                f"the training range ({stop} steps) leaves no origin to train: it needs at "
                f"least patch_len + horizon = {p + horizon} steps"
            )
        self.model, self.series, self.stop, self.stretch = model, series, stop, stretch
        self.counts, self.covariates = counts, covariates
        self.state: HistoryState | None = None

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple[int, int]]:
        """The stretches of an epoch, in order (in a random order while the model is silent)."""
        p, horizon = self.model.config.patch_len, self.model.config.horizon
        first = p * int(torch.randint(1, self.stretch // p + 1, (1,), generator=generator))
        stretches, begin, end = [], 0, first
        while begin + p + horizon <= self.stop:  # its first origin has its whole horizon
            stretches.append((begin, min(end, self.stop)))
            begin, end = end, end + self.stretch
        if self.model.silent:
            order = torch.randperm(len(stretches), generator=generator).tolist()
            stretches = [stretches[i] for i in order]
        yield from stretches

    def loss(self, batch: tuple[int, int]) -> Tensor:
        """The mean squared error over every origin of the stretch (see :func:`stretch_loss`)."""
        begin, end = batch
        state = None if begin == 0 or self.model.silent else self.state
        value, state, _ = stretch_loss(
            self.model, self.series, begin, end, state, self.stop, self.counts, self.covariates
        )
        self.state = state.detach()
        return value


#: How the forecaster's parameters are trained (see ``HistoryTraining.stages``).
STAGES = ("window_then_memory", "joint")


def training_stages(model: HistoryForecaster, stages: str) -> list[tuple[str, list]]:
    """``(name, parameters)`` of each training stage: ``"window_then_memory"`` is the model's
    own (:meth:`HistoryForecaster.stages`), ``"joint"`` one stage of every parameter (named
    ``""``: its checkpoint goes in the directory itself)."""
    if stages == "joint":
        return [("", list(model.parameters()))]
    if stages == "window_then_memory":
        return model.stages()
    raise ValueError(f"stages={stages!r}; expected one of {STAGES}")


def fit_stages(
    model: HistoryForecaster,
    stretches: Stretches,
    training: TrainConfig,
    seed: int,
    score_dev: Callable[[], float],
    stages: str = "window_then_memory",
    directory: str | os.PathLike[str] | None = None,
    fingerprint: dict | None = None,
    writes: bool = True,
    resume: bool = False,
    first: int = 0,
) -> list[TrainResult]:
    """Train ``model`` on ``stretches`` stage by stage (:func:`training_stages`), each stage a
    :class:`~titans_sci.train.Trainer` of its own parameters alone, selecting on ``score_dev``
    (its checkpoints in ``directory / <stage>``); a stage starts from the weights the one
    before kept, and from the second on its dropout draws depend on ``seed`` and the stage
    alone (:func:`~titans_sci.train.seed_stage`). ``first``: the stage to start at, those
    before it taken as trained (their parameters as ``model`` holds them: a stage's result
    shared by models that train it alike). The trained stages' results, in order."""
    results = []
    for index, (name, parameters) in enumerate(training_stages(model, stages)):
        if index < first:
            continue
        seed_stage(seed, index)
        place = None if directory is None else Path(directory) / name
        with only(model, parameters):
            trainer = Trainer(model, training, seed, place, fingerprint=fingerprint or {},
                              writes=writes)  # fmt: skip
            results.append(trainer.fit(stretches.batches, stretches.loss, score_dev, resume))
    return results


def fit_history(
    model: HistoryForecaster,
    series: Tensor,
    train_stop: int,
    val_origins: Tensor,
    training: TrainConfig,
    seed: int,
    stretch: int = 1024,
    directory: str | os.PathLike[str] | None = None,
    fingerprint: dict | None = None,
    writes: bool = True,
    resume: bool = False,
    stages: str = "window_then_memory",
    first: int = 0,
    covariates: Covariates | None = None,
) -> TrainResult:
    """Train ``model`` on the first ``train_stop`` steps of ``series [B', T]`` and keep the
    epoch with the lowest MSE at ``val_origins`` (streamed from the first step with the
    weights fixed; their horizons may reach past ``train_stop``, never past ``T``).

    ``stretch`` (a multiple of ``patch_len``): steps per gradient step, the length gradients
    reach back; every origin whose memory features come from a stretch and whose horizon ends
    by ``train_stop`` is a target (see :class:`Stretches`). ``training.batch_size`` is not
    used (a batch is one stretch of every stream); ``directory``, ``fingerprint``, ``writes``
    and ``resume`` are the :class:`~titans_sci.train.Trainer`'s; ``stages``: see
    :func:`training_stages` (each stage runs ``training``'s epochs); ``first``: see
    :func:`fit_stages`; ``covariates``: the series', as
    :meth:`~titans_sci.models.history_forecaster.HistoryForecaster.covariates_at` takes them.
    The last stage's result."""
    stretches = Stretches(model, series, train_stop, stretch, covariates=covariates)

    def score_dev() -> float:
        return -score_history(model, series, val_origins, covariates=covariates).mse

    results = fit_stages(
        model,
        stretches,
        training,
        seed,
        score_dev,
        stages,
        directory,
        fingerprint,
        writes,
        resume,
        first,
    )
    return results[-1]
