"""The public API: save and load trained models, predict, and look at the memory's surprise.

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

import itertools
import json
import shutil
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from titans_sci.config import build
from titans_sci.data.dna import (
    NucleotideTokenizer,
    pad_batch,
    read_sequences,
    validate_sequence,
)
from titans_sci.data.fasta_stream import iter_pieces, iter_windows, with_context
from titans_sci.data.registry import sha256_of
from titans_sci.data.timeseries import TimeSeriesTable, read_series
from titans_sci.distributed import is_main
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier
from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster

WEIGHTS, CONFIG = "model.safetensors", "model.json"
#: 3: ``model.json`` holds the weights' SHA-256 (``weights_sha256``), checked on load.
FORMAT = 3
#: The longest record :meth:`SequenceClassifier.predict` scores whole. Measured on this
#: project's 2-core CPU machine with the genomics benchmark's classifier (LMM dim 64, depth 2,
#: both strands): inference takes about 19 KB per base, so 100,000 bases take about 1.9 GB.
MAX_RECORD = 100_000
#: Scaled inputs further than this many training standard deviations from the training mean
#: get a warning naming the column.
FAR_OUTSIDE = 100.0
#: What a forecaster's ``meta`` must hold to be used.
FORECASTER_META = ("columns", "scaler_mean", "scaler_scale")


def save_model(directory: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model`` (a :class:`DNAClassifier` or :class:`TitansForecaster`) and ``meta``
    (JSON-able facts a user of the model needs) to ``directory``, atomically: the folder
    appears complete or not at all, replacing an older one. ``model.json`` records the
    SHA-256 of the weights, which :func:`load` checks. Staging folders (``.<name>-*``) that a
    killed earlier save of the same folder left are removed first."""
    directory = Path(directory)
    if not is_main():  # under torchrun, process 0 writes
        return directory
    for stale in directory.parent.glob(f".{directory.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    kinds = {DNAClassifier: "dna_classifier", TitansForecaster: "forecaster"}
    if type(model) not in kinds:
        raise TypeError(f"cannot save a {type(model).__name__}")
    assert isinstance(model, (DNAClassifier, TitansForecaster))  # one of the kinds above
    info = {"kind": kinds[type(model)], "config": model.config.to_dict()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, staging / WEIGHTS)
        info["weights_sha256"] = sha256_of(staging / WEIGHTS)
        text = json.dumps({"format": FORMAT, **info, "meta": meta}, indent=2, allow_nan=False)
        (staging / CONFIG).write_text(text)
        if directory.exists():
            shutil.rmtree(directory)
        staging.replace(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def load(path: str | Path) -> SequenceClassifier | Forecaster:
    """A saved model (see :func:`save_model`), ready to predict; errors name the file."""
    path = Path(path)
    config_path = path / CONFIG
    try:
        info = json.loads(config_path.read_text())
        kind = info["kind"]
        # format 1 called a classifier's config its "settings"
        config = info["config"] if "config" in info else info["settings"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{config_path}: not a saved titans-sci model ({error})") from None
    if kind == "dna_classifier":
        model: nn.Module = DNAClassifier(build(ClassifierConfig, config, str(config_path)))
        wrapper: type = SequenceClassifier
    elif kind == "forecaster":
        model = TitansForecaster(build(ForecasterConfig, config, str(config_path)))
        wrapper = Forecaster
    else:
        raise ValueError(f"{config_path}: unknown model kind {kind!r}")
    meta = info.get("meta", {})
    if kind == "forecaster":
        missing = [key for key in FORECASTER_META if key not in meta]
        if missing:
            raise ValueError(
                f"{config_path}: meta has no {', '.join(missing)}; a forecaster needs its "
                "columns and training scaler (re-save the model with them)"
            )
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ValueError(f"{weights}: no such file; a saved model holds {WEIGHTS} and {CONFIG}")
    expected = info.get("weights_sha256")  # formats 1 and 2 did not record it
    if expected is not None and sha256_of(weights) != expected:
        raise ValueError(
            f"{weights}: the weights do not match the checksum in {CONFIG} (a corrupt, "
            "truncated or changed file); copy the model again or re-train it"
        )
    try:
        model.load_state_dict(load_file(weights))
    except (OSError, RuntimeError, SafetensorError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
        raise ValueError(
            f"{weights}: these weights do not fit the model in {CONFIG}: {first}"
        ) from None
    return wrapper(model.eval(), meta)


class SequenceClassifier:
    """A trained DNA classifier: sequences in, class probabilities (both strands) out."""

    def __init__(self, model: DNAClassifier, meta: dict[str, Any]) -> None:
        self.model, self.meta = model, meta
        self.tokenizer = NucleotideTokenizer()

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
        most probable class as ``prediction``. A record longer than ``max_length`` bases is
        refused before any tensor is built (score long records with :meth:`predict_windows`
        or :meth:`stream_surprise`)."""
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
        for start in range(0, len(texts), batch_size):
            batch, mask = self._encode(texts[start : start + batch_size])
            probs.append(self.model.predict_proba(batch, mask))
        p = torch.cat(probs).numpy()
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
        with _atomic_csv(output) as sink, tqdm(unit=" windows", disable=not progress) as bar:
            for batch in _batches(windows, batch_size):
                ids, mask = self._encode([text for _, _, text in batch])
                probs = self.model.predict_proba(ids, mask).numpy()
                if header is None:
                    header = ["record", "start", "end"] + [f"p_{k}" for k in range(probs.shape[1])]
                    sink.write(",".join(header) + "\n")
                for (name, start, text), p in zip(batch, probs, strict=True):
                    cells = ",".join(f"{v:.6g}" for v in p)
                    sink.write(f"{name},{start},{start + len(text)},{cells}\n")
                sink.flush()
                written += len(batch)
                bar.update(len(batch))
        return written

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
        with _atomic_csv(output) as sink, tqdm(unit=" bases", disable=not progress) as bar:
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

    def surprise(self, sequence: str) -> np.ndarray:
        """The memories' surprise at each base of ``sequence``: ``[T, layers, heads]``."""
        validate_sequence(sequence, source="sequence", record="seq1")
        ids, _ = self._encode([sequence])
        return self.model.surprise(ids)[0].numpy()


class Forecaster:
    """A trained forecaster: the last ``lookback`` rows of a series in, the next ``horizon``
    steps out, in the data's own units (the training scaler is applied and undone)."""

    def __init__(self, model: TitansForecaster, meta: dict[str, Any]) -> None:
        self.model, self.meta = model, meta
        self.columns: list[str] = meta["columns"]
        self.mean = np.asarray(meta["scaler_mean"], dtype=np.float32)
        self.scale = np.asarray(meta["scaler_scale"], dtype=np.float32)

    @property
    def lookback(self) -> int:
        return self.model.config.lookback

    @property
    def horizon(self) -> int:
        return self.model.config.horizon

    def _window(self, series: str | Path | TimeSeriesTable) -> tuple[TimeSeriesTable, np.ndarray]:
        table = (
            series
            if isinstance(series, TimeSeriesTable)
            else read_series(series, self.meta.get("date_column", "date"), self.columns)
        )
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise ValueError(f"{table.source}: no column(s) {missing}; the model needs them")
        if len(table) < self.lookback:
            raise ValueError(
                f"{table.source}: {len(table)} rows; the model reads the last {self.lookback}"
            )
        values = table.values[:, [table.columns.index(c) for c in self.columns]]
        window = (values[-self.lookback :] - self.mean) / self.scale
        first_row = len(table) - self.lookback
        bad = np.argwhere(~np.isfinite(window.astype(np.float32)))
        if len(bad):
            row, column = bad[0]
            raise ValueError(
                f"{table.source}: column {self.columns[column]!r}, row {first_row + row + 1}: "
                f"{values[first_row + row, column]!r} is outside what float32 holds once scaled"
            )
        far = np.abs(window).max(axis=0) > FAR_OUTSIDE
        if far.any():
            names = ", ".join(repr(c) for c, f in zip(self.columns, far, strict=True) if f)
            warnings.warn(
                f"{table.source}: column(s) {names} lie more than {FAR_OUTSIDE:g} training "
                "standard deviations from the training mean; the forecast is an extrapolation",
                stacklevel=3,
            )
        return table, window

    def predict(self, series: str | Path | TimeSeriesTable) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the last row of a series file (CSV/Parquet with
        the model's columns): a table with a ``step`` (1..H), a ``timestamp`` when the series'
        frequency is known, and one column per channel."""
        table, window = self._window(series)
        x = torch.from_numpy(window.astype(np.float32))[None]
        forecast = self.model.predict(x)[0].numpy() * self.scale + self.mean
        bad = ~np.isfinite(forecast).all(axis=0)
        if bad.any():
            names = ", ".join(repr(c) for c, b in zip(self.columns, bad, strict=True) if b)
            raise FloatingPointError(
                f"{table.source}: the forecast of column(s) {names} is not finite; is the input "
                "far outside the training data?"
            )
        out = pd.DataFrame(forecast, columns=self.columns)
        out.insert(0, "step", np.arange(1, self.horizon + 1))
        freq = table.freq or self.meta.get("freq")
        if freq:
            stamps = pd.date_range(table.timestamps[-1], periods=self.horizon + 1, freq=freq)
            out.insert(1, "timestamp", stamps[1:])
        return out

    def surprise(self, series: str | Path | TimeSeriesTable) -> np.ndarray:
        """The memories' surprise at each patch of the last window: ``[C', patches, layers,
        heads]`` (see :meth:`TitansForecaster.surprise`)."""
        _, window = self._window(series)
        return self.model.surprise(torch.from_numpy(window.astype(np.float32))[None])[0].numpy()


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


@contextmanager
def _atomic_csv(output: str | Path) -> Iterator[TextIO]:
    """A text file written under a temporary name and renamed to ``output`` once complete; on
    an error the partial file is removed."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as sink:
            yield sink
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(output)
