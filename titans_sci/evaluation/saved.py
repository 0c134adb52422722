"""Evaluating a saved model (``titans-sci evaluate``): on its task's test split or on a file.

A classifier is scored with accuracy, MCC, F1 and AUROC on labelled sequences (both strands
averaged); a forecaster with MSE and MAE over every stride-1 window, on data scaled with the
scaler it was trained with (the long-horizon protocol's units); a whole-history forecaster at
the same origins, streaming the whole series; a genome annotator with base, exon and exact-CDS
scores over whole annotated chromosomes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from titans_sci.api import (
    MAX_RECORD,
    Forecaster,
    GenomeAnnotator,
    SequenceClassifier,
    WholeHistoryForecaster,
    warn_far_outside,
)
from titans_sci.data.annotation import read_annotated
from titans_sci.data.dna import read_sequences
from titans_sci.data.registry import load_manifest
from titans_sci.data.timeseries import (
    ReadOptions,
    TimeSeriesTable,
    WindowDataset,
    load_dataset,
    split_borders,
)
from titans_sci.evaluation.forecasting import evaluate_windows
from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.evaluation.protocol import stratified_folds
from titans_sci.history import score_history
from titans_sci.models.forecaster import TitansForecaster
from titans_sci.models.history_forecaster import HistoryForecaster, series_covariates
from titans_sci.tasks.annotation import (
    Chromosome,
    bundled_genome,
    chromosome_name,
    predict_labels,
    read_genome,
    score,
)


def _default_data(model: SequenceClassifier | Forecaster) -> str:
    dataset = model.meta.get("dataset")
    if not dataset:
        raise ValueError(
            f"the model of task {model.meta.get('task')!r} was not trained on a bundled data "
            "set: give a file to evaluate on"
        )
    return dataset


def _held_out_fold(model: SequenceClassifier) -> tuple[int, int, int] | None:
    """``(folds, seed, fold)`` of a model trained on one fold of a cross-validation, else
    ``None``."""
    if "fold" not in model.meta:
        return None
    cv = model.meta.get("cross_validation")
    if not isinstance(cv, dict):
        raise ValueError(
            f"the model of task {model.meta.get('task')!r} was trained on fold "
            f"{model.meta['fold']} of a cross-validation but saved without its folds, so its "
            "held-out fold cannot be told from its training records; give a file to evaluate on"
        )
    return int(cv["folds"]), int(cv["seed"]), int(model.meta["fold"])


def evaluate_saved(
    model: SequenceClassifier | Forecaster,
    data: str | Path | None = None,
    options: ReadOptions | None = None,
) -> dict[str, float | None]:
    """Test metrics of ``model`` on ``data`` (a file; a series read with ``options``, default
    the model's own), or on the test split of the bundled data set it was trained on (``None``
    where a metric is undefined, see
    :func:`~titans_sci.evaluation.metrics.classification_metrics`)."""
    if isinstance(model, SequenceClassifier):
        held_out = None
        if data is None:
            splits = load_manifest(_default_data(model)).splits
            data = (splits["test"] if "test" in splits else splits["train"]).file
            held_out = _held_out_fold(model)
        records = read_sequences(data)
        if held_out is not None:  # a fold model: its own held-out fold, never its training
            folds, seed, fold = held_out
            of = [int(r.label or 0) for r in records]
            records = [records[i] for i in stratified_folds(of, folds, seed)[fold][1]]
        unlabelled = [r.id for r in records if r.label is None]
        if unlabelled:
            raise ValueError(f"{data}: records without a label, e.g. {unlabelled[:3]}")
        classes = model.model.config.num_classes
        for record in records:
            if not 0 <= int(record.label or 0) < classes:
                raise ValueError(
                    f"{data}: record {record.id} has label {record.label}; the model knows "
                    f"classes 0..{classes - 1}"
                )
        long = next((r for r in records if len(r.sequence) > MAX_RECORD), None)
        if long is not None:
            raise ValueError(
                f"{data}: record {long.id} has {len(long.sequence):,} bases, more than evaluate "
                f"scores whole ({MAX_RECORD:,}); evaluate on shorter records"
            )
        probs = model.predict([r.sequence for r in records])
        columns = [c for c in probs.columns if c.startswith("p_")]
        labels = np.array([r.label for r in records])
        return {"n": len(records), **classification_metrics(labels, probs[columns].to_numpy())}
    if isinstance(model, WholeHistoryForecaster):
        return _evaluate_history(model, data, options)
    if isinstance(model, GenomeAnnotator):
        return _evaluate_annotator(model, data)
    config = model.model.config
    if data is None:  # the test split's rows, with the lookback rows before it
        name, table, rule = _bundled_series(model)
        start, end = split_borders(len(table), rule, config.lookback).test
        table = replace(table, values=table.values[start:end],
                        timestamps=table.timestamps[start:end])  # fmt: skip
        source = f"{name} [test]"
    else:
        table = model.read(data, options)
        source = str(data)
    scaled = _scaled(model, _model_columns(model, table, table.values, source), source)
    past, known = model.covariate_columns(table) if model.reads_covariates else (None, None)
    windows = WindowDataset(scaled, config.lookback, config.horizon, source, past=past,
                            known=known)  # fmt: skip
    forecaster = model.model
    assert isinstance(forecaster, TitansForecaster)
    return {"n": len(windows), **_finite(evaluate_windows(forecaster.predict, windows), source)}


def _evaluate_history(
    model: WholeHistoryForecaster, data: str | Path | None, options: ReadOptions | None
) -> dict[str, float | None]:
    """MSE and MAE of a whole-history forecaster streaming the whole series: at the origins of
    the test split's stride-1 windows of the bundled data set it was trained on, or at every
    origin of a file with ``lookback`` rows before it and a whole horizon after it."""
    lookback, horizon = model.lookback, model.horizon
    if data is None:
        name, table, rule = _bundled_series(model)
        test = split_borders(len(table.values), rule, lookback).test
        first, stop, source = test[0] + lookback, test[1], f"{name} [test origins]"
    else:
        table = model.read(data, options)
        first, stop, source = lookback, len(table), str(data)
    values = _model_columns(model, table, table.values, source)
    if stop - horizon < first:
        raise ValueError(
            f"{source}: {len(table)} rows leave no origin with {lookback} rows before it and "
            f"{horizon} after it"
        )
    series = torch.from_numpy(_scaled(model, values, source)).T.contiguous()
    assert isinstance(model.model, HistoryForecaster)
    covariates = None
    if model.reads_covariates:
        covariates = series_covariates(*model.covariate_columns(table), len(series))
    origins = torch.arange(first, stop - horizon + 1)
    score = score_history(model.model, series, origins, covariates=covariates)
    return {"n": score.origins, **_finite({"mse": score.mse, "mae": score.mae}, source)}


def _evaluate_annotator(model: GenomeAnnotator, data: str | Path | None) -> dict[str, Any]:
    """Annotation scores of every record of an annotated GenBank file, or (``None``) of the
    test chromosomes of the bundled genome the model was trained on, each read whole."""
    if data is None:
        genome, test = model.meta.get("genome"), model.meta.get("test")
        if not genome or not test:
            raise ValueError(
                f"{model.folder}: trained on the user's own genome; give an annotated GenBank "
                "file to evaluate on"
            )
        files = bundled_genome(genome)
        chosen = [f for f in files if chromosome_name(f) in test]
        found, aliases = read_genome(chosen if len(chosen) == len(test) else files, None)
        known = {**{r: r for r in found}, **aliases}
        missing = [n for n in test if n not in known]
        if missing:
            raise ValueError(f"{model.folder}: test chromosome {missing[0]!r} is not in {genome}")
        records = [(n, found[known[n]]) for n in test]
    else:
        records = [(r.id, r) for r in read_annotated(data)]
    chromosomes = [Chromosome.of(name, record, 0) for name, record in records]
    predicted = {c.name: predict_labels(model.model, c.codes)[0] for c in chromosomes}
    bases = sum(len(c.codes) for c in chromosomes)
    return {"chromosomes": len(chromosomes), "bases": bases, **score(chromosomes, predicted)}


def _bundled_series(model: Forecaster) -> tuple[str, TimeSeriesTable, str]:
    """The bundled data set ``model`` was trained on: its name, series and split rule."""
    name = _default_data(model)
    rule = load_manifest(name).split_rule
    assert rule is not None  # load_manifest requires it of every time-series data set
    return name, load_dataset(name), rule


def _model_columns(
    model: Forecaster, table: TimeSeriesTable, values: Tensor | np.ndarray, source: str
) -> np.ndarray:
    """``values`` (rows of ``table``) in float32, the model's columns in its order, or a
    ValueError naming the columns ``table`` lacks."""
    missing = [c for c in model.columns if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; the model needs them")
    return np.asarray(values, dtype=np.float32)[:, [table.columns.index(c) for c in model.columns]]


def _finite(metrics: dict[str, float], source: str) -> dict[str, float]:
    """``metrics``, or a FloatingPointError naming the first that is not finite."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise FloatingPointError(
                f"{source}: the test {name.upper()} is {value}: the model's forecasts are not "
                "finite there; is the data far outside what it was trained on?"
            )
    return metrics


def _scaled(model: Forecaster, values: np.ndarray, source: str) -> np.ndarray:
    """``values [N, C]`` on the training scale, float32: a value that is not finite, or not
    once scaled, is refused naming its column and row; columns further than
    :data:`~titans_sci.api.FAR_OUTSIDE` training standard deviations from the training mean
    get a warning."""
    scaled = (values.astype(np.float64) - model.mean) / model.scale
    bad = np.argwhere(~(np.abs(scaled) <= np.finfo(np.float32).max))  # NaN, inf, too large
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise ValueError(
            f"{source}: column {model.columns[column]!r}, data row {row + 1}: "
            f"{values[row, column]!r} is not finite in float32 once scaled ({len(bad)} such "
            "value(s))"
        )
    warn_far_outside(source, model.columns, scaled, "what the metrics measure")
    return scaled.astype(np.float32)
