"""The :class:`TitansPredictor`: GluonTS forecasts from a trained :class:`TitansForecaster`,
serialized as a model folder (:mod:`titans_sci.modelfolder`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from gluonts.model.forecast import Forecast, QuantileForecast, SampleForecast
from gluonts.model.predictor import Predictor
from safetensors import SafetensorError
from safetensors.torch import load_file

from titans_sci.data.timeseries import left_pad
from titans_sci.modelfolder import load_module, save_model
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster

from .entries import entry_covariates, observed_target, start_period, target_for_input

__all__ = ["TitansPredictor"]

#: Where :meth:`TitansPredictor.serialize` puts the forecaster's model folder.
_MODEL_FOLDER = "model"
# The files of a predictor serialized before the model folder (still read).
_CONFIG_FILE = "forecaster_config.json"
_PARAMS_FILE = "predictor.json"
_SAFETENSORS_FILE = "model.safetensors"


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
        time_features: the calendar features the model reads (as the estimator's).

    The covariates the model reads come from each entry's GluonTS fields:
    ``feat_dynamic_real`` over its target and the ``prediction_length`` steps after it,
    ``past_feat_dynamic_real`` over its target, ``feat_static_cat`` and ``feat_static_real``;
    an entry missing one is refused in one line naming the field.
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
        time_features: Sequence[str] = (),
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
        self.time_features = tuple(time_features)
        if len(self.time_features) != cfg.calendar:
            raise ValueError(
                f"the model reads {cfg.calendar} calendar feature(s); time_features names "
                f"{list(self.time_features)}"
            )

    def predict(
        self, dataset: Iterable[dict[str, Any]], num_samples: int | None = None, **kwargs: Any
    ) -> Iterator[Forecast]:
        """One forecast per entry of ``dataset``, from its last ``context_length`` values."""
        num_samples = self.num_samples if num_samples is None else int(num_samples)
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples}; expected >= 1")
        rng = np.random.default_rng(self.seed)
        self.model.eval()
        pending: list[tuple[pd.Period, Any, tuple[np.ndarray, ...]]] = []
        length, horizon = self.context_length, self.prediction_length
        for index, entry in enumerate(dataset):
            start = start_period(entry, index, self.freq)
            values = target_for_input(*observed_target(entry, index))
            steps = len(values)
            past, known, static_cat, static_real = entry_covariates(
                self.model.config, self.time_features, entry, index, start, steps,
                steps + horizon,
            )  # fmt: skip
            inputs = (
                left_pad(values[-length:], length),
                left_pad(past[-length:], length),
                left_pad(known[-length - horizon :], length + horizon),
                static_cat.astype(np.int64),
                static_real.astype(np.float32),
            )
            pending.append((start + steps, entry.get("item_id"), inputs))
            if len(pending) == self.batch_size:
                yield from self._forecast(pending, num_samples, rng)
                pending = []
        if pending:
            yield from self._forecast(pending, num_samples, rng)

    @torch.no_grad()
    def _forecast(
        self,
        pending: list[tuple[pd.Period, Any, tuple[np.ndarray, ...]]],
        num_samples: int,
        rng: np.random.Generator,
    ) -> Iterator[Forecast]:
        x, *covariates = (
            torch.from_numpy(np.stack([inputs[k] for _, _, inputs in pending])).to(self.device)
            for k in range(5)
        )
        out = self.model(x[..., None], *covariates)
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
            "time_features": list(self.time_features),
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
        """A predictor serialized before the model folder (code up to 85463d3, 2026-12-06):
        ``forecaster_config.json``, ``predictor.json`` and ``model.safetensors`` (no checksum;
        the weights are checked finite here)."""
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
