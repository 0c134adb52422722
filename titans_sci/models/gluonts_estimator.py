"""A GluonTS ``Estimator``/``Predictor`` pair for the :class:`TitansForecaster`.

Only GluonTS' core API is used (no ``gluonts.torch``, so no Lightning): :class:`TitansEstimator`
is a :class:`gluonts.model.estimator.Estimator` whose :meth:`~TitansEstimator.train` trains with
the project's one :class:`~titans_sci.train.Trainer` (select on validation data, early
stopping, a checkpoint after every epoch, exact resume, data-parallel under ``torchrun``), and
:class:`TitansPredictor` is a :class:`gluonts.model.predictor.Predictor` that yields
:class:`~gluonts.model.forecast.SampleForecast` (Student-t and point heads) or
:class:`~gluonts.model.forecast.QuantileForecast` (quantile head) objects, so GluonTS'
backtesting and :class:`~gluonts.evaluation.Evaluator` work unchanged.

The settings are the project's configs: the model a
:class:`~titans_sci.models.forecaster.ForecasterConfig` (the estimator sets its ``lookback``,
``horizon`` and ``channels``), the training a :class:`~titans_sci.train.TrainConfig`; the
estimator's own arguments are what is GluonTS' (``prediction_length``, ``freq``, ...).

The model is univariate: every dataset entry's ``target`` is one 1-D series (``channels=1``).

Conventions, for training and prediction alike:

- **Missing values** (NaN or inf in the target), as GluonTS' ``observed_values``: a missing
  *target* step is never trained on, it is masked out of the loss (the loss is the mean over
  the observed target steps of a batch; see :meth:`TitansForecaster.loss`). A missing *input*
  (context) step is imputed for the network's input only: filled with the last observed value
  before it (forward fill); the window's instance normalisation then sees the filled values
  (:meth:`TitansForecaster.forward` takes no input mask, so its statistics are those of the
  filled window: a value repeated over a gap weighs as often as it is repeated).
  A training or validation series starts at its first observed value (leading missing steps
  are dropped); at prediction, leading missing steps are filled with the first observed value.
  A series with no finite value (empty or all-NaN) raises a ``ValueError`` naming its
  ``item_id`` (or its position in the dataset).
- **Short series.** A window (``context_length`` input steps, plus ``prediction_length`` target
  steps when training) that reaches before the series' first observation is **left-padded with
  the series' first value** (input steps only: a target step is never padding). A training or
  validation series needs at least ``prediction_length + 1`` values from its first observed
  value on (a full target and one step of context); a shorter one raises a ``ValueError``
  naming the item. Prediction needs one observation.
- **Time index.** Each entry's ``start`` (a ``pandas.Period``, or anything ``pandas.Period``
  accepts together with the entry's ``freq`` field or the estimator's ``freq``) must have the
  estimator's frequency; otherwise a ``ValueError`` names the item. A forecast starts at the
  period right after the last observation: ``start + len(target)``.

Example (``y``: a 1-D array of hourly values; its last 48 are held out for scoring)::

    from dataclasses import replace
    from pathlib import Path

    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions
    from gluonts.model.predictor import Predictor

    from titans_sci.models.gluonts_estimator import (
        DEFAULT_MODEL, DEFAULT_TRAINING, TitansEstimator,
    )

    train = ListDataset([{"item_id": "a", "start": "2020-01-01", "target": y[:-48]}], freq="h")
    test = ListDataset([{"item_id": "a", "start": "2020-01-01", "target": y}], freq="h")
    estimator = TitansEstimator(
        prediction_length=48,
        freq="h",
        model=replace(DEFAULT_MODEL, dropout=0.1),  # Student-t head, the default backbone
        training=replace(DEFAULT_TRAINING, epochs=5),  # keeps the clipping at norm 1
        directory="runs/titans_a",  # checkpoints; resume=True continues an interrupted run
    )
    predictor = estimator.train(train)  # validation_data=... keeps the best epoch
    forecasts, series = make_evaluation_predictions(test, predictor, num_samples=100)
    metrics, per_item = Evaluator(quantiles=(0.1, 0.5, 0.9))(series, forecasts)
    print(metrics["MASE"], metrics["sMAPE"], metrics["mean_wQuantileLoss"])

    predictor.serialize(Path("model_dir"))  # an existing, empty folder
    predictor = Predictor.deserialize(Path("model_dir"))  # a TitansPredictor again
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from gluonts.model.estimator import Estimator
from gluonts.model.forecast import Forecast, QuantileForecast, SampleForecast
from gluonts.model.predictor import Predictor
from pandas.tseries.frequencies import to_offset
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from titans_sci import distributed
from titans_sci.config import to_dict
from titans_sci.modelfolder import load_module, save_model
from titans_sci.train import TrainConfig, Trainer

from .forecaster import ForecasterConfig, TitansForecaster

__all__ = ["DEFAULT_MODEL", "DEFAULT_TRAINING", "TitansEstimator", "TitansPredictor"]

DEFAULT_MODEL = ForecasterConfig(head="student_t")
"""The estimator's model when none is given: the forecaster's defaults with the Student-t head
(GluonTS forecasts are probabilistic); its lookback/horizon/channels are set by the estimator."""

DEFAULT_TRAINING = TrainConfig(clip_norm=1.0)
"""The estimator's training when none is given: :class:`TrainConfig`'s defaults (10 epochs,
AdamW lr 1e-3, weight decay 0.01, batches of 32) with gradients clipped to norm 1. A config of
your own is used as it is: start from this one (``replace(DEFAULT_TRAINING, epochs=5)``) to keep
the clipping."""

#: Where :meth:`TitansPredictor.serialize` puts the forecaster's model folder.
_MODEL_FOLDER = "model"
# The files of a predictor serialized before the model folder (still read).
_CONFIG_FILE = "forecaster_config.json"
_PARAMS_FILE = "predictor.json"
_SAFETENSORS_FILE = "model.safetensors"


def _item_name(entry: dict[str, Any], index: int) -> str:
    item_id = entry.get("item_id")
    return repr(item_id) if item_id is not None else f"#{index} (no item_id)"


def _same_freq(a: Any, b: Any) -> bool:
    try:
        return to_offset(a) == to_offset(b)
    except ValueError:
        return False


def _start(entry: dict[str, Any], index: int, freq: str) -> pd.Period:
    """The entry's ``start`` as a period of ``freq``, or a ValueError naming the item."""
    name = _item_name(entry, index)
    start = entry.get("start")
    if start is None:
        raise ValueError(f"series {name}: no 'start' field")
    entry_freq = entry.get("freq")
    if isinstance(start, pd.Period):
        if entry_freq is not None and not _same_freq(entry_freq, start.freq):
            raise ValueError(
                f"series {name}: its freq={entry_freq!r} differs from its start's {start.freqstr!r}"
            )
        period = start
    else:
        try:
            period = pd.Period(start, freq=entry_freq if entry_freq is not None else freq)
        except (ValueError, TypeError) as error:
            raise ValueError(f"series {name}: start={start!r} is not a period ({error})") from None
    if not _same_freq(period.freq, freq):
        raise ValueError(
            f"series {name} has frequency {period.freqstr!r}; the estimator's freq is {freq!r}"
        )
    return period


def _observed_target(entry: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray]:
    """The entry's 1-D target (float64, missing values as they are) and its observed mask (its
    finite values), or a ValueError naming the item."""
    name = _item_name(entry, index)
    if "target" not in entry:
        raise ValueError(f"series {name}: no 'target' field")
    values = np.asarray(entry["target"], dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"series {name}: target has shape {values.shape}; the Titans estimator is "
            "univariate and expects a 1-D target"
        )
    observed = np.isfinite(values)
    if not observed.any():
        raise ValueError(f"series {name} is empty or has no finite value")
    return values, observed


def _filled(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``values`` in float32 with each missing value replaced by the last observed one before
    it (leading missing values by the first observed one)."""
    if not observed.all():
        last = np.maximum.accumulate(np.where(observed, np.arange(len(values)), -1))
        values = values[np.where(last >= 0, last, int(np.argmax(observed)))]
    return values.astype(np.float32)


def _target(entry: dict[str, Any], index: int) -> np.ndarray:
    """The entry's 1-D target in float32 with missing values filled (a prediction's input)."""
    return _filled(*_observed_target(entry, index))


def _left_pad(values: np.ndarray, length: int, fill: Any = None) -> np.ndarray:
    """``values`` left-padded to at least ``length`` with ``fill`` (None: its first value)."""
    if len(values) >= length:
        return values
    pad = values[0] if fill is None else fill
    return np.concatenate([np.full(length - len(values), pad, values.dtype), values])


@dataclass(frozen=True)
class _Series:
    """Training or validation series ready to cut windows from: per series the network's input
    values (missing steps forward-filled; left-padded to a full window) and the observed mask
    (False at missing and padded steps)."""

    values: list[np.ndarray]
    observed: list[np.ndarray]

    def digest(self) -> str:
        """A SHA-256 of the series: a checkpoint resumes only on the same data."""
        digest = hashlib.sha256()
        for values, observed in zip(self.values, self.observed, strict=True):
            digest.update(np.int64(len(values)).tobytes())
            digest.update(values.tobytes())
            digest.update(np.packbits(observed).tobytes())
        return digest.hexdigest()


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
        # Validates context_length against the patching.
        self.model_config = replace(
            model, lookback=context_length, horizon=prediction_length, channels=1
        )
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
        for index, entry in enumerate(dataset):
            _start(entry, index, self.freq)
            target, observed = _observed_target(entry, index)
            first = int(np.argmax(observed))
            target, observed = target[first:], observed[first:]
            if len(target) < need:
                since = " from its first observed value on" if first else ""
                raise ValueError(
                    f"series {_item_name(entry, index)} has {len(target)} values{since}; "
                    f"training and validation series need at least {need} (prediction_length "
                    "+ 1)"
                )
            values.append(_left_pad(_filled(target, observed), window))
            masks.append(_left_pad(observed, window, fill=False))
        if not values:
            raise ValueError(f"the {what} data has no series")
        return _Series(values, masks)

    def _tensors(self, values: np.ndarray, observed: np.ndarray) -> tuple[Tensor, ...]:
        """Windows ``[B, L + H]`` and their observed masks -> one batch: inputs ``x [B, L, 1]``,
        targets ``y [B, H, 1]``, their observed mask ``[B, H, 1]`` and, in every row, the
        number of observed target steps in the whole batch (so a process's share of the batch
        knows its weight in the batch's loss)."""
        windows = torch.from_numpy(values)[..., None]
        mask = torch.from_numpy(observed[:, self.context_length :])[..., None]
        total = torch.full((len(values),), int(mask.sum()), dtype=torch.int64)
        return windows[:, : self.context_length], windows[:, self.context_length :], mask, total

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
            values = np.stack([series.values[i][o : o + window] for i, o in at])
            observed = np.stack([series.observed[i][o : o + window] for i, o in at])
            yield self._tensors(values, observed)

    def _mean_loss(self, model: TitansForecaster, x: Tensor, y: Tensor, observed: Tensor) -> Tensor:
        """The model's loss: the mean over the observed target steps."""
        device = self.device
        return model.loss(x.to(device), y.to(device), observed=observed.to(device))

    def _loss(self, model: TitansForecaster, batch: tuple[Tensor, ...]) -> Tensor:
        """The loss of (a process's share of) a batch: the mean over its observed target steps,
        scaled so that the trainer's weighting of the shares by their number of windows adds
        up to the mean over the whole batch's observed steps (one process: a factor of 1)."""
        x, y, observed, total = batch
        loss = self._mean_loss(model, x, y, observed)
        share = int(observed.sum()) / max(int(total[0]), 1)
        return loss * (share * self.training.batch_size / len(x))

    @torch.no_grad()
    def _validation_loss(
        self, model: TitansForecaster, windows: tuple[np.ndarray, np.ndarray]
    ) -> float:
        """The mean loss over the observed target steps of the validation windows."""
        values, observed = windows
        model.eval()
        total, count = 0.0, 0
        for begin in range(0, len(values), self.training.batch_size):
            end = begin + self.training.batch_size
            x, y, mask, _ = self._tensors(values[begin:end], observed[begin:end])
            steps = int(mask.sum())
            if steps:
                total += float(self._mean_loss(model, x, y, mask)) * steps
                count += steps
        model.train()
        return total / count

    def _validation(
        self, dataset: Iterable[dict[str, Any]]
    ) -> tuple[_Series, tuple[np.ndarray, np.ndarray]]:
        """The validation series and their last windows (values, observed masks)."""
        series = self._series(dataset, "validation")
        window = self.context_length + self.prediction_length
        values = np.stack([v[-window:] for v in series.values])
        observed = np.stack([m[-window:] for m in series.observed])
        if not observed[:, self.context_length :].any():
            raise ValueError(
                "the validation data has no observed value in its series' last "
                f"{self.prediction_length} steps (prediction_length): nothing to validate on"
            )
        return series, (values, observed)

    def _fingerprint(self, train: _Series, validation: _Series | None) -> dict[str, Any]:
        """What determines the run besides the training config and the seed."""
        from titans_sci.version import code_version

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
        )


class TitansPredictor(Predictor):
    """Forecasts with a trained :class:`TitansForecaster` (univariate, ``channels=1``).

    Args:
        model: the forecaster; its config's ``lookback``/``horizon`` must equal
            ``context_length``/``prediction_length``.
        prediction_length, freq, context_length: as in :class:`TitansEstimator`.
        num_samples: default sample paths per Student-t forecast.
        batch_size: series per forward pass.
        seed: seeds the forecast samples; each :meth:`predict` call starts afresh, so the same
            data give the same forecasts.
        device: the torch device to predict on.
        history: the training's per-epoch losses (not serialised).
    """

    def __init__(
        self,
        model: TitansForecaster,
        prediction_length: int,
        freq: str,
        context_length: int,
        num_samples: int = 100,
        batch_size: int = 32,
        seed: int = 0,
        device: str | torch.device = "cpu",
        history: list[dict[str, float]] | None = None,
    ) -> None:
        super().__init__(prediction_length=prediction_length, lead_time=0)
        cfg = model.config
        if (cfg.lookback, cfg.horizon, cfg.channels) != (context_length, prediction_length, 1):
            raise ValueError(
                f"the model reads {cfg.lookback} steps of {cfg.channels} channel(s) and forecasts "
                f"{cfg.horizon}; expected context_length={context_length}, prediction_length="
                f"{prediction_length} and one channel"
            )
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f"num_samples={num_samples}, batch_size={batch_size}; expected >= 1")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.freq = freq
        self.context_length = context_length
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.history = list(history or [])

    def predict(
        self, dataset: Iterable[dict[str, Any]], num_samples: int | None = None, **kwargs: Any
    ) -> Iterator[Forecast]:
        """One forecast per entry of ``dataset``, from its last ``context_length`` values."""
        num_samples = self.num_samples if num_samples is None else int(num_samples)
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples}; expected >= 1")
        rng = np.random.default_rng(self.seed)
        self.model.eval()
        pending: list[tuple[pd.Period, Any, np.ndarray]] = []
        for index, entry in enumerate(dataset):
            start = _start(entry, index, self.freq)
            values = _target(entry, index)
            context = _left_pad(values[-self.context_length :], self.context_length)
            pending.append((start + len(values), entry.get("item_id"), context))
            if len(pending) == self.batch_size:
                yield from self._forecast(pending, num_samples, rng)
                pending = []
        if pending:
            yield from self._forecast(pending, num_samples, rng)

    @torch.no_grad()
    def _forecast(
        self,
        pending: list[tuple[pd.Period, Any, np.ndarray]],
        num_samples: int,
        rng: np.random.Generator,
    ) -> Iterator[Forecast]:
        x = torch.from_numpy(np.stack([context for _, _, context in pending]))[..., None]
        out = self.model(x.to(self.device))
        head = self.model.config.head
        if head == "student_t":
            df, loc, scale = (
                t[..., 0].double().cpu().numpy() for t in (out.df, out.loc, out.scale)
            )
            for row, (start, item_id, _) in enumerate(pending):
                noise = rng.standard_t(df[row], size=(num_samples, self.prediction_length))
                samples = (loc[row] + scale[row] * noise).astype(np.float32)
                yield SampleForecast(samples=samples, start_date=start, item_id=item_id)
        elif head == "quantile":
            quantiles = out[:, :, 0].float().cpu().numpy()  # [B, H, Q]
            # The head orders its levels ascending (its float32 buffer would print 0.1 as
            # 0.10000000149...), so the keys come from the config's float levels, sorted.
            keys = [str(q) for q in sorted(self.model.config.quantiles)]
            for row, (start, item_id, _) in enumerate(pending):
                yield QuantileForecast(
                    forecast_arrays=quantiles[row].T.copy(),
                    start_date=start,
                    forecast_keys=keys,
                    item_id=item_id,
                )
        else:
            points = out[:, :, 0].float().cpu().numpy()  # [B, H]
            for row, (start, item_id, _) in enumerate(pending):
                yield SampleForecast(samples=points[row][None], start_date=start, item_id=item_id)

    def serialize(self, path: Path) -> None:
        """Write the predictor to the existing folder ``path``: GluonTS' ``gluonts-config.json``
        (so :meth:`Predictor.deserialize` finds this class) and the forecaster as a model folder
        in ``path/model`` (:mod:`titans_sci.modelfolder`: versioned, the weights checksummed
        and checked finite on load), with this predictor's parameters in its ``meta``."""
        path = Path(path)
        super().serialize(path)
        # The forecaster reads raw values (its windows are normalised inside): an identity
        # scaler, so the folder also opens as a titans_sci.load Forecaster of one column.
        meta = {
            "columns": ["target"],
            "scaler_mean": [0.0],
            "scaler_scale": [1.0],
            "freq": self.freq,
            "predictor": self._parameters(),
        }
        save_model(path / _MODEL_FOLDER, self.model, meta)

    def _parameters(self) -> dict[str, Any]:
        return {
            "prediction_length": self.prediction_length,
            "freq": self.freq,
            "context_length": self.context_length,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    @classmethod
    def deserialize(
        cls, path: Path, device: str | torch.device = "cpu", **kwargs: Any
    ) -> TitansPredictor:
        """The predictor :meth:`serialize` wrote to ``path``, on ``device`` (a predictor
        written before the model folder, as three files beside GluonTS' config, loads too)."""
        path = Path(path)
        if not (path / _MODEL_FOLDER).is_dir():
            return cls._deserialize_before_model_folder(path, device)
        model, meta = load_module(path / _MODEL_FOLDER)
        if not isinstance(model, TitansForecaster) or not isinstance(meta.get("predictor"), dict):
            raise ValueError(f"{path / _MODEL_FOLDER}: not a TitansPredictor's forecaster")
        return cls(model, device=device, **meta["predictor"])

    @classmethod
    def _deserialize_before_model_folder(
        cls, path: Path, device: str | torch.device
    ) -> TitansPredictor:
        """A predictor serialized before 2026-12-07: ``forecaster_config.json``,
        ``predictor.json`` and ``model.safetensors`` (no checksum; the weights are checked
        finite here)."""
        try:
            config = ForecasterConfig.from_dict(json.loads((path / _CONFIG_FILE).read_text()))
            params = json.loads((path / _PARAMS_FILE).read_text())
            state = load_file(str(path / _SAFETENSORS_FILE))
        except (OSError, json.JSONDecodeError, SafetensorError) as error:
            raise ValueError(f"{path}: not a readable TitansPredictor ({error})") from None
        broken = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
        if broken:
            raise ValueError(f"{path / _SAFETENSORS_FILE}: tensor {broken[0]!r} is not finite")
        model = TitansForecaster(config)
        model.load_state_dict(state)
        return cls(model, device=device, **params)
