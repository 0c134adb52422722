"""``titans-sci bench genomics``: every bundled genomic task, Titans entrants and both baselines,
in one command that resumes where it was stopped, and a leaderboard next to published numbers.

The suite is a queue of parts: a part is one seed of a GUE task (train, select on dev, test
once) or one fold of a Genomic Benchmarks set (5-fold cross-validation), for one entrant. The
queue runs in passes, so the table fills early: pass 1 is the first seed (or fold) of every
task, smallest training set first, then pass 2 the second, and so on. Each part is one
classification task of the task system, run in two pieces, the Titans model alone
(``<runs>/<task>_<entrant>_<config>_<part>_titans/``) and then, beside the first entrant, the
baselines (``..._baselines/``: the CNN, with the k-mer model), each stored when it finishes (a
model run alone gives its rows of the whole task's run, so the pieces change no number and each
fits in a shorter working session). Every piece runs with ``resume`` on: a killed suite, started
again with the same settings, skips every piece already in ``<out>/genomics.json`` and continues
the interrupted one from its last epoch checkpoint. A cell (task, model) keeps every part's test
and dev score, its time, machine, date and code version, and its mean and spread are over the
parts it holds. Changed settings give a new config hash, and a part of the new config replaces
the cell.

Entrants: a backbone variant (``lmm``, ``mag``, ``mac``, ``mal``) from scratch, or with
``:pretrained``, its trunk started from a pretrained DNA language model (``--pretrained``,
default the bundled ``tasks/pretrained/dna_lm``). The k-mer logistic regression and the CNN run
beside the first entrant, on the same splits.

The leaderboard (``<out>/genomics.md``, ``<out>/genomics_margins.png``) picks, per task, the
Titans entrant with the best **mean dev score** (never the test score) and sets its test number
against the better baseline's. Metric: MCC for GUE (as DNABERT-2 reports it), accuracy for
Genomic Benchmarks (as its authors report their CNN). The Genomic Benchmarks sets ship only
their test split here: they run stratified 5-fold cross-validation on it, and the table says
so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import math
import subprocess
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from titans_sci.config import Config, build, to_dict
from titans_sci.data.registry import list_datasets, load_manifest, sha256_of
from titans_sci.files import save_with
from titans_sci.modelfolder import WEIGHTS
from titans_sci.resources import tasks_dir
from titans_sci.suites import describe_machine
from titans_sci.suites.store import save
from titans_sci.tasks import ClassificationTask, parse_task, run, without_baselines
from titans_sci.tasks.kind import TITANS
from titans_sci.tasks.run_folder import AnotherRun
from titans_sci.version import code_version

BASELINES = ("kmer_lr", "cnn")
VARIANTS = ("lmm", "mag", "mac", "mal")


def published_numbers() -> dict[str, tuple[str, float]]:
    """``name -> (metric, value)`` of every bundled DNA data set whose manifest records a
    published number (``published`` in ``manifest.toml``, with its source): DNABERT-2's MCC on
    GUE, the Genomic Benchmarks authors' CNN accuracy."""
    return {
        m.name: (m.published.metric, m.published.value)
        for m in list_datasets(kind="dna")
        if m.published is not None
    }


@dataclass(frozen=True)
class Entrant:
    """A Titans model in the suite: a backbone ``variant``, from scratch or (``pretrained``)
    started from a pretrained DNA language model."""

    variant: str
    pretrained: bool = False

    @classmethod
    def parse(cls, text: str) -> Entrant:
        variant, _, suffix = text.partition(":")
        if variant not in VARIANTS or suffix not in ("", "pretrained"):
            raise ValueError(
                f"entrant {text!r}: expected a variant ({', '.join(VARIANTS)}), optionally "
                "followed by ':pretrained'"
            )
        return cls(variant, suffix == "pretrained")

    @property
    def label(self) -> str:
        return f"titans {self.variant}" + (" pretrained" if self.pretrained else "")


@dataclass(frozen=True)
class GenomicsSuite(Config):
    """What ``titans-sci bench genomics`` runs (its options, ``--help``): where to (``out``,
    ``runs``: the parts' run folders, default ``<out>/runs``), which tasks and Titans
    ``entrants`` (the baselines beside the first), the protocol (``seeds``, ``folds``), the
    budget (``epochs``, ``patience``, ``max_train_tokens``, ``batch_size``, ``lr``) and the
    model (``dim``, ``depth``, ``heads``, ``chunk``, ``dropout``, ``stem_kernel``, ``pool``,
    ``preset``), and how it runs (``threads``, ``shard``, ``compile``, ``max_eval`` for smoke
    runs, ``quiet``)."""

    out: str = "runs/bench_genomics"
    runs: str | None = None
    tasks: tuple[str, ...] = ()
    entrants: tuple[str, ...] = ("lmm", "lmm:pretrained")
    pretrained: str = str(tasks_dir() / "pretrained" / "dna_lm")
    baselines: bool = True
    seeds: tuple[int, ...] = (1, 2, 3)
    folds: int = 5
    epochs: int = 10
    patience: int = 3
    max_train_tokens: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    dim: int = 64
    depth: int = 2
    heads: int = 4
    chunk: int = 16
    dropout: float = 0.0
    stem_kernel: int = 9
    pool: str = "max"
    preset: str = "titans"
    threads: int = 1
    shard: tuple[int, int] = (1, 1)
    compile: bool = False
    max_eval: int = 0
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GenomicsSuite:
        """The suite of parsed command-line options (their names are this config's)."""
        known = {f.name for f in fields(cls)}
        data = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        return build(cls, {k: v for k, v in data.items() if k in known and v is not None},
                     "titans-sci bench genomics")  # fmt: skip


#: The suite's defaults.
DEFAULT = GenomicsSuite()


def metric_of(name: str) -> str:
    return "accuracy" if name.startswith("genomic_benchmarks/") else "mcc"


def train_limit(name: str, max_tokens: int, folds: int) -> int:
    """Training sequences per seed so that they hold about ``max_tokens`` bases (0: all)."""
    if not max_tokens:
        return 0
    splits = load_manifest(name).splits
    source = splits["train"] if "train" in splits else splits["test"]
    lengths = pd.read_csv(source.file, usecols=["sequence"])["sequence"].str.len()
    available = len(lengths) if "train" in splits else int(0.9 * len(lengths) * (folds - 1) / folds)
    limit = int(max_tokens // lengths.mean())
    return 0 if limit >= available else limit


def build_task(
    name: str, entrant: Entrant, suite: GenomicsSuite, baselines: bool
) -> ClassificationTask:
    """The task of data set ``name`` for ``entrant``, as a task file would give it."""
    test_only = name.startswith("genomic_benchmarks/")
    memory = {
        "preset": suite.preset,
        "num_heads": suite.heads,
        "head_dim": suite.dim // suite.heads,
        "chunk_size": suite.chunk,
    }
    training: dict[str, Any] = {
        "epochs": suite.epochs,
        "batch_size": suite.batch_size,
        "lr": suite.lr,
        "rc_augment": True,
    }
    if suite.patience:
        training["patience"] = suite.patience
    if suite.compile:
        training["compile"] = True
    if entrant.pretrained:
        training["init"] = str(suite.pretrained)
    task = parse_task(
        {
            "format": 2,
            "kind": "classification",
            "name": name.replace("/", "_"),
            "data": {
                "dataset": name,
                "max_train": train_limit(name, suite.max_train_tokens, suite.folds),
                "max_eval": suite.max_eval,
            },
            "model": {
                "stem_kernel": suite.stem_kernel,
                "pool": suite.pool,
                "dropout": suite.dropout,
                "backbone": {
                    "variant": entrant.variant,
                    "dim": suite.dim,
                    "depth": suite.depth,
                    "bidirectional": True,
                    "memory": memory,
                },
            },
            "training": training,
            "protocol": {
                "split": "kfold" if test_only else "train_dev_test",
                "folds": suite.folds,
                "seeds": suite.seeds[:1] if test_only else suite.seeds,
            },
            "baselines": {"kmer_lr": baselines, "cnn": baselines},
        },
        where=f"{name} ({entrant.label})",
    )
    assert isinstance(task, ClassificationTask)
    return task


def config_hash(task: ClassificationTask) -> str:
    """8 hex digits naming everything that decides a cell of ``task`` but its parts: its
    resolved config without the seeds (GUE) or the folds run (cross-validation, whose seed
    splits the folds and so stays) or ``training.compile``, with a pretrained model named by
    its weights' checksum rather than its path (the same cell wherever the checkout lies)."""
    config = to_dict(task)
    protocol = config["protocol"]
    protocol.pop("run_folds")
    if protocol["split"] != "kfold":
        protocol.pop("seeds")
    config["training"].pop("compile")  # how it runs, as the thread count: a part's fact
    if task.training.init is not None:
        config["training"]["init"] = pretrained_id(task.training.init)
    text = json.dumps(config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def pretrained_id(folder: str | Path) -> str:
    """The first 12 hex digits of a saved model's weights checksum."""
    return sha256_of(Path(folder) / WEIGHTS)[:12]


def budget(task: ClassificationTask) -> str:
    """One line with the cell's training budget."""
    training, backbone = task.training, task.model.backbone
    memory = backbone.memory
    train = "all" if not task.data.max_train else f"{task.data.max_train} sequences"
    text = (
        f"{training.epochs} epochs"
        + (f" (patience {training.patience})" if training.patience else "")
        + f", train {train}, batch {training.batch_size}, lr {training.lr}, dim {backbone.dim}, "
        f"depth {backbone.depth}, {memory.num_heads} heads, chunk {memory.chunk_size}, stem "
        f"{task.model.stem_kernel}, {task.model.pool} pool"
    )
    if task.model.dropout:
        text += f", head dropout {task.model.dropout}"
    if training.init:
        text += f", trunk from the pretrained model {pretrained_id(training.init)}"
    if task.data.max_eval:
        text += f", dev and test cut to {task.data.max_eval} sequences (a smoke run)"
    return text


#: The suite's default model and learning rate: a cell swept away from one says so in its label.
SWEEP: dict[str, float] = {
    key: getattr(DEFAULT, key) for key in ("dim", "depth", "heads", "chunk", "dropout", "lr")
}


def label_of(entrant: Entrant, suite: GenomicsSuite) -> str:
    """``entrant.label``, with every sweep setting that is not the default: ``titans lmm
    dim128 depth4 dropout0.1 lr0.003``."""
    tags = [
        f"{key}{getattr(suite, key)}"
        for key, value in SWEEP.items()
        if getattr(suite, key) != value
    ]
    return " ".join([entrant.label, *tags])


def parts_of(name: str, suite: GenomicsSuite) -> list[str]:
    """The parts of a cell of ``name``: ``seed1``, ``seed2``, ... (GUE) or ``fold0``, ...,
    ``fold4`` (a cross-validated Genomic Benchmarks set, with the first seed)."""
    if name.startswith("genomic_benchmarks/"):
        return [f"fold{k}" for k in range(suite.folds)]
    return [f"seed{seed}" for seed in suite.seeds]


def part_task(task: ClassificationTask, part: str) -> ClassificationTask:
    """``task`` cut to one part (``seed2``, ``fold0``)."""
    if part.startswith("fold"):
        protocol = replace(task.protocol, run_folds=(int(part.removeprefix("fold")),))
    else:
        protocol = replace(task.protocol, seeds=(int(part.removeprefix("seed")),))
    return replace(task, protocol=protocol)


def training_bases(name: str) -> int:
    """The bases a model trains on per epoch of ``name`` (its train split, else its test
    split): the queue runs the cheapest tasks of a pass first."""
    splits = load_manifest(name).splits
    source = splits["train"] if "train" in splits else splits["test"]
    return int(pd.read_csv(source.file, usecols=["sequence"])["sequence"].str.len().sum())


def queue(names: list[str], entrants: list[Entrant], suite: GenomicsSuite) -> list[tuple]:
    """``(name, entrant index, part)`` in the order they run: pass ``i`` is the ``i``-th part
    of every task (cheapest task first), every entrant of a task in turn."""
    names = sorted(names, key=training_bases)
    parts = {name: parts_of(name, suite) for name in names}
    passes = max(len(p) for p in parts.values())
    return [
        (name, i, parts[name][step])
        for step in range(passes)
        for name in names
        if step < len(parts[name])
        for i in range(len(entrants))
    ]


def source_commit() -> str:
    """The git commit of the package's checkout (``+changes`` when its tree differs from it),
    or the SHA-256 of its sources where it is not a git checkout (an installed wheel)."""
    here = Path(__file__).resolve().parents[2]

    def git(*words: str) -> str:
        return subprocess.run(
            ["git", "-C", str(here), *words], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "sources " + code_version()["source_sha256"][:12]
    return commit + ("+changes" if changed else "")


def part_entries(
    name: str,
    label: str,
    result: dict[str, Any],
    part: str,
    cell: dict[str, Any],
    facts: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The store entries (``"<task>|<model>"``) of one finished ``part`` of the Titans model
    ``label`` and of the baselines that ran beside it: the cell's description ``cell`` (config,
    budget, protocol, metric, parts planned) with the part's test and dev score (x 100) and
    ``facts`` (seconds, machine, date, code) under ``parts``."""
    metric = metric_of(name)
    entries = {}
    for model in dict.fromkeys(r["model"] for r in result["runs"]):
        model_label = label if model == "titans" else model
        (row,) = [r for r in result["runs"] if r["model"] == model]
        value, dev = row[metric], row.get("dev_score")
        if value is None or not math.isfinite(value):
            raise ValueError(f"{name} {model_label} {part}: {metric} is undefined")
        scores = {"test": 100 * value, "dev": None if dev is None else 100 * dev}
        entries[f"{name}|{model_label}"] = {**cell, "parts": {part: {**scores, **facts}}}
    return entries


def cell_protocol(protocol: str, part: str) -> str:
    """The protocol line of a cell, from the one of its ``part``'s run."""
    if part.startswith("fold"):
        return protocol.replace(f", folds [{part.removeprefix('fold')}] of them", "")
    return protocol.replace(f"seeds [{part.removeprefix('seed')}]", "one run per seed")


def merge_parts(stored: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The store's merge: ``new``'s parts join the stored cell of the same config (a part run
    again replaces its old value); a cell of another config is replaced. The cell's mean, std,
    n, dev, seconds, machine and date are then taken over its parts."""
    if stored is not None and stored.get("config") == new["config"]:
        old = stored.get("parts", {})
        if any("test" not in p for p in old.values()) and set(new["parts"]) - set(old):
            raise ValueError(
                f"the stored cell of config {new['config']} kept no per-part scores (it ran "
                "before cells kept them), so a part cannot join it; remove it from the store "
                "to run the cell again"
            )
        new = {**stored, **new, "parts": {**old, **new["parts"]}}
    return summarized(new)


def summarized(cell: dict[str, Any]) -> dict[str, Any]:
    """``cell`` with ``mean``/``std`` (sample std) of its parts' test scores, ``n``, the mean
    ``dev`` (``None`` for a baseline without one), total ``seconds`` and its ``machine``,
    ``date`` and ``code``, each listing the distinct values of its parts."""
    parts = [cell["parts"][k] for k in sorted(cell["parts"])]
    if any("test" not in p for p in parts):  # a cell from before parts kept their scores
        return cell
    test = np.array([p["test"] for p in parts])
    devs = [p["dev"] for p in parts if p["dev"] is not None]
    facts = {
        key: ", ".join(dict.fromkeys(str(p[key]) for p in parts))
        for key in ("machine", "date", "code")
    }
    return {
        **cell,
        "mean": float(test.mean()),
        "std": float(test.std(ddof=1)) if len(test) > 1 else 0.0,
        "n": len(parts),
        "dev": float(np.mean(devs)) if devs else None,
        "seconds": float(sum(p["seconds"] for p in parts)),
        **facts,
    }


def _read(store_path: Path) -> dict[str, dict]:
    return json.loads(store_path.read_text()) if store_path.exists() else {}


def run_suite(suite: GenomicsSuite) -> dict[str, dict]:
    """Run (or resume) every part of every (task, entrant) of ``suite`` in :func:`queue` order
    into ``suite.out``; returns the store."""
    out = Path(suite.out)
    runs = Path(suite.runs) if suite.runs else out / "runs"
    store_path, table_path = out / "genomics.json", out / "genomics.md"
    torch.set_num_threads(suite.threads)
    machine, code = describe_machine(suite.threads), source_commit()
    entrants = [Entrant.parse(e) for e in suite.entrants]
    known = [m.name for m in list_datasets(kind="dna")]
    unknown = [name for name in suite.tasks or () if name not in known]
    if unknown:
        raise ValueError(
            f"--tasks: no bundled DNA data set {unknown[0]!r} (known: {', '.join(known)})"
        )
    table = functools.partial(render, capped=_read(out / CAPPED))
    order = queue(list(suite.tasks or known), entrants, suite)
    shard, shards = suite.shard
    for name, i, part in order[shard - 1 :: shards]:
        baselines = suite.baselines and i == 0
        task = build_task(name, entrants[i], suite, baselines)
        digest = config_hash(task)  # of the whole task: its pieces are one cell's
        label = label_of(entrants[i], suite)
        alone = without_baselines(task)
        assert isinstance(alone, ClassificationTask)
        pieces = [("titans", alone, [TITANS], [label])]
        if baselines:
            pieces.append(("baselines", task, ["cnn"], list(BASELINES)))
        for piece, piece_task, models, labels in pieces:
            stored = _read(store_path)
            if all(
                stored.get(f"{name}|{m}", {}).get("config") == digest
                and part in stored[f"{name}|{m}"].get("parts", {})
                for m in labels
            ):
                print(f"{name} | {' + '.join(labels)} | {part}: done ({digest}), skipped",
                      flush=True)  # fmt: skip
                continue
            folder = f"{task.name}_{label.replace(' ', '_')}_{digest}_{part}_{piece}"
            one = replace(part_task(piece_task, part), name=folder)
            start = time.perf_counter()
            try:
                result = run(one, runs, resume=True, progress=not suite.quiet, models=models)
            except AnotherRun as refused:  # an interrupted piece of older code: the suite's own
                print(f"{name} | {label} | {part}: {refused}; started again", flush=True)
                result = run(one, runs, overwrite=True, progress=not suite.quiet, models=models)
            cell = {
                "config": digest,
                "metric": metric_of(name),
                "budget": budget(task),
                "protocol": cell_protocol(result["protocol"], part),
                "planned": len(parts_of(name, suite)),
            }
            facts = {
                "seconds": time.perf_counter() - start,
                "machine": machine + (", torch.compile" if suite.compile else ""),
                "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
                "code": code,
            }
            entries = part_entries(name, label, result, part, cell, facts)
            save(entries, store_path, table_path, table, merge=merge_parts)
            stored = _read(store_path)
            for key in entries:
                entry = stored[key]
                print(f"{key} {part}: {entry['parts'][part]['test']:.2f}; cell "
                      f"{entry['mean']:.2f} +- {entry['std']:.2f} (n={entry['n']})",
                      flush=True)  # fmt: skip
    store = _read(store_path)
    save({}, store_path, table_path, table)  # the table of the whole store, even if nothing ran
    plot_margins(store, out / "genomics_margins.png")
    return store


def chosen_on_dev(store: dict[str, dict], name: str) -> tuple[str, dict] | None:
    """The Titans cell of ``name`` with the best mean dev score: ``(label, entry)``."""
    cells = [
        (key.split("|", 1)[1], entry)
        for key, entry in store.items()
        if key.startswith(f"{name}|titans") and entry.get("dev") is not None
    ]
    return max(cells, key=lambda cell: cell[1]["dev"]) if cells else None


def margins(store: dict[str, dict]) -> dict[str, float]:
    """Per task with both: the dev-chosen Titans test mean minus the better baseline's."""
    out = {}
    for manifest in list_datasets(kind="dna"):
        chosen = chosen_on_dev(store, manifest.name)
        rivals = [store[f"{manifest.name}|{b}"]["mean"] for b in BASELINES
                  if f"{manifest.name}|{b}" in store]  # fmt: skip
        if chosen and rivals:
            out[manifest.name] = chosen[1]["mean"] - max(rivals)
    return out


def summary_lines(store: dict[str, dict]) -> list[str]:
    """Where Titans stands over what the store holds: tasks where the entrant chosen on dev
    beats both baselines, GUE tasks at or above DNABERT-2's published number, and each Genomic
    Benchmarks set against its published CNN."""
    names = [m.name for m in list_datasets(kind="dna")]
    ahead = margins(store)
    wins = sum(1 for v in ahead.values() if v > 0)
    chosen = {n: c for n in names if (c := chosen_on_dev(store, n))}
    numbers = published_numbers()
    gue = [n for n in names if n in numbers and n.startswith("gue/") and n in chosen]
    at_or_above = sum(1 for n in gue if chosen[n][1]["mean"] >= numbers[n][1])
    lines = [
        f"- Titans (chosen on dev) ahead of both baselines: **{wins} of {len(ahead)}** tasks with "
        f"both (of {len(names)}).",
        f"- At or above DNABERT-2: **{at_or_above} of {len(gue)}** GUE tasks with a published "
        "number.",
    ]
    if gue:
        ours = np.mean([chosen[n][1]["mean"] for n in gue])
        theirs = np.mean([numbers[n][1] for n in gue])
        lines.append(
            f"- Mean MCC over those {len(gue)} GUE tasks: Titans {ours:.2f}, DNABERT-2 "
            f"{theirs:.2f} ({ours - theirs:+.2f})."
        )
    for n in names:
        if n.startswith("genomic_benchmarks/") and n in chosen:
            lines.append(
                f"- {n}: Titans {chosen[n][1]['mean']:.2f} (5-fold CV) against the published "
                f"CNN's {numbers[n][1]:.1f}."
            )
    return lines


#: The table of an earlier, capped budget (3 epochs of at most 1,200 sequences), beside the
#: store: its rows are shown, marked as such, for tasks the store has no cell of yet.
CAPPED = "genomics_capped_2026-11.json"


def capped_lines(store: dict[str, dict], capped: dict[str, dict]) -> list[str]:
    """A section with the capped budget's Titans LMM and baselines for every task that has no
    cell at the full budget yet (empty when none is left)."""
    names = [m.name for m in list_datasets(kind="dna")]
    waiting = [n for n in names if not any(k.startswith(f"{n}|") for k in store)]
    models = ["titans lmm", *BASELINES]
    rows = [n for n in waiting if any(f"{n}|{m}" in capped for m in models)]
    if not rows:
        return []
    budgets = sorted({capped[f"{n}|{m}"]["budget"] for n in rows for m in models
                      if f"{n}|{m}" in capped})  # fmt: skip
    lines = [
        "## Rows still at the capped budget",
        "",
        f"Until their cells above are filled, these tasks show the capped budget's numbers "
        f"({CAPPED}: {'; '.join(budgets)}). They are not chosen on dev, counted in the summary "
        "or comparable with the full-budget cells.",
        "",
        "| task | " + " | ".join(f"{m} (capped)" for m in models) + " |",
        "| --- |" + " ---: |" * len(models),
    ]
    for name in rows:
        cells = [_cell(capped[f"{name}|{m}"]) if f"{name}|{m}" in capped else "-"
                 for m in models]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def render(store: dict[str, dict], capped: dict[str, dict] | None = None) -> str:
    """The leaderboard of ``store``, with the ``capped`` budget's rows (see :data:`CAPPED`)
    for the tasks the store does not hold yet."""
    names = [m.name for m in list_datasets(kind="dna")]
    numbers = published_numbers()
    titans = sorted({k.split("|", 1)[1] for k in store if "|titans" in k})
    shown = titans + [b for b in BASELINES if any(f"{n}|{b}" in store for n in names)]
    lines = [
        "# Genomic benchmarks: Titans vs baselines vs published",
        "",
        "Written by `titans-sci bench genomics` (it resumes; see `titans_sci/suites/genomics.py`)."
        " Metric: MCC x 100 (GUE, as DNABERT-2 reports it) or accuracy x 100 (Genomic "
        "Benchmarks). Mean +- std over seeds (GUE: train, select the epoch on dev, test once) "
        "or folds (Genomic Benchmarks: **only the test split is available here, so these are "
        "stratified 5-fold cross-validation numbers on it**, not comparable one to one with "
        "train-split numbers). `chosen` is the Titans entrant with the best mean **dev** score "
        "(never test); the last column is its test mean minus the better baseline's. `-`: not "
        "run yet; `(1 of 3)`: the seeds or folds a cell holds so far, while it is short of "
        "them. Each cell's budget, parts, machine, date and code version (the commit it ran "
        "at) are listed below the table.",
        "",
        "| task | published | " + " | ".join(shown) + " | chosen (dev) | chosen - baselines |",
        "| --- | ---: |" + " ---: |" * len(shown) + " --- | ---: |",
    ]
    ahead = margins(store)
    for name in names:
        label, value = numbers.get(name, ("-", None))
        published = "-" if value is None else f"{value:.2f} ({label})"
        cells = []
        for model in shown:
            entry = store.get(f"{name}|{model}")
            cells.append("-" if entry is None else _cell(entry))
        chosen = chosen_on_dev(store, name)
        cells.append("-" if chosen is None else chosen[0].removeprefix("titans "))
        cells.append(f"{ahead[name]:+.2f}" if name in ahead else "-")
        lines.append(f"| {name} | {published} | " + " | ".join(cells) + " |")
    lines += ["", "## Summary", "", *summary_lines(store), ""]
    lines += [*capped_lines(store, capped or {}), "## Budgets", ""]
    for key, entry in sorted(store.items()):
        dev = "" if entry.get("dev") is None else f", dev {entry['dev']:.2f}"
        parts = ", ".join(sorted(entry.get("parts", {})))
        lines.append(
            f"- {key}: n={entry['n']} ({parts}){dev}, {entry['budget']}; {entry['seconds']:.0f} s "
            f"wall; {entry['machine']}; {entry['date']}; config {entry.get('config', '-')}; code "
            f"{entry.get('code', '-')}"
        )
    return "\n".join(lines) + "\n"


def _cell(entry: dict[str, Any]) -> str:
    """``mean +- std``, with how many of the planned parts it holds while it is short of
    them: ``71.20 +- 0.00 (1 of 3)``."""
    text = f"{entry['mean']:.2f} +- {entry['std']:.2f}"
    planned = entry.get("planned", entry["n"])
    return text + (f" ({entry['n']} of {planned})" if entry["n"] < planned else "")


def plot_margins(store: dict[str, dict], path: Path) -> Path | None:
    """A bar per task: the dev-chosen Titans test mean minus the better baseline's."""
    from matplotlib.figure import Figure  # here: building the CLI's parser stays light

    ahead = margins(store)
    if not ahead:
        return None
    names = list(ahead)
    values = [ahead[n] for n in names]
    figure = Figure(figsize=(8, 0.35 * len(names) + 1.2))
    axes = figure.subplots()
    colors = ["tab:green" if v > 0 else "tab:red" for v in values]
    axes.barh(range(len(names)), values, color=colors)
    axes.set_yticks(range(len(names)), [n.replace("genomic_benchmarks/", "gb/") for n in names])
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set(xlabel="Titans (chosen on dev) minus the better baseline (MCC or accuracy x 100)")
    figure.tight_layout()
    return save_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options (``titans-sci bench genomics --help``)."""
    out = Path(DEFAULT.out)
    parser.add_argument("--out", type=Path, default=out, help="folder of the table and plot")
    parser.add_argument(
        "--runs", type=Path, help="where the parts' run folders go (default: <out>/runs)"
    )
    parser.add_argument(
        "--tasks", nargs="+", metavar="TASK", help="bundled DNA data sets (default: every one)"
    )
    parser.add_argument(
        "--entrants",
        nargs="+",
        default=list(DEFAULT.entrants),
        help="Titans models: a variant, optionally ':pretrained'",
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        default=Path(DEFAULT.pretrained),
        help="the pretrained DNA language model of ':pretrained' entrants",
    )
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="k-mer LR and the CNN beside the first entrant",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT.seeds))
    parser.add_argument("--folds", type=int, default=DEFAULT.folds)
    parser.add_argument("--epochs", type=int, default=DEFAULT.epochs)
    parser.add_argument(
        "--patience", type=int, default=DEFAULT.patience, help="0: no early stopping"
    )
    parser.add_argument(
        "--max-train-tokens",
        type=int,
        default=0,
        help="training bases per seed (0: the whole training set)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT.batch_size)
    parser.add_argument("--lr", type=float, default=DEFAULT.lr)
    parser.add_argument("--dim", type=int, default=DEFAULT.dim)
    parser.add_argument("--depth", type=int, default=DEFAULT.depth)
    parser.add_argument("--heads", type=int, default=DEFAULT.heads)
    parser.add_argument("--chunk", type=int, default=DEFAULT.chunk)
    parser.add_argument(
        "--dropout", type=float, default=DEFAULT.dropout, help="before the classifier's head"
    )
    parser.add_argument("--stem-kernel", type=int, default=DEFAULT.stem_kernel)
    parser.add_argument("--pool", default=DEFAULT.pool)
    parser.add_argument("--preset", default=DEFAULT.preset)
    parser.add_argument(
        "--threads", type=int, default=DEFAULT.threads, help="torch threads (default 1)"
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        default=DEFAULT.shard,
        metavar="K/N",
        help="run every N-th part of the queue from the K-th (two processes: 1/2 and 2/2)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="train through torch.compile (a part's fact, as the threads: same cell)",
    )
    parser.add_argument(
        "--max-eval",
        type=int,
        default=0,
        help="score at most this many dev and test sequences (smoke runs)",
    )


def _shard(text: str) -> tuple[int, int]:
    """``"K/N"`` with ``1 <= K <= N``."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected K/N with 1 <= K <= N")
    return int(k), int(n)
