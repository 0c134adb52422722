"""A saved model folder: ``model.safetensors`` (the weights) and ``model.json`` (its format,
its kind, its config, the weights' SHA-256 and ``meta``, what a user of the model needs: a
forecaster's columns and training scaler, a classifier's classes), written whole or not at all
and checked when it is read; the format migrations; a classifier's trunk started from a
pretrained language model.

The model kinds are one table, :data:`MODEL_KINDS`: a new kind of model is one module and one
:func:`register` line (its name, module class and config class, and a check of its ``meta``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from titans_sci.config import build, difference
from titans_sci.data.registry import sha256_of
from titans_sci.files import staged_folder
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier
from titans_sci.models.dna_lm import DNALMConfig, DNAMaskedLM
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster
from titans_sci.models.genome_annotator import AnnotatorConfig, GenomeAnnotator
from titans_sci.models.history_forecaster import HistoryForecaster, HistoryForecasterConfig

WEIGHTS, CONFIG = "model.safetensors", "model.json"
#: 3: ``model.json`` holds the weights' SHA-256 (``weights_sha256``), checked on load. 4: a MAC
#: backbone's config names its block (``form``); older MAC models load as ``"residual"``.
FORMAT = 4


#: What a forecaster's ``meta`` must hold to be used.
FORECASTER_META = ("columns", "scaler_mean", "scaler_scale")


def save_model(directory: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model`` (a :class:`DNAClassifier`, :class:`TitansForecaster` or pretrained
    :class:`DNAMaskedLM`) and ``meta``
    (JSON-able facts a user of the model needs) to ``directory`` (under torchrun, only the
    caller's rank 0 should: the runner and the CLI decide), atomically: the folder
    appears complete or not at all, replacing an older one. ``model.json`` records the
    SHA-256 of the weights, which :func:`load` checks.

    The files are written into a staging folder beside ``directory`` and renamed into place
    (:func:`titans_sci.files.staged_folder`); a folder holding anything but a saved model's
    files is refused."""
    directory = Path(directory)
    kind = kind_of_module(model)
    config: Any = model.config
    info = {"kind": kind.name, "config": config.to_dict()}
    with staged_folder(directory, (WEIGHTS, CONFIG)) as staging:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, staging / WEIGHTS)
        info["weights_sha256"] = sha256_of(staging / WEIGHTS)
        text = json.dumps({"format": FORMAT, **info, "meta": meta}, indent=2, allow_nan=False)
        (staging / CONFIG).write_text(text)
    return directory


def _with_first_mac_form(config: Any) -> Any:
    """A config saved before format 4, with every MAC backbone given the block it was trained
    with (``form="residual"``; format 4 added ``form`` and made the paper's block the
    default)."""
    if isinstance(config, dict):
        config = {key: _with_first_mac_form(value) for key, value in config.items()}
        if config.get("variant") == "mac":
            config.setdefault("form", "residual")
    return config


def load_module(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The module and ``meta`` of a saved model folder, every file checked; errors name the
    file."""
    path = Path(path)
    config_path = path / CONFIG
    try:
        info = json.loads(config_path.read_text())
        kind = info["kind"]
        # format 1 called a classifier's config its "settings"
        config = info["config"] if "config" in info else info["settings"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{config_path}: not a saved titans-sci model ({error})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{config_path}: not a saved titans-sci model (not a JSON object)")
    version = info.get("format", 1)
    if not isinstance(version, int) or version > FORMAT:
        raise ValueError(
            f"{config_path}: format {version!r}; this titans-sci reads formats 1..{FORMAT} "
            "(upgrade titans-sci to load the model)"
        )
    if version < 4:
        config = _with_first_mac_form(config)
    if kind not in MODEL_KINDS:
        raise ValueError(f"{config_path}: unknown model kind {kind!r}")
    spec = MODEL_KINDS[kind]
    model: nn.Module = spec.module(build(spec.config, config, str(config_path)))
    meta = info.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"{config_path}: 'meta' is a {type(meta).__name__}, not an object")
    if spec.check_meta is not None:
        spec.check_meta(meta, model, config_path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ValueError(f"{weights}: no such file; a saved model holds {WEIGHTS} and {CONFIG}")
    # Formats 1 and 2 did not record the checksum: their weights load unverified.
    expected = info.get("weights_sha256")
    if version >= 3 and not isinstance(expected, str):
        raise ValueError(f"{config_path}: no weights_sha256 (format {version} records it)")
    if expected is not None and sha256_of(weights) != expected:
        raise ValueError(
            f"{weights}: the weights do not match the checksum in {CONFIG} (a corrupt, "
            "truncated or changed file); copy the model again, re-save or re-train it"
        )
    try:
        state = load_file(weights)
    except (OSError, SafetensorError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
        raise ValueError(
            f"{weights}: not a readable safetensors file ({first}); copy the model again, "
            "re-save or re-train it"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
        raise ValueError(
            f"{weights}: these weights do not fit the model in {CONFIG}: {first}"
        ) from None
    broken = next(
        (k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()), None
    )
    if broken is not None:
        raise ValueError(
            f"{weights}: tensor {broken!r} holds non-finite values (NaN or inf; the training "
            "diverged?); re-train the model"
        )
    return model, meta


#: The weights a pretrained language model hands a classifier (its trunk).
TRUNK = ("embedding.", "stem.", "backbone.")


def init_from_pretrained(classifier: DNAClassifier, path: str | Path) -> DNAClassifier:
    """``classifier`` with its embedding, stem and backbone weights copied from the pretrained
    DNA language model saved in ``path`` (a pretraining run's ``model`` folder); its head
    stays as initialised. The two trunk configs must be equal (the first difference is
    named)."""
    model, _ = load_module(path)
    where = Path(path) / CONFIG
    if not isinstance(model, DNAMaskedLM):
        raise ValueError(f"{where}: not a pretrained DNA language model (kind dna_lm)")
    mine = DNALMConfig(classifier.config.backbone, classifier.config.stem_kernel)
    if model.config != mine:
        first = difference(model.config.to_dict(), mine.to_dict())
        raise ValueError(
            f"{where}: its trunk differs from the classifier's model table: {first} "
            "(pretrained, then the task's)"
        )
    trunk = {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK)}
    missing = [k for k in classifier.state_dict() if k.startswith(TRUNK) and k not in trunk]
    if missing:
        raise ValueError(f"{where}: the pretrained weights lack {missing[:3]}")
    classifier.load_state_dict(trunk, strict=False)
    return classifier


def _check_forecaster_meta(
    meta: dict[str, Any], model: TitansForecaster | HistoryForecaster, config_path: Path
) -> None:
    """A forecaster's ``meta`` holds its channels' columns and a finite, positive scaler."""
    channels = model.config.channels
    missing = [key for key in FORECASTER_META if key not in meta]
    if missing:
        raise ValueError(
            f"{config_path}: meta has no {', '.join(missing)}; a forecaster needs its "
            "columns and training scaler (re-save the model with them)"
        )
    columns = meta["columns"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError(f"{config_path}: meta's columns must be a list of names, got {columns!r}")
    for key in ("columns", "scaler_mean", "scaler_scale"):
        value = meta[key]
        if not isinstance(value, list) or len(value) != channels:
            raise ValueError(
                f"{config_path}: meta's {key} must list {channels} entries (the model's "
                f"channels), got {value!r}"
            )
    for key in ("scaler_mean", "scaler_scale"):
        numbers = meta[key]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise ValueError(f"{config_path}: meta's {key} must be numbers, got {numbers!r}")
        array = np.asarray(numbers, dtype=np.float64)
        bad = ~np.isfinite(array) | ((array <= 0) if key == "scaler_scale" else False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{config_path}: meta's {key} for column {columns[i]!r} is {numbers[i]!r}; "
                "expected a finite number" + (" > 0" if key == "scaler_scale" else "")
            )


@dataclass(frozen=True)
class ModelKind:
    """A kind of model a folder can hold: its ``name`` in ``model.json``, its module class
    (built from ``config``, a config class, as ``module(config)``) and ``check_meta(meta,
    module, where)``, which refuses a ``meta`` the model cannot be used without."""

    name: str
    module: type[nn.Module]
    config: type
    check_meta: Callable[[dict[str, Any], Any, Path], None] | None = None


#: Every kind of model a folder can hold, by name.
MODEL_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    """Add ``kind`` to :data:`MODEL_KINDS` (a name or a module class is registered once)."""
    taken = [k.name for k in MODEL_KINDS.values() if kind.module is k.module or k.name == kind.name]
    if taken:
        raise ValueError(f"model kind {kind.name!r}: {taken[0]!r} is registered already")
    MODEL_KINDS[kind.name] = kind
    return kind


def kind_of_module(model: nn.Module) -> ModelKind:
    """The registered kind of ``model`` (its exact class)."""
    for kind in MODEL_KINDS.values():
        if type(model) is kind.module:
            return kind
    raise TypeError(f"cannot save a {type(model).__name__}: not a registered model kind")


register(ModelKind("dna_classifier", DNAClassifier, ClassifierConfig))
register(ModelKind("forecaster", TitansForecaster, ForecasterConfig, _check_forecaster_meta))
register(ModelKind("dna_lm", DNAMaskedLM, DNALMConfig))
register(
    ModelKind(
        "history_forecaster", HistoryForecaster, HistoryForecasterConfig, _check_forecaster_meta
    )
)
register(ModelKind("genome_annotator", GenomeAnnotator, AnnotatorConfig))
