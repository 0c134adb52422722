"""The public API: load trained models, predict, and look at the memory's surprise (the saved
model folder itself is :mod:`titans_sci.modelfolder`, whose ``save_model`` and
``load_module`` are re-exported here).

A saved model is a folder with ``model.safetensors`` (the weights) and ``model.json`` (what the
model is and what it needs to be used: its settings, and for a forecaster the columns, the
training scaler, the frequency). ``titans_sci.load(folder)`` returns a
:class:`SequenceClassifier` or a :class:`Forecaster`::

    import titans_sci
    model = titans_sci.load("runs/gue_prom_core_tata/checkpoints/seed1/titans/model")
    table = model.predict("my_sequences.fasta")      # id, length, p_0, p_1, prediction
    trace = model.surprise("ACGTTATAAAAGG...")       # [T, layers, heads]
    model.stream_surprise("chr21.fa.gz", "chr21_surprise.csv")   # any length, constant memory
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.tseries.frequencies import to_offset
from torch import nn
from tqdm.auto import tqdm

from titans_sci.data.annotation import (
    CDS_PLUS,
    LABELS,
    features_from_runs,
    iter_runs,
    write_gff3,
)
from titans_sci.data.covariates import calendar_features
from titans_sci.data.dna import base_codes, read_sequences, validate_sequence
from titans_sci.data.fasta_stream import iter_pieces, iter_windows, with_context
from titans_sci.data.timeseries import ReadOptions, TimeSeriesTable, fill_missing, read_series
from titans_sci.data.tokens import NucleotideTokenizer, pad_batch
from titans_sci.files import atomic_open, check_output
from titans_sci.modelfolder import (  # noqa: F401 (the saved-model core, re-exported)
    CONFIG,
    FORMAT,
    WEIGHTS,
    init_from_pretrained,
    load_module,
    save_model,
)
from titans_sci.models.dna_classifier import DNAClassifier
from titans_sci.models.dna_lm import DNAMaskedLM
from titans_sci.models.forecaster import TitansForecaster
from titans_sci.models.gene_structure import STATES, viterbi
from titans_sci.models.genome_annotator import GenomeAnnotator as AnnotatorModule
from titans_sci.models.genome_annotator import stream_logits
from titans_sci.models.history_forecaster import (
    HistoryForecaster,
    series_covariates,
    stream_forecasts,
)

#: The longest record :meth:`SequenceClassifier.predict` scores whole. Measured (peak RSS by
#: ``resource.getrusage`` in a fresh process, 2-core CPU) with the genomics benchmark's
#: classifier (LMM dim 64, depth 2, both strands): 1.4 GB more for a 100,000-base record, 4.2
#: GB for 300,000 (about 14 KB a base, so a 1 Mb record would take about 14 GB); a tiny dim-16
#: model takes 3.1 GB for 1 Mb. Longer records go through ``--window`` or ``--surprise``.
MAX_RECORD = 100_000
#: Scaled inputs further than this many training standard deviations from the training mean
#: get a warning naming the column.
FAR_OUTSIDE = 100.0


def load(path: str | Path) -> SequenceClassifier | Forecaster | GenomeAnnotator:
    """A saved model (see :func:`~titans_sci.modelfolder.save_model`), ready to predict, as
    the predictor of its kind (:data:`PREDICTORS`); errors name the file."""
    model, meta = load_module(path)
    if isinstance(model, DNAMaskedLM):
        raise ValueError(
            f"{Path(path) / CONFIG}: a pretrained DNA language model, not a predictor; "
            "fine-tune it on a classification task (training.init in its task file)"
        )
    predictor = PREDICTORS.get(type(model))
    if predictor is None:
        raise ValueError(f"{Path(path) / CONFIG}: a {type(model).__name__}, not a predictor")
    return predictor(model.eval(), meta, Path(path))


def _checked_target(target: int | None, default: int, names: list[str]) -> int:
    """``target`` (``default`` for None), refused outside ``0..len(names) - 1``."""
    if target is None:
        return default
    if not 0 <= target < len(names):
        known = ", ".join(f"{k} ({name})" for k, name in enumerate(names))
        raise ValueError(f"class {target}; the model knows classes {known}")
    return target


class _Explains:
    """What the DNA models' facades share: :meth:`explain`, the attributions of one of the
    model's classes (named, with the default, by :meth:`_labels`) to every base of a record."""

    model: nn.Module
    folder: Path | None

    def _labels(self) -> tuple[list[str], int]:
        """The names of the model's classes, and the one attributed by default."""
        raise NotImplementedError

    def explain(
        self,
        sequences: str | Path,
        output: str | Path,
        target: int | None = None,
        max_length: int = 5000,
        batch_size: int = 256,
        progress: bool = True,
        allow_duplicate_ids: bool = False,
    ) -> pd.DataFrame:
        """Which bases drive class ``target`` for every record of a sequence file (a
        classifier's class, by default the last; an annotator's label, by default 1,
        ``CDS+``, its mean over the record's bases): in-silico saturation mutagenesis and
        gradient x input, both strands read as the model reads them
        (:mod:`titans_sci.explain.attributions`). Writes ``output/attributions.csv`` (a row per
        record and base, positions 1-based) and a logo PNG per record; returns the CSV's table.
        ISM costs ``3 x length`` model passes of a record, so records longer than
        ``max_length`` are refused."""
        from titans_sci.explain import view_of
        from titans_sci.explain.files import explain_records

        labels, default = self._labels()
        target = _checked_target(target, default, labels)
        records = read_sequences(sequences, allow_duplicate_ids=allow_duplicate_ids)
        long = next((r for r in records if len(r.sequence) > max_length), None)
        if long is not None:
            raise ValueError(
                f"{sequences}: record {long.id} has {len(long.sequence):,} bases; explain takes "
                f"records up to {max_length:,} (ISM scores 3 mutants a base): cut it to the "
                "stretch to explain"
            )
        protected = [self.folder] if self.folder else []
        check_output(Path(output) / "attributions.csv", [sequences], protected)
        path = explain_records(view_of(self.model), records, Path(output), target,
                               labels[target], batch_size, progress)  # fmt: skip
        return pd.read_csv(path)


class SequenceClassifier(_Explains):
    """A trained DNA classifier: sequences in, class probabilities (both strands) out."""

    model: DNAClassifier

    def __init__(
        self, model: DNAClassifier, meta: dict[str, Any], folder: Path | None = None
    ) -> None:
        self.model, self.meta, self.folder = model, meta, folder
        self.tokenizer = NucleotideTokenizer()

    def _output(self, output: str | Path, source: str | Path) -> Path:
        """``output``, refused where it would land on ``source`` or in this model's folder."""
        return check_output(output, [source], [self.folder] if self.folder else [])

    def _encode(self, sequences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch([self.tokenizer.encode(s) for s in sequences], self.tokenizer.pad_id)

    def predict(
        self,
        sequences: str | Path | Sequence[str],
        batch_size: int = 256,
        max_length: int = MAX_RECORD,
        allow_duplicate_ids: bool = False,
    ) -> pd.DataFrame:
        """Class probabilities of every sequence of a FASTA/FASTQ/GenBank/CSV/TSV file (or of a
        list of strings): one row per record with ``id``, ``length``, ``p_<class>`` and the
        most probable class as ``prediction``.

        A record longer than ``max_length`` bases (default :data:`MAX_RECORD`, about 1.9 GB
        with the genomics benchmark's classifier) is refused before any tensor is built: score
        long records with :meth:`predict_windows` or :meth:`stream_surprise`. Batches hold up
        to ``batch_size`` records and at most ``max(max_length, longest record)`` padded bases,
        so many long records do not multiply the memory of one."""
        source = str(sequences) if isinstance(sequences, (str, Path)) else "sequences"
        if isinstance(sequences, (str, Path)):
            records = read_sequences(sequences, allow_duplicate_ids=allow_duplicate_ids)
            ids, texts = [r.id for r in records], [r.sequence for r in records]
        else:
            texts = list(sequences)
            ids = [f"seq{i + 1}" for i in range(len(texts))]
            for name, text in zip(ids, texts, strict=True):
                validate_sequence(text, source="sequences", record=name)
        for name, text in zip(ids, texts, strict=True):
            if len(text) > max_length:
                raise ValueError(
                    f"{source}: record {name} has {len(text):,} bases, more than a whole-record "
                    f"prediction takes ({max_length:,}); score it window by window with "
                    "--window W (or its surprise with --surprise)"
                )
        probs = []
        budget = max([max_length, *map(len, texts)])
        for first, stop in _token_batches([len(t) for t in texts], batch_size, budget):
            batch, mask = self._encode(texts[first:stop])
            probs.append(self.model.predict_proba(batch, mask))
        classes = self.model.config.num_classes
        p = torch.cat(probs).numpy() if probs else np.zeros((0, classes), dtype=np.float32)
        broken = np.flatnonzero(~np.isfinite(p).all(axis=1))
        if broken.size:
            raise FloatingPointError(
                f"{source}: the class probabilities of record {ids[broken[0]]} are not finite "
                f"({broken.size} such records); the model's weights or this record break it"
            )
        table = pd.DataFrame({"id": ids, "length": [len(t) for t in texts]})
        for k in range(p.shape[1]):
            table[f"p_{k}"] = p[:, k]
        table["prediction"] = p.argmax(axis=1)
        return table

    def predict_windows(
        self,
        path: str | Path,
        output: str | Path,
        window: int,
        stride: int | None = None,
        batch_size: int = 256,
        progress: bool = True,
        allow_duplicate_ids: bool = False,
    ) -> int:
        """Class probabilities of every ``window``-base window (every ``stride`` bases, default
        ``window``; the last window ends at the record's end) of every record of a sequence
        file, however long (a chromosome is fine): a FASTA record is read piece by piece and
        never held whole (:func:`~titans_sci.data.fasta_stream.iter_windows`), windows are
        scored in batches and each batch's rows (``record, start, end, p_<class>...``,
        0-based half-open) are appended to the CSV ``output`` at once, so memory stays flat
        in the record's length. Returns the number of windows written; the CSV appears
        complete or not at all (it is written under a temporary name and renamed)."""
        written = 0
        header = None
        windows = iter_windows(path, window, stride, allow_duplicate_ids=allow_duplicate_ids)
        output = self._output(output, path)
        with atomic_open(output) as sink, tqdm(unit=" windows", disable=not progress) as bar:
            rows = csv.writer(sink, lineterminator="\n")  # quotes an id holding a comma
            for batch in _batches(windows, batch_size):
                ids, mask = self._encode([text for _, _, text in batch])
                probs = self.model.predict_proba(ids, mask).numpy()
                broken = np.flatnonzero(~np.isfinite(probs).all(axis=1))
                if broken.size:
                    name, start, text = batch[broken[0]]
                    raise FloatingPointError(
                        f"{path}: the class probabilities of record {name}, bases "
                        f"{start}..{start + len(text)} are not finite"
                    )
                if header is None:
                    header = ["record", "start", "end"] + [f"p_{k}" for k in range(probs.shape[1])]
                    rows.writerow(header)
                for (name, start, text), p in zip(batch, probs, strict=True):
                    rows.writerow([name, start, start + len(text), *(f"{v:.6g}" for v in p)])
                sink.flush()
                written += len(batch)
                bar.update(len(batch))
        return written

    def _labels(self) -> tuple[list[str], int]:
        classes = self.model.config.num_classes
        return [f"class {k}" for k in range(classes)], classes - 1

    def variant_effects(
        self,
        reference: str | Path,
        vcf: str | Path,
        output: str | Path,
        window: int | None = None,
        target: int | None = None,
        batch_size: int = 256,
        progress: bool = True,
    ) -> int:
        """Score every variant of ``vcf`` (each ALT allele) against the indexed FASTA
        ``reference``: the model's strand-averaged probability of class ``target`` (default:
        the last) for the ``window`` bases around the variant (default: the median length of
        the sequences it was trained on) with the reference and with the alternative allele,
        their difference and log odds ratio, to the CSV ``output`` (see
        :mod:`titans_sci.explain.variants` for the conventions and what is refused). Returns
        the rows written."""
        from titans_sci.explain.files import score_variants

        labels, default = self._labels()
        target = _checked_target(target, default, labels)
        if window is None:
            window = self.meta.get("sequence_length")
            if window is None:
                raise ValueError(
                    f"{self.folder}: the model does not record its sequences' length; give the "
                    "window (--window)"
                )
        if window < 1:
            raise ValueError(f"window={window}; expected a positive number of bases")
        path = check_output(output, [vcf, reference], [self.folder] if self.folder else [])
        return score_variants(self.model, reference, vcf, path, int(window), target, batch_size,
                              progress)  # fmt: skip

    def stream_surprise(
        self,
        path: str | Path,
        output: str | Path,
        segment: int = 4096,
        progress: bool = True,
        allow_duplicate_ids: bool = False,
    ) -> int:
        """The memories' surprise at every base of every record of a sequence file, however
        long: each record streams through the model ``segment`` bases at a time with the
        memories' state carried over (reading 5' to 3'; the same numbers as :meth:`surprise`
        on the whole record), and each segment's rows (``record, position, base,
        layer<l>_head<h>...``; 0-based positions) are appended to the CSV ``output`` at once.
        A FASTA record is read ``segment`` bases at a time and never held whole, so memory
        stays flat in its length. Returns the number of rows; the CSV appears complete or not
        at all."""
        config = self.model.backbone.config  # one memory layer per block
        columns = [
            f"layer{i}_head{j}" for i in range(config.depth) for j in range(config.memory.num_heads)
        ]
        written = 0
        output = self._output(output, path)
        with atomic_open(output) as sink, tqdm(unit=" bases", disable=not progress) as bar:
            sink.write(",".join(["record", "position", "base", *columns]) + "\n")
            records = iter_pieces(path, segment, allow_duplicate_ids=allow_duplicate_ids)
            pieces = with_context(records, self.model.margin)
            for name, group in itertools.groupby(pieces, key=lambda piece: piece[0]):
                pending: deque[tuple[int, str]] = deque()  # the piece whose trace comes next
                for trace in self.model.surprise_of_pieces(_noting(group, pending)):
                    start, piece = pending.popleft()
                    n = trace.shape[0]
                    rows = pd.DataFrame(trace.reshape(n, -1).numpy(), columns=columns)
                    rows.insert(0, "base", list(piece))
                    rows.insert(0, "position", np.arange(start, start + n))
                    rows.insert(0, "record", name)
                    rows.to_csv(sink, header=False, index=False, float_format="%.5g")
                    sink.flush()
                    written += n
                    bar.update(n)
        return written

    def surprise(self, sequence: str, max_length: int = MAX_RECORD) -> np.ndarray:
        """The memories' surprise at each base of ``sequence``: ``[T, layers, heads]``. A
        sequence longer than ``max_length`` bases is refused (stream it with
        :meth:`stream_surprise`, whose memory stays flat in the length)."""
        validate_sequence(sequence, source="sequence", record="seq1")
        if len(sequence) > max_length:
            raise ValueError(
                f"sequence: {len(sequence):,} bases, more than surprise() takes whole "
                f"({max_length:,}); stream it with stream_surprise (or --surprise)"
            )
        ids, _ = self._encode([sequence])
        return _finite(self.model.surprise(ids)[0].numpy(), "sequence: the surprise")


class Forecaster:
    """A trained forecaster: the last ``lookback`` rows of a series in, the next ``horizon``
    steps out, in the data's own units (the training scaler is applied and undone).

    A model that reads covariates reads them from the same file: past-only ones over the
    lookback rows; known ones (day-ahead forecasts) over the lookback rows and the ``horizon``
    rows after the origin, which the file must carry with the target left empty there (the
    origin is after the target's last value); calendar features from the timestamps."""

    def __init__(
        self,
        model: TitansForecaster | HistoryForecaster,
        meta: dict[str, Any],
        folder: Path | None = None,
    ) -> None:
        self.model, self.meta, self.folder = model, meta, folder
        self.columns: list[str] = meta["columns"]
        self.mean = np.asarray(meta["scaler_mean"], dtype=np.float64)
        self.scale = np.asarray(meta["scaler_scale"], dtype=np.float64)
        self.past_covariates: list[str] = list(meta.get("past_covariates", []))
        self.known_covariates: list[str] = list(meta.get("known_covariates", []))
        self.calendar: tuple[str, ...] = tuple(meta.get("calendar", []))
        self.covariate_mean = np.asarray(meta.get("covariate_mean", []), dtype=np.float64)
        self.covariate_scale = np.asarray(meta.get("covariate_scale", []), dtype=np.float64)

    @property
    def lookback(self) -> int:
        return self.model.config.lookback

    @property
    def horizon(self) -> int:
        return self.model.config.horizon

    @property
    def trained_options(self) -> ReadOptions:
        """How the training series was read (the defaults for a model saved before they were
        kept)."""
        return ReadOptions.from_dict(self.meta.get("read", {}))

    def read(
        self, path: str | Path, options: ReadOptions | None = None, keep_missing: bool = False
    ) -> TimeSeriesTable:
        """A series file as this model reads it: its date column and channels, ``options``
        (default: the ones it was trained with), and steps of the frequency it was trained on
        (another is refused: an hourly model does not forecast a daily file). With
        ``keep_missing`` and no fill chosen, missing values stay NaN for the caller to check
        where it reads."""
        options = options or self.trained_options
        kwargs = options.kwargs()
        if keep_missing and options.nan_policy == "error":
            kwargs["nan_policy"] = "keep"
        date_column = self.meta.get("date_column", "date")
        if self.known_covariates:  # the future rows' empty targets stay empty: see _window
            kwargs["nan_policy"] = "keep"
        columns = [*self.columns, *self.past_covariates, *self.known_covariates]
        table = read_series(path, date_column, columns, **kwargs)
        trained = self.meta.get("freq")
        if trained and table.freq and to_offset(table.freq) != to_offset(trained):
            raise ValueError(
                f"{path}: steps of {table.freq!r}, but the model was trained on steps of "
                f"{trained!r}; give it a series of its own frequency"
            )
        return table

    def _window(
        self, series: str | Path | TimeSeriesTable, options: ReadOptions | None = None
    ) -> tuple[TimeSeriesTable, np.ndarray]:
        if isinstance(series, TimeSeriesTable):
            table = series
        else:  # only the last lookback rows are read: a gap far before them does not matter
            table = self.read(series, options, keep_missing=True)
        needed = [*self.columns, *self.past_covariates, *self.known_covariates]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise ValueError(f"{table.source}: no column(s) {missing}; the model needs them")
        table = self._filled_to_origin(table, options)
        first_row, origin = self._first_row(table), self._origin(table)
        picked = [table.columns.index(c) for c in self.columns]
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.asarray(table.values[:origin, picked], dtype=np.float32)
        self._refuse(
            table,
            values[first_row:],
            first_row,
            "missing or not finite (in float32), and the model reads it; fill missing values "
            "with --nan-policy (nan_policy in Python)",
        )
        # Scaled in float64, then checked to fit in float32, the model's dtype.
        scaled = (values[first_row:].astype(np.float64) - self.mean) / self.scale
        fits = np.where(np.abs(scaled) <= np.finfo(np.float32).max, scaled, np.inf)
        self._refuse(table, fits, first_row, "outside what float32 holds once scaled")
        warn_far_outside(str(table.source), self.columns, scaled, "the forecast")
        return table, scaled.astype(np.float32)

    def _origin(self, table: TimeSeriesTable) -> int:
        """The row after the last one the forecast reads: the table's end, or, for a model
        that reads known covariates, the row after the target's last value (the rows after
        it carry the known covariates of the horizon)."""
        if not self.known_covariates:
            return len(table)
        picked = table.values[:, [table.columns.index(c) for c in self.columns]]
        observed = np.flatnonzero(np.isfinite(picked).any(axis=1))
        if not len(observed):
            raise ValueError(f"{table.source}: no row has a value of {self.columns}")
        return int(observed[-1]) + 1

    def _filled_to_origin(
        self, table: TimeSeriesTable, options: ReadOptions | None
    ) -> TimeSeriesTable:
        """A table read with its missing values kept for a model that reads known covariates,
        filled up to the origin by the fill policy chosen (the rows after it are left as they
        are: their empty targets mark the horizon)."""
        policy = (options or self.trained_options).nan_policy
        if not self.known_covariates or policy in ("error", "keep"):
            return table
        origin = self._origin(table)
        values = table.values.copy()
        values[:origin] = fill_missing(values[:origin], table.columns,
                                       table.timestamps[:origin], table.source, policy)  # fmt: skip
        return dataclasses.replace(table, values=values)

    def _first_row(self, table: TimeSeriesTable) -> int:
        """The first row the model reads: the last ``lookback`` rows' before the origin."""
        origin = self._origin(table)
        if origin < self.lookback:
            raise ValueError(
                f"{table.source}: {origin} rows; the model reads the last {self.lookback}"
            )
        return origin - self.lookback

    @property
    def reads_covariates(self) -> bool:
        """Whether the model reads covariates (past, known or calendar)."""
        return bool(self.past_covariates or self.known_covariates or self.calendar)

    def _scaled_covariates(
        self, table: TimeSeriesTable, names: list[str], start: int, stop: int
    ) -> np.ndarray:
        """The covariates ``names`` of the table's rows ``start..stop`` on their training
        scale, ``[stop - start, len(names)]`` float64; a missing value is refused."""
        order = [*self.past_covariates, *self.known_covariates]
        picked = [order.index(n) for n in names]
        raw = table.values[start:stop, [table.columns.index(n) for n in names]].astype(np.float64)
        self._refuse(table, raw, start, "missing or not finite, and the model reads it", names)
        return (raw - self.covariate_mean[picked]) / self.covariate_scale[picked]

    def _covariates(self, table: TimeSeriesTable) -> tuple[np.ndarray, ...]:
        """The scaled covariates the model reads with the rows it reads (from
        :meth:`_first_row`, ``N`` rows to the origin): ``(past [N, Cp], known [N + H, Ck +
        Cc])``, or ``()`` for a model without any. Refused in one line: a missing value in the
        rows read, or known covariates that stop before the horizon's end (naming the column
        and the last row present)."""
        if not self.reads_covariates:
            return ()
        origin, horizon = self._origin(table), self.horizon
        first, end = self._first_row(table), origin + horizon
        for name in self.known_covariates:
            present = np.flatnonzero(np.isfinite(table.values[:end, table.columns.index(name)]))
            last = int(present[-1]) + 1 if len(present) else 0
            if last < end:
                raise ValueError(
                    f"{table.source}: column {name!r} is known over the horizon, so the model "
                    f"reads it on the {horizon} rows after the target's last value (data row "
                    f"{origin}), data rows {origin + 1}..{end}; its values stop at data row "
                    f"{last} of {len(table)} (fill every row up to {end})"
                )
        past = self._scaled_covariates(table, self.past_covariates, first, origin)
        known = (  # no known data covariate: no future rows to read (they may be absent)
            self._scaled_covariates(table, self.known_covariates, first, end)
            if self.known_covariates
            else np.zeros((end - first, 0))
        )
        stamps = table.timestamps[first:end]
        if len(stamps) < end - first:  # no future rows: the horizon's steps by the frequency
            freq = table.freq or self.meta.get("freq")
            ahead = pd.date_range(table.timestamps[origin - 1], periods=horizon + 1, freq=freq)
            stamps = stamps.append(ahead[1:])
        calendar = calendar_features(stamps, self.calendar)
        known = np.concatenate([known, calendar], axis=1)
        return past.astype(np.float32), known.astype(np.float32)

    def covariate_columns(self, table: TimeSeriesTable) -> tuple[np.ndarray, np.ndarray]:
        """Every row's scaled covariates, as a window dataset serves them: ``past [N, Cp]``
        and ``known [N, Ck + Cc]`` (calendar features last); a missing value is refused."""
        rows = len(table)
        past = self._scaled_covariates(table, self.past_covariates, 0, rows)
        known = self._scaled_covariates(table, self.known_covariates, 0, rows)
        calendar = calendar_features(table.timestamps, self.calendar)
        return past.astype(np.float32), np.concatenate([known, calendar], axis=1).astype(np.float32)

    def _forecast(self, window: np.ndarray, covariates: tuple[np.ndarray, ...] = ()) -> np.ndarray:
        """The scaled forecast ``[H, C]`` after the scaled rows ``window [N, C]`` it reads
        (with the window's covariates, :meth:`_covariates`)."""
        assert isinstance(self.model, TitansForecaster)
        inputs = [torch.from_numpy(a)[None] for a in (window, *covariates)]
        return self.model.predict(*inputs)[0].numpy()

    def _refuse(
        self,
        table: TimeSeriesTable,
        rows: np.ndarray,
        offset: int,
        what: str,
        names: list[str] | None = None,
    ) -> None:
        """Refuse the first non-finite cell of ``rows`` (the columns ``names``, the model's
        targets by default, of the table's rows from ``offset``), naming its column, row and
        value."""
        bad = np.argwhere(~np.isfinite(rows))
        if not len(bad):
            return
        row, column = int(bad[0][0]) + offset, int(bad[0][1])
        name = (names or self.columns)[column]
        stamp = f" ({table.timestamps[row]})" if len(table.timestamps) > row else ""
        value = float(table.values[row, table.columns.index(name)])
        raise ValueError(
            f"{table.source}: column {name!r}, data row {row + 1}{stamp}: {value!r} is {what} "
            f"({len(bad)} such value(s))"
        )

    def predict(
        self, series: str | Path | TimeSeriesTable, options: ReadOptions | None = None
    ) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the last row of a series file (CSV/Parquet with
        the model's columns, read as :meth:`read` says): a table with a ``step`` (1..H), a
        ``timestamp`` when the series' frequency is known, and one column per channel."""
        table, window = self._window(series, options)
        with np.errstate(over="ignore", invalid="ignore"):
            forecast = self._forecast(window, self._covariates(table)) * self.scale + self.mean
        bad = np.asarray(~np.isfinite(forecast).all(axis=0), dtype=bool)
        if bad.any():
            names = ", ".join(repr(c) for c, b in zip(self.columns, bad, strict=True) if b)
            column = int(np.flatnonzero(bad)[0])
            value = forecast[~np.isfinite(forecast[:, column]), column][0]
            raise FloatingPointError(
                f"{table.source}: the forecast of column(s) {names} is not finite ({value}); "
                "is the input far outside the training data?"
            )
        out = pd.DataFrame(forecast, columns=self.columns)
        out.insert(0, "step", np.arange(1, self.horizon + 1))
        freq = table.freq or self.meta.get("freq")
        if freq:
            last = table.timestamps[self._origin(table) - 1]
            stamps = pd.date_range(last, periods=self.horizon + 1, freq=freq)
            out.insert(1, "timestamp", stamps[1:])
        return out

    def surprise(self, series: str | Path | TimeSeriesTable) -> np.ndarray:
        """The memories' surprise at each patch of the last window: ``[C', patches, layers,
        heads]`` (see :meth:`TitansForecaster.surprise`)."""
        table, window = self._window(series)
        assert isinstance(self.model, TitansForecaster)
        inputs = [torch.from_numpy(a)[None] for a in (window, *self._covariates(table))]
        trace = self.model.surprise(*inputs)[0]
        return _finite(trace.numpy(), f"{table.source}: the surprise of the last window")


class WholeHistoryForecaster(Forecaster):
    """A trained whole-history forecaster (:mod:`titans_sci.models.history_forecaster`): a
    series file in, streamed from its first row (its memory writing as it reads), the next
    ``horizon`` steps after its last row out, in the data's own units. Every row is read, so
    every row must be finite (fill missing values with ``nan_policy``). Its covariates are read
    from the same file as :class:`Forecaster`'s are, over every row (and the known ones over
    the ``horizon`` rows after the target's last value)."""

    def _first_row(self, table: TimeSeriesTable) -> int:
        if len(table) == 0:
            raise ValueError(f"{table.source}: no rows to read")
        return 0

    def _forecast(self, window: np.ndarray, covariates: tuple[np.ndarray, ...] = ()) -> np.ndarray:
        """The scaled forecast ``[H, C]`` after every row of ``window [T, C]``, streamed, with
        the covariates of those rows (``past [T, Cp]``, ``known [T + H, Ck + Cc]``; see
        :meth:`_covariates`), each channel's stream reading them."""
        assert isinstance(self.model, HistoryForecaster)
        series = torch.from_numpy(window).T.contiguous()  # [C, T]
        streams = None
        if covariates:
            past, known = covariates
            streams = series_covariates(past, known, len(series))
        origin = torch.tensor([len(window)])
        ((_, forecast),) = stream_forecasts(self.model, series, origin, covariates=streams)
        return forecast[:, 0].T.numpy()  # [H, C]

    def surprise(self, series: str | Path | TimeSeriesTable) -> np.ndarray:
        """The memories' surprise at each patch of the whole series: ``[C, patches, layers,
        heads]`` (see :meth:`HistoryForecaster.surprise`)."""
        table, window = self._window(series)
        assert isinstance(self.model, HistoryForecaster)
        trace, _ = self.model.surprise(torch.from_numpy(window).T.contiguous())
        return _finite(trace.numpy(), f"{table.source}: the surprise along the series")


class GenomeAnnotator(_Explains):
    """A trained genome annotator (:mod:`titans_sci.models.genome_annotator`): a genome in,
    its genes out as GFF3."""

    model: AnnotatorModule

    def __init__(self, model: AnnotatorModule, meta: dict[str, Any], folder: Path | None = None):
        self.model, self.meta, self.folder = model, meta, folder

    def _labels(self) -> tuple[list[str], int]:
        return list(LABELS), CDS_PLUS

    def annotate(
        self,
        path: str | Path,
        output: str | Path,
        piece: int = 1 << 16,
        progress: bool = True,
        allow_duplicate_ids: bool = False,
    ) -> int:
        """Write the genes (CDS with their introns) and RNA genes the model finds in every
        record of a sequence file (FASTA, plain or gzip; or GenBank) to the GFF3 file
        ``output``; returns how many. Each record is read ``piece`` bases at a time; its base
        codes (1 byte a base), logits (20 bytes) and the gene-structure decoder's labels and
        back-pointers (30 bytes) go to temporary files on disk, not to memory, so memory stays
        flat in the record's length. The model reads each record whole in both directions
        (:func:`~titans_sci.models.genome_annotator.stream_logits`); its genes are the valid
        gene structure its logits like best (:func:`~titans_sci.models.gene_structure.viterbi`);
        the GFF3 appears complete or not at all."""
        output = check_output(output, [path], [self.folder] if self.folder else [])
        patch = self.model.config.patch
        piece -= piece % patch
        if piece < patch:
            raise ValueError(f"piece={piece}: expected at least one patch ({patch} bases)")
        found, first = 0, True
        records = iter_pieces(path, piece, allow_duplicate_ids=allow_duplicate_ids)
        with (
            tempfile.TemporaryDirectory(prefix="titans-annotate-") as scratch,
            atomic_open(output) as sink,
            tqdm(unit=" bases", disable=not progress, delay=1.0) as bar,
        ):
            for name, pieces in itertools.groupby(records, key=lambda r: r[0]):
                codes_file = Path(scratch) / "codes.u8"
                with open(codes_file, "wb") as raw:
                    for _, _, text in pieces:
                        raw.write(base_codes(text).tobytes())
                length = codes_file.stat().st_size
                bar.set_description(name)
                read = np.memmap(codes_file, dtype=np.uint8, mode="r", shape=(length,))
                logits = np.memmap(Path(scratch) / "logits.f32", dtype=np.float32, mode="w+",
                                   shape=(length, self.model.config.num_labels))  # fmt: skip
                stream_logits(self.model, read, piece, out=logits, progress=bar.update)
                back = np.memmap(Path(scratch) / "back.u8", dtype=np.uint8, mode="w+",
                                 shape=(length, len(STATES)))  # fmt: skip
                decoded = np.memmap(Path(scratch) / "labels.u8", dtype=np.uint8, mode="w+",
                                    shape=(length,))  # fmt: skip
                viterbi(logits, read, back=back, out=decoded)
                labels = (decoded[a : a + piece] for a in range(0, length, piece))
                genes = features_from_runs(iter_runs(labels), prefix=f"{name}.g")
                counter = itertools.count()  # zip stops at the last gene, before counting on
                counted = (gene for gene, _ in zip(genes, counter, strict=False))
                write_gff3(sink, [(name, length, counted)], header=first)  # as they come
                found, first = found + next(counter), False
                del read, logits, back, decoded  # the memmaps, before their files go
        return found


def _finite(array: np.ndarray, what: str) -> np.ndarray:
    """``array``, refused with ``what`` in the message if it holds NaN or inf."""
    if not np.isfinite(array).all():
        raise FloatingPointError(
            f"{what} is not finite (NaN or inf); is the input far outside the training data?"
        )
    return array


def _token_batches(lengths: Sequence[int], size: int, budget: int) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` ranges of consecutive items: at most ``size`` items, and at most
    ``budget`` padded tokens (items times the longest) unless a range holds one item."""
    first = 0
    while first < len(lengths):
        stop, longest = first + 1, lengths[first]
        while stop < len(lengths) and stop - first < size:
            longer = max(longest, lengths[stop])
            if longer * (stop - first + 1) > budget:
                break
            stop, longest = stop + 1, longer
        yield first, stop
        first = stop


def _noting(
    pieces: Iterable[tuple[str, int, str, str, str]], pending: deque[tuple[int, str]]
) -> Iterator[tuple[str, str, str]]:
    """``(before, piece, after)`` of each piece of :func:`with_context`, noting its start and
    text in ``pending`` for whoever reads its result."""
    for _, start, before, piece, after in pieces:
        pending.append((start, piece))
        yield before, piece, after


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def warn_far_outside(source: str, columns: Sequence[str], scaled: np.ndarray, what: str) -> None:
    """Warn, naming the columns, where scaled inputs ``[N, C]`` lie more than
    :data:`FAR_OUTSIDE` training standard deviations from the training mean (``what``, e.g.
    "the forecast", is then an extrapolation)."""
    far = np.abs(scaled).max(axis=0) > FAR_OUTSIDE
    if far.any():
        names = ", ".join(repr(c) for c, f in zip(columns, far, strict=True) if f)
        warnings.warn(
            f"{source}: column(s) {names} lie more than {FAR_OUTSIDE:g} training standard "
            f"deviations from the training mean; {what} is an extrapolation",
            stacklevel=3,
        )


#: The predictor that wraps each kind of saved model ``load`` returns.
PREDICTORS: dict[type[nn.Module], Any] = {
    DNAClassifier: SequenceClassifier,
    TitansForecaster: Forecaster,
    HistoryForecaster: WholeHistoryForecaster,
    AnnotatorModule: GenomeAnnotator,
}
