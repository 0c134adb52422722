"""One trainer for every task: epochs of AdamW steps, the epoch with the best dev score kept
(early stopping with patience), a checkpoint after every epoch, and exact resume.

The task supplies three callables, so the trainer knows nothing of DNA or series:
``batches(epoch, generator)`` yields the epoch's batches (drawing any randomness from
``generator``), ``loss(batch)`` returns the scalar training loss, and ``score_dev()`` the dev
score (higher is better). After every epoch the trainer writes ``checkpoint.pt`` (weights,
optimizer, random states, the selection so far) atomically into its directory and appends a
line to ``train.log``; ``fit(..., resume=True)`` continues from it and ends exactly where an
uninterrupted run would have.

Every checkpoint holds a fingerprint of what determines the run: the training settings and
whatever the caller adds (the task runner adds the resolved task config, the data checksums and
the code version). Resuming from a checkpoint with another fingerprint is refused with one line
naming the first difference, so a resumed run never reports a model trained on other data.

Under ``torchrun`` the same code trains data-parallel (see :mod:`titans_sci.distributed`): each
process takes its shard of every batch, gradients are all-reduced before the step, and only
process 0 writes files.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from titans_sci import distributed
from titans_sci.config import Config, difference, to_dict
from titans_sci.evaluation.protocol import DevSelection
from titans_sci.files import save_with

CHECKPOINT = "checkpoint.pt"
LOG = "train.log"


@dataclass(frozen=True)
class TrainConfig(Config):
    """How to train: ``epochs`` at most, AdamW with ``lr`` and ``weight_decay``, batches of
    ``batch_size`` (the caller's ``batches`` draws them), gradient norm clipping at
    ``clip_norm`` (None: off), early stopping after ``patience`` epochs without a better dev
    score (None: off). ``compile``: the model's calls go through ``torch.compile``
    (``nn.Module.compile``: the same module and weights; on the genomics suite's CPU step 14%
    faster, the first step's loss equal to 6 digits, later ones apart by float rounding as
    with another thread count; see ``benchmarks/results/genomics_compile_cpu.md``)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.01
    clip_norm: float | None = None
    patience: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr={self.lr}; expected a finite number > 0")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay={self.weight_decay}; expected a finite number >= 0")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience={self.patience}; expected >= 1 (or leave it out)")
        if self.clip_norm is not None and not 0 < self.clip_norm < math.inf:
            raise ValueError(
                f"clip_norm={self.clip_norm}; expected a finite number > 0 (or leave it out)"
            )


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Trainer.fit` did: the selected epoch, every dev score and mean training
    loss, and whether it stopped early."""

    best_epoch: int
    dev_scores: list[float]
    train_losses: list[float]
    stopped_early: bool


class Trainer:
    """Trains ``model`` by epochs and keeps the weights of its best dev score.

    Args:
        model: any module; its weights at the end of :meth:`fit` are the selected epoch's.
        config: epochs, optimizer, clipping and patience.
        seed: seeds the batch generator handed to ``batches``; the caller seeds the model's
            initialisation (and torch's global generator, used by dropout) before building it.
        directory: where ``checkpoint.pt`` goes after every epoch (None: no checkpoints).
        progress: show a progress bar over each epoch's batches.
        fingerprint: plain data that determines the run besides ``config`` (the data's
            checksums, the code version, ...): stored in every checkpoint and compared on resume.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        seed: int,
        directory: str | os.PathLike[str] | None = None,
        progress: bool = False,
        fingerprint: Mapping[str, Any] | None = None,
        writes: bool = True,
    ) -> None:
        self.model, self.config, self.writes = model, config, writes
        if config.compile:
            model.compile()  # in place: state_dict and saving are the plain module's
        self.fingerprint = {"training": to_dict(config), "seed": seed, **(fingerprint or {})}
        # The parameters that require gradients: all of them, or a training stage's (``only``).
        trained = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(seed)
        self.directory = None if directory is None else Path(directory)
        self.progress = progress

    def fit(
        self,
        batches: Callable[[int, torch.Generator], Iterable[Any]],
        loss: Callable[[Any], Tensor],
        score_dev: Callable[[], float],
        resume: bool = False,
    ) -> TrainResult:
        """Train, select on dev, restore the selected weights. With ``resume``, continue from
        the directory's checkpoint if there is one (a finished run is not trained again)."""
        selection = DevSelection(self.config.patience)
        losses: list[float] = []
        start = 0
        if resume and self.directory is not None and (self.directory / CHECKPOINT).exists():
            start, selection, losses = self._load()
        epoch, stopped = start, start > 0 and selection.should_stop(start - 1)
        while epoch < self.config.epochs and not stopped:
            losses.append(self._train_epoch(epoch, batches, loss))
            selection.update(epoch, score_dev(), lambda: copy.deepcopy(self.model.state_dict()))
            stopped = selection.should_stop(epoch)
            epoch += 1
            self._save(epoch, selection, losses)
            self._log(
                f"epoch {epoch}/{self.config.epochs}: training loss {losses[-1]:.5f}, dev score "
                f"{selection.scores[-1]:.5f}, best epoch {selection.best_epoch + 1}"
                + (", stopping early" if stopped else "")
            )
        self.model.load_state_dict(selection.best)
        return TrainResult(selection.best_epoch, list(selection.scores), losses, stopped)

    def _train_epoch(
        self,
        epoch: int,
        batches: Callable[[int, torch.Generator], Iterable[Any]],
        loss_of: Callable[[Any], Tensor],
    ) -> float:
        self.model.train()
        total, count = 0.0, 0
        steps = tqdm(
            batches(epoch, self.generator),
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=not self.progress,
            leave=False,
        )
        for batch in steps:
            part, weight = distributed.shard(batch)
            loss = loss_of(part)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss is {loss.item()} in epoch {epoch}")
            self.optimizer.zero_grad()
            (loss * weight).backward()
            distributed.sum_gradients(self.model)
            if self.config.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
            self.optimizer.step()
            total, count = total + distributed.total(loss.detach() * weight), count + 1
        return total / count if count else math.nan

    def _log(self, line: str) -> None:
        """Append ``line`` to ``train.log`` in the checkpoint directory (if any, and if this
        process writes)."""
        if self.directory is not None and self.writes:
            with open(self.directory / LOG, "a") as log:
                log.write(line + "\n")

    def _save(self, epochs_done: int, selection: DevSelection, losses: list[float]) -> None:
        if self.directory is None or not self.writes:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {
            "epochs_done": epochs_done,
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "selection": asdict(selection),
            "train_losses": losses,
        }
        path = self.directory / CHECKPOINT
        try:
            save_with(path, lambda tmp: torch.save(state, tmp))
        except (OSError, RuntimeError) as error:
            # torch reports a full disk as "RuntimeError: [enforce fail at inline_container...]"
            raise OSError(
                errno.EIO,
                f"cannot write the checkpoint ({_first_line(error)}); is the disk full?"
                " Free some space and run again with --resume",
                str(path),
            ) from error

    def _load(self) -> tuple[int, DevSelection, list[float]]:
        assert self.directory is not None  # fit resumes only from a checkpoint directory
        path = self.directory / CHECKPOINT
        try:
            state = torch.load(path, weights_only=False)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f"{path}: cannot resume from this checkpoint: {error}") from None
        changed = difference(state.get("fingerprint"), self.fingerprint)
        if changed:
            raise ValueError(
                f"{path}: cannot resume, this checkpoint is of another run ({changed}); "
                "resume with the same task, data and code, or start afresh"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise ValueError(f"{path}: cannot resume from this checkpoint: {error}") from None
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        return state["epochs_done"], DevSelection(**state["selection"]), state["train_losses"]


def seed_stage(seed: int, index: int) -> None:
    """Seed torch's global generator (dropout's) for training stage ``index`` of a run seeded
    ``seed``. From the second stage on, its draws depend on the seed and the stage alone, not
    on how many the stages before made: a run resumed after a finished stage, or given a
    stage's weights trained elsewhere, goes on as the run that trained it. The first stage
    keeps the generator as the model's initialisation left it."""
    if index:
        torch.manual_seed(seed + 104_729 * index)


@contextmanager
def only(model: nn.Module, parameters: Iterable[nn.Parameter]) -> Iterator[None]:
    """Within the block only ``parameters`` of ``model`` require gradients: a training stage
    (a :class:`Trainer` made inside it optimises them alone); restored after."""
    chosen = {id(p) for p in parameters}
    before = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in before:
        p.requires_grad_(id(p) in chosen)
    try:
        yield
    finally:
        for p, value in before:
            p.requires_grad_(value)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
