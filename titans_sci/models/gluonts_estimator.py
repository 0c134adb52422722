"""A GluonTS ``Estimator``/``Predictor`` pair for the :class:`TitansForecaster`.

Only GluonTS' core API is used (no ``gluonts.torch``, so no Lightning): :class:`TitansEstimator`
is a :class:`gluonts.model.estimator.Estimator` whose :meth:`~TitansEstimator.train` runs a
plain PyTorch loop, and :class:`TitansPredictor` is a :class:`gluonts.model.predictor.Predictor`
that yields :class:`~gluonts.model.forecast.SampleForecast` (Student-t and point heads) or
:class:`~gluonts.model.forecast.QuantileForecast` (quantile head) objects, so GluonTS'
backtesting and :class:`~gluonts.evaluation.Evaluator` work unchanged.

The model is univariate: every dataset entry's ``target`` is one 1-D series (``channels=1``).

Conventions, for training and prediction alike:

- **Missing values.** Non-finite target values (NaN, inf) are filled with the last observed
  value; leading ones with the first observed value. A series with no finite value (empty or
  all-NaN) raises a ``ValueError`` naming its ``item_id`` (or its position in the dataset).
- **Short series.** A window (``context_length`` input steps, plus ``prediction_length`` target
  steps when training) that reaches before the series' first observation is **left-padded with
  the series' first value**. A training or validation series needs at least
  ``prediction_length + 1`` observations (a full target and one step of context); a shorter one
  raises a ``ValueError`` naming the item. Prediction needs one observation.
- **Time index.** Each entry's ``start`` (a ``pandas.Period``, or anything ``pandas.Period``
  accepts together with the entry's ``freq`` field or the estimator's ``freq``) must have the
  estimator's frequency; otherwise a ``ValueError`` names the item. A forecast starts at the
  period right after the last observation: ``start + len(target)``.

Example (``y``: a 1-D array of hourly values; its last 48 are held out for scoring)::

    from pathlib import Path

    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions
    from gluonts.model.predictor import Predictor

    from titans_sci.models.gluonts_estimator import TitansEstimator

    train = ListDataset([{"item_id": "a", "start": "2020-01-01", "target": y[:-48]}], freq="h")
    test = ListDataset([{"item_id": "a", "start": "2020-01-01", "target": y}], freq="h")
    estimator = TitansEstimator(prediction_length=48, freq="h", head="student_t", epochs=5)
    predictor = estimator.train(train)  # validation_data=... keeps the best epoch
    forecasts, series = make_evaluation_predictions(test, predictor, num_samples=100)
    metrics, per_item = Evaluator(quantiles=(0.1, 0.5, 0.9))(series, forecasts)
    print(metrics["MASE"], metrics["sMAPE"], metrics["mean_wQuantileLoss"])

    predictor.serialize(Path("model_dir"))  # an existing, empty folder
    predictor = Predictor.deserialize(Path("model_dir"))  # a TitansPredictor again
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from gluonts.model.estimator import Estimator
from gluonts.model.forecast import Forecast, QuantileForecast, SampleForecast
from gluonts.model.predictor import Predictor
from pandas.tseries.frequencies import to_offset

from .config import BackboneConfig
from .forecaster import ForecasterConfig, TitansForecaster

__all__ = ["TitansEstimator", "TitansPredictor"]

_CONFIG_FILE = "forecaster_config.json"
_PARAMS_FILE = "predictor.json"
_SAFETENSORS_FILE = "model.safetensors"
_TORCH_FILE = "model.pt"


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


def _target(entry: dict[str, Any], index: int, min_length: int = 1) -> np.ndarray:
    """The entry's 1-D target in float32 with missing values filled (see the module docstring),
    or a ValueError naming the item."""
    name = _item_name(entry, index)
    if "target" not in entry:
        raise ValueError(f"series {name}: no 'target' field")
    values = np.asarray(entry["target"], dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"series {name}: target has shape {values.shape}; the Titans estimator is "
            "univariate and expects a 1-D target"
        )
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError(f"series {name} is empty or has no finite value")
    if len(values) < min_length:
        raise ValueError(
            f"series {name} has {len(values)} values; training and validation series need at "
            f"least {min_length} (prediction_length + 1)"
        )
    if not finite.all():
        last = np.where(finite, np.arange(len(values)), -1)
        last = np.maximum.accumulate(last)
        first = int(np.argmax(finite))
        values = values[np.where(last >= 0, last, first)]
    return values.astype(np.float32)


def _left_pad(values: np.ndarray, length: int) -> np.ndarray:
    """``values`` left-padded with its first value to at least ``length``."""
    if len(values) >= length:
        return values
    return np.concatenate([np.full(length - len(values), values[0], values.dtype), values])


def _state_to_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class TitansEstimator(Estimator):
    """Trains a univariate :class:`TitansForecaster` on a GluonTS dataset.

    Args:
        prediction_length: forecast horizon ``H``.
        freq: the data's pandas frequency (``"h"``, ``"D"``, ...); every entry must match it.
        context_length: input steps ``L``; ``None``: ``4 * prediction_length`` (at least
            ``patch_len``).
        backbone: the Titans backbone config (``None``: the forecaster's default).
        head: ``"student_t"`` (sample forecasts), ``"quantile"`` (quantile forecasts) or
            ``"point"`` (one-sample forecasts).
        patch_len, stride: the forecaster's patching.
        quantiles: the quantile head's levels (``None``: the forecaster's default deciles).
        epochs, batches_per_epoch, batch_size: the training budget; each batch holds
            ``batch_size`` windows, each from a series drawn uniformly at random and a window
            position drawn uniformly within it (windows with a full context where the series is
            long enough; otherwise its last window, left-padded).
        lr, weight_decay: AdamW's settings (gradients clipped to norm ``clip_norm``).
        num_samples: sample paths per Student-t forecast.
        seed: seeds the weights' initialisation, the window sampling and the forecast samples.
        device: the torch device to train and predict on.

    ``train(training_data, validation_data=None)`` returns a :class:`TitansPredictor`. With
    validation data (its loss: the mean over each validation series' last window), the
    weights of the epoch with the lowest validation loss are kept. The per-epoch losses are in
    the predictor's ``history``.
    """

    def __init__(
        self,
        prediction_length: int,
        freq: str,
        context_length: int | None = None,
        backbone: BackboneConfig | None = None,
        head: str = "student_t",
        patch_len: int = 16,
        stride: int = 8,
        quantiles: Sequence[float] | None = None,
        epochs: int = 10,
        batches_per_epoch: int = 50,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        clip_norm: float | None = 1.0,
        num_samples: int = 100,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(lead_time=0)
        for name, value in (
            ("prediction_length", prediction_length),
            ("epochs", epochs),
            ("batches_per_epoch", batches_per_epoch),
            ("batch_size", batch_size),
            ("num_samples", num_samples),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TitansEstimator {name}={value!r}; expected an int >= 1")
        try:
            to_offset(freq)
        except ValueError as error:
            raise ValueError(f"TitansEstimator freq={freq!r} is not a pandas frequency") from error
        if context_length is None:
            context_length = max(4 * prediction_length, patch_len)
        extra: dict[str, Any] = {} if backbone is None else {"backbone": backbone}
        if quantiles is not None:
            extra["quantiles"] = tuple(quantiles)
        # Validates context_length, patch_len, stride, head and quantiles.
        self.forecaster_config = ForecasterConfig(
            lookback=context_length,
            horizon=prediction_length,
            channels=1,
            patch_len=patch_len,
            stride=stride,
            head=head,
            **extra,
        )
        self.prediction_length = prediction_length
        self.freq = freq
        self.context_length = context_length
        self.epochs = epochs
        self.batches_per_epoch = batches_per_epoch
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.num_samples = num_samples
        self.seed = seed
        self.device = torch.device(device)

    def _series(self, dataset: Iterable[dict[str, Any]], what: str) -> list[np.ndarray]:
        """Each entry's target, checked, filled and left-padded to a full window."""
        window = self.context_length + self.prediction_length
        series = []
        for index, entry in enumerate(dataset):
            _start(entry, index, self.freq)
            values = _target(entry, index, min_length=self.prediction_length + 1)
            series.append(_left_pad(values, window))
        if not series:
            raise ValueError(f"the {what} data has no series")
        return series

    def _windows(self, series: list[np.ndarray], rng: np.random.Generator) -> torch.Tensor:
        """``batch_size`` random windows ``[B, L + H, 1]``."""
        window = self.context_length + self.prediction_length
        which = rng.integers(len(series), size=self.batch_size)
        batch = np.empty((self.batch_size, window), dtype=np.float32)
        for row, i in enumerate(which):
            offset = rng.integers(len(series[i]) - window + 1)
            batch[row] = series[i][offset : offset + window]
        return torch.from_numpy(batch)[..., None]

    def _loss(self, model: TitansForecaster, windows: torch.Tensor) -> torch.Tensor:
        windows = windows.to(self.device)
        x, y = windows[:, : self.context_length], windows[:, self.context_length :]
        return model.loss(x, y)

    @torch.no_grad()
    def _validation_loss(self, model: TitansForecaster, windows: torch.Tensor) -> float:
        model.eval()
        total = 0.0
        for begin in range(0, len(windows), self.batch_size):
            chunk = windows[begin : begin + self.batch_size]
            total += float(self._loss(model, chunk)) * len(chunk)
        model.train()
        return total / len(windows)

    def train(
        self,
        training_data: Iterable[dict[str, Any]],
        validation_data: Iterable[dict[str, Any]] | None = None,
    ) -> TitansPredictor:
        """Train a forecaster on ``training_data``; returns its :class:`TitansPredictor`."""
        series = self._series(training_data, "training")
        validation = None
        if validation_data is not None:
            window = self.context_length + self.prediction_length
            last = [s[-window:] for s in self._series(validation_data, "validation")]
            validation = torch.from_numpy(np.stack(last))[..., None]
        rng = np.random.default_rng(self.seed)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            model = TitansForecaster(self.forecaster_config).to(self.device)
            optimiser = torch.optim.AdamW(
                model.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
            history: list[dict[str, float]] = []
            best_loss, best_state = float("inf"), None
            model.train()
            for epoch in range(self.epochs):
                total = 0.0
                for _ in range(self.batches_per_epoch):
                    loss = self._loss(model, self._windows(series, rng))
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.clip_norm is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_norm)
                    optimiser.step()
                    total += float(loss.detach())
                record = {"epoch": epoch, "train_loss": total / self.batches_per_epoch}
                if validation is not None:
                    record["validation_loss"] = self._validation_loss(model, validation)
                    if record["validation_loss"] < best_loss:
                        best_loss = record["validation_loss"]
                        best_state = _state_to_cpu(model)
                history.append(record)
            if best_state is not None:
                model.load_state_dict(best_state)
        model.eval()
        return TitansPredictor(
            model,
            prediction_length=self.prediction_length,
            freq=self.freq,
            context_length=self.context_length,
            num_samples=self.num_samples,
            batch_size=self.batch_size,
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
        (so :meth:`Predictor.deserialize` finds this class), the forecaster config, the weights
        (safetensors if installed, else ``torch.save``) and this predictor's parameters."""
        path = Path(path)
        super().serialize(path)
        (path / _CONFIG_FILE).write_text(json.dumps(self.model.config.to_dict(), indent=2))
        params = {
            "prediction_length": self.prediction_length,
            "freq": self.freq,
            "context_length": self.context_length,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }
        (path / _PARAMS_FILE).write_text(json.dumps(params, indent=2))
        state = {k: v.contiguous() for k, v in _state_to_cpu(self.model).items()}
        try:
            from safetensors.torch import save_file
        except ImportError:
            torch.save(state, path / _TORCH_FILE)
        else:
            save_file(state, str(path / _SAFETENSORS_FILE))

    @classmethod
    def deserialize(
        cls, path: Path, device: str | torch.device = "cpu", **kwargs: Any
    ) -> TitansPredictor:
        """The predictor :meth:`serialize` wrote to ``path``, on ``device``."""
        path = Path(path)
        config = ForecasterConfig.from_dict(json.loads((path / _CONFIG_FILE).read_text()))
        params = json.loads((path / _PARAMS_FILE).read_text())
        model = TitansForecaster(config)
        if (path / _SAFETENSORS_FILE).exists():
            from safetensors.torch import load_file

            state = load_file(str(path / _SAFETENSORS_FILE))
        else:
            state = torch.load(path / _TORCH_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return cls(model, device=device, **params)
