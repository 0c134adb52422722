"""Genomic benchmark runs: Titans (LMM and a hybrid, from scratch) and the two baselines on every
bundled GUE task and both Genomic Benchmarks sets, next to published numbers.

Each (task, model) result is kept in ``benchmarks/results/genomics.json`` with its budget,
machine, date and wall time, so the table can be filled over several sessions; the markdown
table ``benchmarks/results/genomics.md`` is rebuilt from it after every task. Run from the
repository root::

    .venv/bin/python benchmarks/bench_genomics.py --tasks gue/prom/prom_core_tata --variants lmm mag

Each (task, variant) is one classification task of the task system (``titans_sci.tasks``: the
fields of a task file, built in code) run into ``--runs`` (default ``benchmarks/results/runs``)
as ``<task>_<variant>/``, replaced on every run unless ``--resume``. A smoke run that leaves the
committed tables alone::

    .venv/bin/python benchmarks/bench_genomics.py --tasks gue/prom/prom_core_tata --variants lmm \
        --seeds 1 --epochs 1 --max-train-tokens 7000 --max-eval 64 --runs /tmp/runs \
        --store /tmp/genomics.json --out /tmp/genomics.md

To keep one training run (one seed or fold of one model) near 10 minutes on 2 cores, each
epoch sees at most ``--max-train-tokens`` bases: larger training sets are subsampled (the same
seeded subsample for Titans and both baselines), and the table's budget lines say how many
sequences that was.

The metric is MCC for GUE (as DNABERT-2 reports it) and accuracy for Genomic Benchmarks (as its
authors report their CNN). Genomic Benchmarks sets ship only their test split here: those runs
use stratified 5-fold cross-validation on it, and the table says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import torch
from machine import describe
from store import save

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from titans_sci.data.registry import list_datasets, load_manifest  # noqa: E402
from titans_sci.tasks import ClassificationTask, parse_task, run  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"

# Published numbers: GUE MCC x 100 of DNABERT-2 (Zhou et al. 2024, pretrained, fine-tuned);
# Genomic Benchmarks accuracy x 100 of the benchmark authors' CNN (Gresova et al. 2023).
PUBLISHED = {
    "gue/prom/prom_core_all": ("DNABERT-2 MCC", 69.37),
    "gue/prom/prom_core_notata": ("DNABERT-2 MCC", 68.04),
    "gue/prom/prom_core_tata": ("DNABERT-2 MCC", 74.17),
    "gue/tf/0": ("DNABERT-2 MCC", 71.99),
    "gue/tf/1": ("DNABERT-2 MCC", 76.06),
    "gue/tf/2": ("DNABERT-2 MCC", 66.52),
    "gue/tf/3": ("DNABERT-2 MCC", 58.54),
    "gue/tf/4": ("DNABERT-2 MCC", 77.43),
    "gue/mouse/0": ("DNABERT-2 MCC", 56.76),
    "gue/mouse/2": ("DNABERT-2 MCC", 79.32),
    "gue/mouse/3": ("DNABERT-2 MCC", 66.47),
    "gue/mouse/4": ("DNABERT-2 MCC", 52.66),
    "genomic_benchmarks/human_nontata_promoters": ("CNN accuracy", 84.6),
    "genomic_benchmarks/human_enhancers_cohn": ("CNN accuracy", 69.5),
}


def metric_of(name: str) -> str:
    return "accuracy" if name.startswith("genomic_benchmarks/") else "mcc"


def train_limit(name: str, max_tokens: int, folds: int) -> int:
    """Training sequences per epoch so that they hold about ``max_tokens`` bases (0: all)."""
    splits = load_manifest(name).splits
    source = splits["train"] if "train" in splits else splits["test"]
    lengths = pd.read_csv(source.file, usecols=["sequence"])["sequence"].str.len()
    available = len(lengths) if "train" in splits else int(0.9 * len(lengths) * (folds - 1) / folds)
    limit = int(max_tokens // lengths.mean())
    return 0 if not max_tokens or limit >= available else limit


def build_task(
    name: str, variant: str, args: argparse.Namespace, baselines: bool, max_train: int
) -> ClassificationTask:
    """The task of data set ``name`` with Titans ``variant``, as a task file would give it."""
    test_only = name.startswith("genomic_benchmarks/")
    memory = {"preset": args.preset, "num_heads": 4, "head_dim": args.dim // 4, "chunk_size": 16}
    return parse_task(
        {
            "format": 2,
            "kind": "classification",
            "name": f"{name.replace('/', '_')}_{variant}",
            "data": {"dataset": name, "max_train": max_train, "max_eval": args.max_eval},
            "model": {
                "stem_kernel": args.stem_kernel,
                "pool": args.pool,
                "backbone": {
                    "variant": variant,
                    "dim": args.dim,
                    "depth": args.depth,
                    "bidirectional": True,
                    "memory": memory,
                },
            },
            "training": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "rc_augment": True,
            },
            "protocol": {
                "split": "kfold" if test_only else "train_dev_test",
                "folds": args.folds,
                "seeds": args.seeds[:1] if test_only else args.seeds,
            },
            "baselines": {"kmer_lr": baselines, "cnn": baselines},
        },
        where=f"{name} ({variant})",
    )


def budget(args: argparse.Namespace, max_train: int) -> str:
    train = "all" if not max_train else f"{max_train} sequences per seed/fold"
    text = (
        f"{args.epochs} epochs, train {train}, batch {args.batch_size}, lr {args.lr}, "
        f"dim {args.dim}, depth {args.depth}, stem {args.stem_kernel}, {args.pool} pool, "
        f"memory {args.preset}"
    )
    if args.max_eval:
        text += f", dev and test subsampled to {args.max_eval} sequences (a smoke run)"
    return text


def _margin(store: dict[str, dict], name: str, models: list[str]) -> str:
    """The best Titans mean minus the best baseline mean on ``name`` ("-" if either is
    missing)."""
    means = {m: store[f"{name}|{m}"]["mean"] for m in models if f"{name}|{m}" in store}
    titans = [v for m, v in means.items() if m.startswith("titans")]
    baselines = [v for m, v in means.items() if not m.startswith("titans")]
    return f"{max(titans) - max(baselines):+.2f}" if titans and baselines else "-"


def render(store: dict[str, dict]) -> str:
    names = [m.name for m in list_datasets(kind="dna")]
    models = ["titans lmm", "titans mag", "titans mac", "titans mal", "kmer_lr", "cnn"]
    shown = [m for m in models if any(f"{n}|{m}" in store for n in names)]
    lines = [
        "# Genomic benchmarks: Titans from scratch vs baselines vs published",
        "",
        "Metric: MCC x 100 (GUE, as DNABERT-2 reports it) or accuracy x 100 (Genomic "
        "Benchmarks). Mean +- std over seeds (GUE: train, select the epoch on dev, test once) "
        "or folds (Genomic Benchmarks: **only the test split is available here, so these are "
        "stratified 5-fold cross-validation numbers on it**, not comparable one to one with "
        "train-split numbers). Each cell's budget, machine and date are listed below the table. "
        "`-`: not run yet. Last column: the better Titans variant's mean minus the better "
        "baseline's.",
        "",
        "| task | published | " + " | ".join(shown) + " | Titans - baselines |",
        "| --- | ---: |" + " ---: |" * (len(shown) + 1),
    ]
    for name in names:
        label, value = PUBLISHED.get(name, ("-", None))
        published = "-" if value is None else f"{value:.2f} ({label})"
        cells = []
        for model in shown:
            entry = store.get(f"{name}|{model}")
            cells.append("-" if entry is None else f"{entry['mean']:.2f} +- {entry['std']:.2f}")
        cells.append(_margin(store, name, shown))
        lines.append(f"| {name} | {published} | " + " | ".join(cells) + " |")
    lines += ["", "## Budgets", ""]
    for key, entry in sorted(store.items()):
        lines.append(
            f"- {key}: n={entry['n']}, {entry['budget']}; {entry['seconds']:.0f} s wall for the "
            f"task's runs; {entry['machine']}; {entry['date']}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=[m.name for m in list_datasets(kind="dna")])
    parser.add_argument("--variants", nargs="+", default=["lmm", "mag"])
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run k-mer LR and the CNN with the first variant (--no-baselines: Titans only)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-train-tokens", type=int, default=600_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--stem-kernel", type=int, default=9)
    parser.add_argument("--pool", default="max")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--preset", default="titans")
    parser.add_argument(
        "--max-eval",
        type=int,
        default=0,
        help="score at most this many dev and test sequences (smoke runs; default 0: all)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--runs",
        type=Path,
        default=RESULTS / "runs",
        help="where the run folders go (default benchmarks/results/runs)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue interrupted runs from their checkpoints (default: start them afresh)",
    )
    parser.add_argument("--store", type=Path, default=RESULTS / "genomics.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "genomics.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = describe(args.threads)
    for name in args.tasks:
        metric = metric_of(name)
        max_train = train_limit(name, args.max_train_tokens, args.folds)
        for i, variant in enumerate(args.variants):
            start = time.perf_counter()
            task = build_task(
                name, variant, args, baselines=args.baselines and i == 0, max_train=max_train
            )
            result = run(task, args.runs, resume=args.resume, overwrite=not args.resume)
            entries = {}
            seconds = time.perf_counter() - start
            for model, summary in result["summary"].items():
                key = f"{name}|{'titans ' + variant if model == 'titans' else model}"
                stats = summary[metric]
                entries[key] = {
                    "mean": 100 * stats["mean"],
                    "std": 100 * stats["std"],
                    "n": int(stats["n"]),
                    "metric": metric,
                    "budget": budget(args, max_train),
                    "protocol": result["protocol"],
                    "seconds": seconds,
                    "machine": machine,
                    "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
                }
                print(f"{key}: {100 * stats['mean']:.2f} +- {100 * stats['std']:.2f}", flush=True)
            save(entries, args.store, args.out, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
