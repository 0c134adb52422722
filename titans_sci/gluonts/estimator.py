"""The :class:`TitansEstimator`: trains a univariate :class:`TitansForecaster` on a GluonTS
dataset with the project's :class:`~titans_sci.train.Trainer` (see :mod:`titans_sci.gluonts`
for the conventions on missing values, short series and the time index)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from gluonts.model.estimator import Estimator
from pandas.tseries.frequencies import to_offset
from torch import Tensor

from titans_sci import distributed
from titans_sci.config import to_dict
from titans_sci.data.timeseries import left_pad
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster
from titans_sci.train import TrainConfig, Trainer
from titans_sci.version import code_version

from .entries import (
    covariate_counts,
    entry_covariates,
    item_name,
    observed_target,
    start_period,
    target_for_input,
)
from .predictor import TitansPredictor

__all__ = ["DEFAULT_MODEL", "DEFAULT_TRAINING", "TitansEstimator"]

DEFAULT_MODEL = ForecasterConfig(head="student_t")
"""The estimator's model when none is given: the forecaster's defaults with the Student-t head
(GluonTS forecasts are probabilistic); its lookback/horizon/channels are set by the estimator."""

DEFAULT_TRAINING = TrainConfig(clip_norm=1.0)
"""The estimator's training when none is given: :class:`TrainConfig`'s defaults (10 epochs,
AdamW lr 1e-3, weight decay 0.01, batches of 32) with gradients clipped to norm 1. A config of
your own is used as it is: start from this one (``replace(DEFAULT_TRAINING, epochs=5)``) to keep
the clipping."""


@dataclass(frozen=True)
class _Series:
    """Training or validation series ready to cut windows from: per series the network's input
    values (missing steps forward-filled; left-padded to a full window), the observed mask
    (False at missing and padded steps) and its covariates: ``past [T, Cp]`` and ``known [T,
    Ck + Cc]`` step by step (filled and padded as the values), ``static_cat [S]`` and
    ``static_real [R]``."""

    values: list[np.ndarray]
    observed: list[np.ndarray]
    past: list[np.ndarray]
    known: list[np.ndarray]
    static_cat: list[np.ndarray]
    static_real: list[np.ndarray]

    def digest(self) -> str:
        """A SHA-256 of the series: a checkpoint resumes only on the same data."""
        digest = hashlib.sha256()
        for i, (values, observed) in enumerate(zip(self.values, self.observed, strict=True)):
            digest.update(np.int64(len(values)).tobytes())
            digest.update(values.tobytes())
            digest.update(np.packbits(observed).tobytes())
            for part in (self.past, self.known, self.static_cat, self.static_real):
                digest.update(np.ascontiguousarray(part[i]).tobytes())
        return digest.hexdigest()

    def windows(self, at: list[tuple[int, int]], context: int, horizon: int) -> tuple:
        """The windows starting at ``(series, offset)`` of ``at``: ``(values [B, L + H],
        observed [B, L + H], (past [B, L, Cp], known [B, L + H, Ck + Cc], static_cat [B, S],
        static_real [B, R]))``."""
        window = context + horizon
        return (
            np.stack([self.values[i][o : o + window] for i, o in at]),
            np.stack([self.observed[i][o : o + window] for i, o in at]),
            (
                np.stack([self.past[i][o : o + context] for i, o in at]),
                np.stack([self.known[i][o : o + window] for i, o in at]),
                np.stack([self.static_cat[i] for i, _ in at]).astype(np.int64),
                np.stack([self.static_real[i] for i, _ in at]).astype(np.float32),
            ),
        )


class TitansEstimator(Estimator):
    """Trains a univariate :class:`TitansForecaster` on a GluonTS dataset with the project's
    :class:`~titans_sci.train.Trainer`.

    Args:
        prediction_length: forecast horizon ``H``.
        freq: the data's pandas frequency (``"h"``, ``"D"``, ...); every entry must match it.
        context_length: input steps ``L``; ``None``: ``4 * prediction_length`` (at least the
            model's ``patch_len``).
        model: the forecaster (backbone, head, patching, normalisation, ...); ``None``:
            :data:`DEFAULT_MODEL` (Student-t head). Its ``lookback``, ``horizon`` and
            ``channels`` are replaced by ``context_length``, ``prediction_length`` and 1. The
            head decides the forecasts: ``"student_t"`` sample forecasts, ``"quantile"``
            quantile forecasts, ``"point"`` one-sample forecasts.
        training: epochs, AdamW's lr and weight decay, ``batch_size`` windows per batch,
            gradient clipping and early-stopping patience; ``None``: :data:`DEFAULT_TRAINING`
            (gradients clipped to norm 1).
        batches_per_epoch: batches per epoch. Each batch holds ``training.batch_size`` windows,
            each from a series drawn uniformly at random and a window position drawn uniformly
            within it (windows with a full context where the series is long enough; otherwise
            its last window, left-padded), from the trainer's seeded generator.
        num_samples: sample paths per Student-t forecast.
        seed: seeds the weights' initialisation (and dropout), the window sampling and the
            forecast samples.
        device: the torch device to train and predict on.
        directory: where the trainer writes ``checkpoint.pt`` and ``train.log`` after every
            epoch (None: no checkpoints).
        resume: continue from ``directory``'s checkpoint if there is one, ending exactly where
            an uninterrupted run would have; a checkpoint of other settings, data or code is
            refused (``ValueError``).
        num_feat_dynamic_real: how many rows of each entry's ``feat_dynamic_real`` the model
            reads: covariates known over the horizon too (at prediction an entry's covers the
            ``prediction_length`` steps after its target, as in GluonTS).
        num_past_feat_dynamic_real: rows of ``past_feat_dynamic_real``, known up to the
            forecast start only.
        cardinality: the number of categories of each ``feat_static_cat`` value.
        num_feat_static_real: values of ``feat_static_real``.
        time_features: calendar features derived from each step's period by name
            (:data:`titans_sci.data.covariates.CALENDAR`: GluonTS' own time features).

    Missing values of a dynamic feature are filled as the target's input is (the last observed
    value before them); the model instance-normalises the dynamic features per window, so they
    need no scaling (see :mod:`titans_sci.models.forecaster`).

    ``train(training_data, validation_data=None)`` returns a :class:`TitansPredictor`; the
    per-epoch losses are in its ``history``. Which epoch's weights it keeps:

    - **With validation data** the dev score is minus the validation loss (the loss over each
      validation series' last window, the mean over its observed target steps); the weights of
      the epoch with the lowest validation loss are kept (the earliest on ties), and
      ``training.patience`` stops training after that many epochs without a lower one.
    - **Without validation data** the last epoch's weights are kept, as in the estimator before
      the trainer: the dev score is the epoch's index, so every epoch improves on the last
      (``train.log`` shows that index as the dev score); ``training.patience`` then has
      nothing to measure and is refused (``ValueError``).

    Under ``torchrun`` it trains data-parallel (see :mod:`titans_sci.distributed`): every
    process draws the same batches, computes its share and the gradients are summed, so each
    step is the step of one process on the whole batch, missing values included.
    """

    def __init__(
        self,
        prediction_length: int,
        freq: str,
        context_length: int | None = None,
        model: ForecasterConfig | None = None,
        training: TrainConfig | None = None,
        batches_per_epoch: int = 50,
        num_samples: int = 100,
        seed: int = 0,
        device: str | torch.device = "cpu",
        directory: str | os.PathLike[str] | None = None,
        resume: bool = False,
        num_feat_dynamic_real: int = 0,
        num_past_feat_dynamic_real: int = 0,
        cardinality: Sequence[int] = (),
        num_feat_static_real: int = 0,
        time_features: Sequence[str] = (),
    ) -> None:
        super().__init__(lead_time=0)
        for name, value in (
            ("prediction_length", prediction_length),
            ("batches_per_epoch", batches_per_epoch),
            ("num_samples", num_samples),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TitansEstimator {name}={value!r}; expected an int >= 1")
        try:
            to_offset(freq)
        except ValueError as error:
            raise ValueError(f"TitansEstimator freq={freq!r} is not a pandas frequency") from error
        model = DEFAULT_MODEL if model is None else model
        training = DEFAULT_TRAINING if training is None else training
        if not isinstance(model, ForecasterConfig):
            raise TypeError(f"TitansEstimator model={model!r}; expected a ForecasterConfig")
        if not isinstance(training, TrainConfig):
            raise TypeError(f"TitansEstimator training={training!r}; expected a TrainConfig")
        if resume and directory is None:
            raise ValueError("TitansEstimator resume=True needs the directory to resume from")
        if context_length is None:
            context_length = max(4 * prediction_length, model.patch_len)
        counts = covariate_counts(num_feat_dynamic_real, num_past_feat_dynamic_real, cardinality,
                                  num_feat_static_real, time_features)  # fmt: skip
        # Validates context_length against the patching, and the covariate counts.
        self.model_config = replace(
            model, lookback=context_length, horizon=prediction_length, channels=1, **counts
        )
        self.time_features = tuple(time_features)
        self.training = training
        self.prediction_length = prediction_length
        self.freq = freq
        self.context_length = context_length
        self.batches_per_epoch = batches_per_epoch
        self.num_samples = num_samples
        self.seed = seed
        self.device = torch.device(device)
        self.directory = directory
        self.resume = resume

    def _series(self, dataset: Iterable[dict[str, Any]], what: str) -> _Series:
        """Each entry's target, checked, from its first observed value on, filled for the
        input and left-padded to a full window, with its observed mask."""
        window = self.context_length + self.prediction_length
        need = self.prediction_length + 1
        values, masks = [], []
        pasts, knowns, cats, reals = [], [], [], []
        for index, entry in enumerate(dataset):
            start = start_period(entry, index, self.freq)
            target, observed = observed_target(entry, index)
            first = int(np.argmax(observed))
            past, known, static_cat, static_real = entry_covariates(
                self.model_config, self.time_features, entry, index, start, len(target)
            )
            pasts.append(left_pad(past[first:], window))
            knowns.append(left_pad(known[first:], window))
            cats.append(static_cat)
            reals.append(static_real)
            target, observed = target[first:], observed[first:]
            if len(target) < need:
                since = " from its first observed value on" if first else ""
                raise ValueError(
                    f"series {item_name(entry, index)} has {len(target)} values{since}; "
                    f"training and validation series need at least {need} (prediction_length "
                    "+ 1)"
                )
            values.append(left_pad(target_for_input(target, observed), window))
            masks.append(left_pad(observed, window, fill=False))
        if not values:
            raise ValueError(f"the {what} data has no series")
        return _Series(values, masks, pasts, knowns, cats, reals)

    def _tensors(
        self, values: np.ndarray, observed: np.ndarray, covariates: tuple[np.ndarray, ...]
    ) -> tuple[Tensor, ...]:
        """Windows ``[B, L + H]``, their observed masks and covariates (:meth:`_Series.windows`)
        -> one batch: inputs ``x [B, L, 1]``, targets ``y [B, H, 1]``, their observed mask
        ``[B, H, 1]``, in every row the number of observed target steps in the whole batch (so
        a process's share of the batch knows its weight in the batch's loss), then the
        covariates as the model takes them."""
        windows = torch.from_numpy(values)[..., None]
        mask = torch.from_numpy(observed[:, self.context_length :])[..., None]
        total = torch.full((len(values),), int(mask.sum()), dtype=torch.int64)
        extra = tuple(torch.from_numpy(np.ascontiguousarray(c)) for c in covariates)
        context = self.context_length
        return windows[:, :context], windows[:, context:], mask, total, *extra

    def _positions(
        self, counts: Tensor, generator: torch.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One batch's windows: which series (uniform) and where in it (uniform over its
        ``counts`` window positions), drawn from ``generator``."""
        size = self.training.batch_size
        which = torch.randint(len(counts), (size,), generator=generator)
        where = torch.rand(size, generator=generator, dtype=torch.float64) * counts[which]
        return which.numpy(), where.long().numpy()

    def _batches(self, series: _Series, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        """An epoch's ``batches_per_epoch`` batches of random windows."""
        window = self.context_length + self.prediction_length
        counts = torch.tensor([len(v) - window + 1 for v in series.values])
        for _ in range(self.batches_per_epoch):
            at = list(zip(*self._positions(counts, generator), strict=True))
            yield self._tensors(*series.windows(at, self.context_length, self.prediction_length))

    def _mean_loss(
        self, model: TitansForecaster, x: Tensor, y: Tensor, observed: Tensor, *covariates: Tensor
    ) -> Tensor:
        """The model's loss: the mean over the observed target steps."""
        device = self.device
        moved = [c.to(device) for c in covariates]
        return model.loss(x.to(device), y.to(device), "window", observed.to(device), *moved)

    def _loss(self, model: TitansForecaster, batch: tuple[Tensor, ...]) -> Tensor:
        """The loss of (a process's share of) a batch: the mean over its observed target steps,
        scaled so that the trainer's weighting of the shares by their number of windows adds
        up to the mean over the whole batch's observed steps (one process: a factor of 1)."""
        x, y, observed, total, *covariates = batch
        loss = self._mean_loss(model, x, y, observed, *covariates)
        share = int(observed.sum()) / max(int(total[0]), 1)
        return loss * (share * self.training.batch_size / len(x))

    @torch.no_grad()
    def _validation_loss(self, model: TitansForecaster, windows: tuple) -> float:
        """The mean loss over the observed target steps of the validation windows."""
        values, observed, covariates = windows
        model.eval()
        total, count = 0.0, 0
        for begin in range(0, len(values), self.training.batch_size):
            end = begin + self.training.batch_size
            parts = tuple(c[begin:end] for c in covariates)
            x, y, mask, _, *extra = self._tensors(values[begin:end], observed[begin:end], parts)
            steps = int(mask.sum())
            if steps:
                total += float(self._mean_loss(model, x, y, mask, *extra)) * steps
                count += steps
        model.train()
        return total / count

    def _validation(self, dataset: Iterable[dict[str, Any]]) -> tuple[_Series, tuple]:
        """The validation series and their last windows (values, observed masks,
        covariates)."""
        series = self._series(dataset, "validation")
        window = self.context_length + self.prediction_length
        at = [(i, len(v) - window) for i, v in enumerate(series.values)]
        values, observed, covariates = series.windows(at, self.context_length,
                                                      self.prediction_length)  # fmt: skip
        if not observed[:, self.context_length :].any():
            raise ValueError(
                "the validation data has no observed value in its series' last "
                f"{self.prediction_length} steps (prediction_length): nothing to validate on"
            )
        return series, (values, observed, covariates)

    def _fingerprint(self, train: _Series, validation: _Series | None) -> dict[str, Any]:
        """What determines the run besides the training config and the seed."""
        return {
            "estimator": {
                "model": to_dict(self.model_config),
                "prediction_length": self.prediction_length,
                "context_length": self.context_length,
                "freq": self.freq,
                "batches_per_epoch": self.batches_per_epoch,
            },
            "data": {
                "training": train.digest(),
                "validation": None if validation is None else validation.digest(),
            },
            "code": code_version(),
        }

    def train(
        self,
        training_data: Iterable[dict[str, Any]],
        validation_data: Iterable[dict[str, Any]] | None = None,
    ) -> TitansPredictor:
        """Train a forecaster on ``training_data`` (selecting on ``validation_data`` if given;
        see the class docstring); returns its :class:`TitansPredictor`."""
        if validation_data is None and self.training.patience is not None:
            raise ValueError(
                f"training.patience={self.training.patience} needs validation_data: without it "
                "the last epoch is kept and there is no score to stop on"
            )
        series = self._series(training_data, "training")
        validation, windows = (
            (None, None) if validation_data is None else self._validation(validation_data)
        )
        distributed.init_from_env()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            model = TitansForecaster(self.model_config).to(self.device)
            trainer = Trainer(
                model,
                self.training,
                self.seed,
                self.directory,
                fingerprint=self._fingerprint(series, validation),
                writes=distributed.is_main(),  # under torchrun, process 0 writes
            )
            epoch = 0

            def batches(index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
                nonlocal epoch
                epoch = index
                return self._batches(series, generator)

            def score_dev() -> float:
                if windows is None:  # keep the last epoch
                    return float(epoch)
                return -self._validation_loss(model, windows)

            result = trainer.fit(
                batches, lambda batch: self._loss(model, batch), score_dev, self.resume
            )
        model.eval()
        history: list[dict[str, float]] = []
        for index, train_loss in enumerate(result.train_losses):
            record = {"epoch": index, "train_loss": train_loss}
            if windows is not None:
                record["validation_loss"] = -result.dev_scores[index]
            history.append(record)
        return TitansPredictor(
            model,
            prediction_length=self.prediction_length,
            freq=self.freq,
            context_length=self.context_length,
            num_samples=self.num_samples,
            batch_size=self.training.batch_size,
            seed=self.seed,
            device=self.device,
            history=history,
            time_features=self.time_features,
        )
