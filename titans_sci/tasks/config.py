"""The task config tree: one frozen dataclass per table of a task file, every default here.

A task file (``tasks/*.toml``) is a :class:`ClassificationTask` or a :class:`ForecastTask`,
told apart by its ``kind``::

    format = 2                          # the task file format this reader takes
    kind = "forecasting"                # or "classification"
    name = "forecast_etth1"             # the run folder's name: letters, digits, _ . -

    [data]                              # SequenceData or SeriesData
    dataset = "ett/ETTh1"

    [model]                             # ForecasterConfig or ClassifierConfig (models/)
    lookback = 96
    patch_len = 16

    [model.backbone]                    # any backbone config, by its variant
    variant = "lmm"
    dim = 64
    memory = { preset = "titans", num_heads = 4, head_dim = 16, chunk_size = 4 }

    [training]                          # ClassificationTraining or ForecastTraining
    epochs = 20

    [protocol]                          # seeds, horizons or folds
    horizons = [96, 192, 336, 720]

    [baselines]                         # which baselines run beside the Titans model
    last_value = true

The model table is the model's own config (:class:`~titans_sci.models.forecaster.
ForecasterConfig`, :class:`~titans_sci.models.dna_classifier.ClassifierConfig`); what the data
decide (a forecaster's ``horizon`` and ``channels``, a classifier's ``num_classes``) is filled in
by the task for each run. Types come from the annotations (:func:`titans_sci.config.build`);
every mistake is one line naming the file and the key.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from titans_sci.config import Config, build, tagged
from titans_sci.data.covariates import CovariateColumns
from titans_sci.data.timeseries import ReadOptions
from titans_sci.models.dna_classifier import ClassifierConfig
from titans_sci.models.dna_lm import DNALMConfig
from titans_sci.models.forecaster import ForecasterConfig, LossUnits
from titans_sci.models.genome_annotator import AnnotatorConfig
from titans_sci.models.history_forecaster import HistoryForecasterConfig
from titans_sci.train import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The task file format this version reads.
FORMAT = 2

#: A task name is a run folder's name: no path separators, no leading dot.
TaskName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


@dataclass(frozen=True)
class SequenceData(Config):
    """Labelled DNA sequences: a bundled ``dataset`` (``titans_sci.data.registry``) or the
    user's ``train``/``dev``/``test`` files (FASTA, FASTQ, GenBank, CSV; paths relative to the
    task file). ``max_train`` > 0 keeps a seeded random subset of the training sequences;
    ``max_eval`` > 0 scores a seeded random subset of at most that many dev and test sequences
    (for smoke runs; reported numbers use 0, every sequence)."""

    dataset: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    max_train: int = 0
    max_eval: int = 0

    def __post_init__(self) -> None:
        files = (self.train, self.dev, self.test)
        if (self.dataset is None) == all(f is None for f in files):
            raise ValueError("give either dataset or train/dev/test files")
        _non_negative(self, "max_train", "max_eval")


@dataclass(frozen=True)
class SeriesData(Config):
    """A multivariate series: a bundled ``dataset`` or a CSV/Parquet ``file`` (relative to the
    task file) with its ``date_column`` and a ``split_rule`` (``ratio_70_10_20``,
    ``ett_hour``, ``ett_minute``; a bundled set has its own). ``columns``: the channels (empty:
    every numeric column). ``max_eval`` > 0 scores at most that many evenly spaced validation
    and test windows (for smoke runs; reported numbers use 0, every window). ``read``: how to
    read a ``file`` where it does not say (:class:`~titans_sci.data.timeseries.ReadOptions`:
    ``date_format``, ``nan_policy``, ``gaps``). Covariates (:mod:`titans_sci.data.covariates`),
    read beside the target columns and never forecast: ``known_covariates`` (known over the
    horizon, e.g. day-ahead forecasts), ``past_covariates`` (known up to the origin only) and
    ``calendar`` features derived from the timestamps by name (``hour_of_day``,
    ``day_of_week``, ...); missing values follow ``read.nan_policy``, as the target's do."""

    dataset: str | None = None
    file: str | None = None
    date_column: str = "date"
    split_rule: str | None = None
    columns: tuple[str, ...] = ()
    max_eval: int = 0
    read: ReadOptions = field(default_factory=ReadOptions)
    known_covariates: tuple[str, ...] = ()
    past_covariates: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.file is None):
            raise ValueError("give exactly one of dataset or file")
        if self.file is not None and self.split_rule is None:
            raise ValueError("a file needs split_rule (ratio_70_10_20, ett_hour, ...)")
        if self.dataset is not None and self.read != ReadOptions():
            raise ValueError("read options are for a file; a bundled dataset reads as it ships")
        _non_negative(self, "max_eval")
        both = sorted(set(self.columns) & {*self.known_covariates, *self.past_covariates})
        if both:
            raise ValueError(f"column {both[0]!r} is both a target (columns) and a covariate")
        CovariateColumns(self.past_covariates, self.known_covariates, self.calendar)  # checks

    @property
    def covariates(self) -> CovariateColumns:
        """The covariate columns and calendar features the task names."""
        return CovariateColumns(self.past_covariates, self.known_covariates, self.calendar)


@dataclass(frozen=True)
class GenomeData(Config):
    """Annotated chromosomes: a bundled ``genome`` (a data set of kind ``"genome"``,
    ``titans_sci.data.registry``) or the user's ``files`` (GenBank; or one FASTA file with its
    ``gff3``; relative to the task file). ``train``, ``dev`` and ``test`` name the chromosomes
    of each split, by record id or, for a file that holds one record, by the file's name
    without its suffixes (``chr14`` for ``chr14.gb.gz``); an empty ``train`` is every
    chromosome that is in neither of the others. ``max_train`` and ``max_eval`` > 0 keep the
    first that many bases of each training and of each dev and test chromosome (smoke runs;
    reported numbers use 0, whole chromosomes)."""

    genome: str | None = None
    files: tuple[str, ...] = ()
    gff3: str | None = None
    train: tuple[str, ...] = ()
    dev: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    max_train: int = 0
    max_eval: int = 0

    def __post_init__(self) -> None:
        if (self.genome is None) == (not self.files):
            raise ValueError("give either genome or files")
        if self.gff3 is not None and len(self.files) != 1:
            raise ValueError("gff3 annotates one FASTA file: give files = [that file]")
        if not self.dev or not self.test:
            raise ValueError("name the dev and the test chromosomes (dev = [...], test = [...])")
        for key in ("train", "dev", "test"):
            _distinct(self, key)
        named = [*self.train, *self.dev, *self.test]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise ValueError(f"chromosome {twice[0]!r} is in two splits")
        _non_negative(self, "max_train", "max_eval")


@dataclass(frozen=True)
class ClassificationTraining(TrainConfig):
    """:class:`~titans_sci.train.TrainConfig` and ``rc_augment``: replace each training
    sequence by its reverse complement with probability 1/2; ``init``: a pretrained DNA
    language model (the ``model`` folder of a pretraining run, relative to the task file)
    whose embedding, stem and backbone start the Titans classifier (its trunk config must be
    the classifier's)."""

    rc_augment: bool = True
    init: str | None = None


@dataclass(frozen=True)
class CorpusData(Config):
    """The corpus of a pretraining task: the training splits of every bundled DNA data set
    (``bundled``) and the user's sequence files (``files``: FASTA, a genome, FASTQ, GenBank,
    CSV; relative to the task file), the latter cut into ``window``-base pieces. Every piece
    that shares a 32-mer (either strand) with a bundled dev, test or cross-validated sequence is
    dropped (:mod:`titans_sci.data.pretraining`). ``held_out``: the share of the pieces kept
    apart as dev (checkpoint selection) and as test, each. ``max_eval`` > 0: at most that many
    dev and test pieces (smoke runs)."""

    bundled: bool = True
    files: tuple[str, ...] = ()
    window: int = 512
    held_out: float = 0.01
    max_eval: int = 0

    def __post_init__(self) -> None:
        if not self.bundled and not self.files:
            raise ValueError("an empty corpus: give files or keep bundled = true")
        if self.window < 16:
            raise ValueError(f"window={self.window}; expected >= 16 bases")
        if not 0 < self.held_out < 0.5:
            raise ValueError(f"held_out={self.held_out}; expected in (0, 0.5)")
        _non_negative(self, "max_eval")


@dataclass(frozen=True)
class PretrainTraining(TrainConfig):
    """:class:`~titans_sci.train.TrainConfig` with an epoch of ``steps_per_epoch`` batches
    drawn at random from the corpus (a checkpoint and a dev score after each), and the
    ``mask_rate`` of bases masked for the masked objective."""

    steps_per_epoch: int = 300
    mask_rate: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={self.steps_per_epoch}; expected >= 1")
        if not 0 < self.mask_rate < 1:
            raise ValueError(f"mask_rate={self.mask_rate}; expected in (0, 1)")


@dataclass(frozen=True)
class ForecastTraining(TrainConfig):
    """:class:`~titans_sci.train.TrainConfig` and: ``windows_per_epoch`` > 0, a fresh random
    subset of that many training windows per epoch; ``val_stride``, model selection on every
    k-th validation window; ``loss_units``, ``"data"`` (the scaled data's units, the metric's)
    or ``"window"`` (each window's own instance-normalised units)."""

    windows_per_epoch: int = 0
    val_stride: int = 1
    loss_units: LossUnits = "data"

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "windows_per_epoch")
        if self.val_stride < 1:
            raise ValueError(f"val_stride={self.val_stride}; expected >= 1")


@dataclass(frozen=True)
class HistoryTraining(TrainConfig):
    """:class:`~titans_sci.train.TrainConfig` for whole-history forecasting: ``stretch``
    steps of the training stream per gradient step (a multiple of the model's ``patch_len``;
    gradients reach back that far, the memory's state is carried across). ``batch_size`` is
    not used: a batch is one stretch of every channel's stream. ``stages``:
    ``"window_then_memory"`` trains the window's linear map first (the memory branch at zero),
    then the memory's branch with the window path fixed, each stage with its own epochs,
    patience and selection on validation; ``"joint"`` trains everything at once."""

    stretch: int = 512
    stages: Literal["window_then_memory", "joint"] = "window_then_memory"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stretch < 1:
            raise ValueError(f"stretch={self.stretch}; expected >= 1")


@dataclass(frozen=True)
class AnnotationTraining(TrainConfig):
    """:class:`~titans_sci.train.TrainConfig` for genome annotation: a gradient step reads one
    ``stretch`` of bases of a training chromosome (a multiple of the model's ``patch``) in both
    directions, each reading starting from its state at the stretch's end nearest it (carried
    from the rest of the chromosome by a pass without gradients at the start of every epoch);
    gradients reach back one stretch. ``batch_size`` is not used. An epoch is every stretch of
    every training chromosome once, in a random order. ``stages``: ``"local_then_memory"``
    trains the Titans model without its memory first (the memory layers' output at zero), then
    every parameter, each stage with its own epochs, patience and selection on dev (the
    baselines train in one stage); ``"joint"`` trains everything at once. ``memory_lr``: the
    second stage's learning rate. A fresh AdamW at the first stage's 2e-3 knocked the trained
    local model off (on two training chromosomes, from its first checkpoint: the loss of 25
    stretches rose from 0.10 to 0.64, and one whole epoch at that rate fell to dev CDS F1 0.02);
    at 2e-4 the same stretches stayed at the local model's loss
    (``benchmarks/probe_annotation_learning.py --from-local``)."""

    stretch: int = 32768
    stages: Literal["local_then_memory", "joint"] = "local_then_memory"
    memory_lr: float = 2e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stretch < 1:
            raise ValueError(f"stretch={self.stretch}; expected >= 1")
        if not self.memory_lr > 0:
            raise ValueError(f"memory_lr={self.memory_lr}; expected > 0")


def _distinct(config: Any, key: str) -> None:
    """Refuse a list that names a value twice (it would run the same thing twice and report a
    spread of zero over the copies)."""
    values = list(getattr(config, key))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{key}={values} names {repeated[0]} more than once")


@dataclass(frozen=True)
class ClassificationProtocol(Config):
    """``split = "train_dev_test"``: train, keep the epoch with the best dev accuracy, test
    once, for every seed. ``"kfold"``: stratified ``folds``-fold cross-validation on the only
    split (test, else train), a seeded 10% of each training part as dev, with the first
    seed; ``run_folds`` runs only those folds (numbered from 0; empty: every fold), so the
    folds of one cross-validation can be run apart and their rows put together."""

    split: Literal["train_dev_test", "kfold"] = "train_dev_test"
    folds: int = 5
    seeds: tuple[int, ...] = (1,)
    run_folds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty")
        _distinct(self, "seeds")
        if self.folds < 2:
            raise ValueError(f"folds={self.folds}; expected >= 2")
        if self.split == "kfold" and len(self.seeds) > 1:
            raise ValueError(
                f"seeds={list(self.seeds)}: a kfold cross-validation runs with one seed (it "
                "splits the folds); give seeds = [n], or one task per seed"
            )
        if self.run_folds and self.split != "kfold":
            raise ValueError(f"run_folds={list(self.run_folds)} needs split = 'kfold'")
        outside = [f for f in self.run_folds if not 0 <= f < self.folds]
        if outside:
            raise ValueError(f"run_folds: fold {outside[0]} is not in 0..{self.folds - 1}")
        if len(set(self.run_folds)) < len(self.run_folds):
            raise ValueError(f"run_folds={list(self.run_folds)} names a fold twice")


@dataclass(frozen=True)
class PretrainProtocol(Config):
    """One pretraining run per seed (the seed also splits the corpus)."""

    seeds: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty")
        _distinct(self, "seeds")


@dataclass(frozen=True)
class ForecastProtocol(Config):
    """One model per horizon and seed; the lookback is the model's."""

    horizons: tuple[int, ...] = (96, 192, 336, 720)
    seeds: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty")
        if not self.horizons or min(self.horizons) < 1:
            raise ValueError(f"horizons={list(self.horizons)}; expected ints >= 1")
        _distinct(self, "seeds")
        _distinct(self, "horizons")


@dataclass(frozen=True)
class AnnotationProtocol(Config):
    """A model per seed, trained on the training chromosomes, selected on the dev ones (CDS
    base-level F1), scored once on the test ones. ``reset_every``: the Titans model is also
    scored with its memory reset every that many bases (multiples of the patch), the context
    curve beside the whole chromosome."""

    seeds: tuple[int, ...] = (1,)
    reset_every: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty")
        _distinct(self, "seeds")
        _distinct(self, "reset_every")
        if any(n < 1 for n in self.reset_every):
            raise ValueError(f"reset_every={list(self.reset_every)}; expected bases >= 1")


@dataclass(frozen=True)
class AnnotationBaselines(Config):
    """Beside the Titans annotator, on the same chromosomes: ``cnn`` (the annotator with
    dilated convolutions for its memory: a fixed receptive field) and ``attention`` (sliding-
    window attention for its memory), trained the same way; ``augustus``, the AUGUSTUS gene
    finder with ``augustus_species``' parameters (the ``augustus`` program must be installed)."""

    cnn: bool = True
    attention: bool = True
    augustus: bool = False
    augustus_species: str = "saccharomyces_cerevisiae_S288C"


@dataclass(frozen=True)
class ClassificationBaselines(Config):
    """``kmer_lr``: 4-mer frequencies and logistic regression (C chosen on dev); ``cnn``: a
    small CNN trained like the Titans model."""

    kmer_lr: bool = True
    cnn: bool = True


@dataclass(frozen=True)
class ForecastBaselines(Config):
    """``last_value``: the last observed value repeated, on the same test windows."""

    last_value: bool = True


@dataclass(frozen=True)
class ClassificationTask(Config):
    """Genomic sequence classification: the Titans classifier and baselines on the same
    splits."""

    name: TaskName
    data: SequenceData
    kind: Literal["classification"] = "classification"
    format: int = FORMAT
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    training: ClassificationTraining = field(default_factory=ClassificationTraining)
    protocol: ClassificationProtocol = field(default_factory=ClassificationProtocol)
    baselines: ClassificationBaselines = field(default_factory=ClassificationBaselines)


@dataclass(frozen=True)
class NoBaselines(Config):
    """A pretraining task has no baselines."""


@dataclass(frozen=True)
class PretrainTask(Config):
    """Self-supervised pretraining of a DNA language model (masked bases) on a corpus that
    holds no evaluation sequence; its saved model starts classifiers (``training.init``)."""

    name: TaskName
    data: CorpusData = field(default_factory=CorpusData)
    kind: Literal["pretraining"] = "pretraining"
    format: int = FORMAT
    model: DNALMConfig = field(default_factory=DNALMConfig)
    training: PretrainTraining = field(default_factory=PretrainTraining)
    protocol: PretrainProtocol = field(default_factory=PretrainProtocol)
    baselines: NoBaselines = field(default_factory=NoBaselines)


@dataclass(frozen=True)
class ForecastTask(Config):
    """Long-horizon forecasting: a Titans forecaster per horizon and seed, and baselines."""

    name: TaskName
    data: SeriesData
    kind: Literal["forecasting"] = "forecasting"
    format: int = FORMAT
    model: ForecasterConfig = field(default_factory=ForecasterConfig)
    training: ForecastTraining = field(default_factory=ForecastTraining)
    protocol: ForecastProtocol = field(default_factory=ForecastProtocol)
    baselines: ForecastBaselines = field(default_factory=ForecastBaselines)


@dataclass(frozen=True)
class HistoryForecastTask(Config):
    """Whole-history forecasting: per horizon and seed, a forecaster whose memory streams the
    whole series (train, validation and test in order) and keeps writing at test time, scored
    at the long-horizon protocol's test origins, with the memory writing and frozen."""

    name: TaskName
    data: SeriesData
    kind: Literal["history_forecasting"] = "history_forecasting"
    format: int = FORMAT
    model: HistoryForecasterConfig = field(default_factory=HistoryForecasterConfig)
    training: HistoryTraining = field(default_factory=HistoryTraining)
    protocol: ForecastProtocol = field(default_factory=ForecastProtocol)
    baselines: ForecastBaselines = field(default_factory=ForecastBaselines)


@dataclass(frozen=True)
class AnnotationTask(Config):
    """Genome annotation: a label for every base of whole chromosomes (coding on either strand,
    intron, RNA gene, intergenic), chromosome splits, the Titans annotator reading each
    chromosome in both directions with its memory carried, and baselines."""

    name: TaskName
    data: GenomeData
    kind: Literal["annotation"] = "annotation"
    format: int = FORMAT
    model: AnnotatorConfig = field(default_factory=AnnotatorConfig)
    training: AnnotationTraining = field(default_factory=AnnotationTraining)
    protocol: AnnotationProtocol = field(default_factory=AnnotationProtocol)
    baselines: AnnotationBaselines = field(default_factory=AnnotationBaselines)


def _non_negative(config: Any, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise ValueError(f"{name}={getattr(config, name)}; expected >= 0")


@dataclass(frozen=True)
class TaskKindEntry:
    """A registered task kind: its ``config`` class (whose ``kind`` field holds the kind's
    name) and its ``implementation``, ``"module:Class"`` of its
    :class:`~titans_sci.tasks.kind.TaskKind` (imported when a task of the kind runs, so this
    module never imports the kinds)."""

    config: type
    implementation: str


#: Every task kind by name: a new kind is one module and one :func:`register_task_kind` line.
TASK_KINDS: dict[str, TaskKindEntry] = {}


def register_task_kind(name: str, config: type, implementation: str) -> None:
    """Make ``kind = "<name>"`` in a task file build ``config`` and run ``implementation``."""
    if name in TASK_KINDS:
        raise ValueError(f"task kind {name!r} is registered already")
    TASK_KINDS[name] = TaskKindEntry(config, implementation)


register_task_kind(
    "classification", ClassificationTask, "titans_sci.tasks.classification:Classification"
)
register_task_kind("forecasting", ForecastTask, "titans_sci.tasks.forecasting:Forecasting")
register_task_kind("pretraining", PretrainTask, "titans_sci.tasks.pretraining:Pretraining")
register_task_kind(
    "history_forecasting",
    HistoryForecastTask,
    "titans_sci.tasks.history_forecasting:HistoryForecasting",
)

register_task_kind("annotation", AnnotationTask, "titans_sci.tasks.annotation:Annotation")

#: The built-in tasks (a type for annotations; a registered kind's config is a task too).
AnyTask = ClassificationTask | ForecastTask | PretrainTask | HistoryForecastTask | AnnotationTask


def task_type() -> Any:
    """Any registered task config, told apart by its ``kind`` (for :func:`config.build`)."""
    return tagged("kind", "classification", **{n: e.config for n, e in TASK_KINDS.items()})


def parse_task(data: dict[str, Any], where: str = "task") -> AnyTask:
    """A task from plain data (a TOML document's tables); errors name ``where`` and the key."""
    if "format" not in data:
        hint = " (a format-1 file: see tasks/README.md, 'Format 2')" if "task" in data else ""
        raise ValueError(f"{where}: no 'format' key; add format = {FORMAT} at the top{hint}")
    if data["format"] != FORMAT:
        raise ValueError(
            f"{where}: format = {data['format']!r}; this titans-sci reads format {FORMAT} "
            "(see tasks/README.md)"
        )
    kind = data.get("kind", "classification")
    if kind not in TASK_KINDS:
        known = ", ".join(map(repr, TASK_KINDS))
        raise ValueError(f"{where}: kind = {kind!r}; expected one of {known}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: missing key 'name' (the run folder's name)")
    return build(task_type(), data, where)


def load_task(path: str | Path, overrides: dict[str, Any] | None = None) -> AnyTask:
    """Read and check a task file. ``overrides``: dotted keys to set before checking, e.g.
    ``{"training.epochs": 1, "data.max_eval": 64}`` (``titans-sci run --set``). Paths written in
    the file (data files, ``training.init``) are relative to the file's folder; paths given as
    overrides are relative to the working directory, as on any command line."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: cannot read the task file: {error}") from None
    _resolve_paths(data, path.parent)
    for key, value in (overrides or {}).items():
        _set(data, key, value, path)
    return parse_task(data, str(path))


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """The relative paths of a task file's tables made relative to ``folder`` (in place)."""
    table = data.get("data")
    if isinstance(table, dict):
        for key in ("train", "dev", "test", "file", "gff3"):
            if isinstance(table.get(key), str):
                table[key] = str(folder / table[key])
        if isinstance(table.get("files"), list):
            table["files"] = [str(folder / f) if isinstance(f, str) else f for f in table["files"]]
    training = data.get("training")
    if isinstance(training, dict) and isinstance(training.get("init"), str):
        training["init"] = str(folder / training["init"])


def _set(data: dict[str, Any], key: str, value: Any, path: Path) -> None:
    *tables, last = key.split(".")
    where = data
    for table in tables:
        where = where.setdefault(table, {})
        if not isinstance(where, dict):
            raise ValueError(f"{path}: cannot set {key!r}: {table!r} is not a table")
    where[last] = value


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``titans-sci run --set``) as ``{key: value}`` for :func:`load_task`,
    each value read as a TOML value (``3``, ``1e-3``, ``true``, ``[96, 192]``; a bare word is a
    string)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. training.epochs=1")
        try:
            out[key.strip()] = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text
    return out
