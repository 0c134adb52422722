"""The ``titans-sci`` command: run, train, evaluate and predict with task files and saved models,
list tasks and data, and time the memory.

Every command has ``--help``. Errors print one line (``titans-sci: ...``) and exit with status
2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

from titans_sci import __version__

#: The main job's small tasks (bundled data, a few minutes on 2 CPU cores).
MAIN_JOB = ("demo_genomics.toml", "demo_forecasting.toml")


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def _run_one(path: str | Path, args: argparse.Namespace, titans_only: bool = False) -> dict:
    from titans_sci.tasks import kind_of, load_task, run, without_baselines
    from titans_sci.tasks.config import parse_overrides

    task = load_task(path, parse_overrides(args.set))
    if titans_only:
        task = without_baselines(task)
    models = getattr(args, "models", None)
    result = run(task, args.out, args.resume, args.overwrite, not args.quiet, models)
    print(kind_of(task).format_summary(result))
    print(f"results in {Path(args.out) / task.name}")
    return result


def _cmd_run(args: argparse.Namespace) -> int:
    if args.task is None and args.models is not None:
        raise UserError("--models chooses among a task file's models: name the task file")
    if args.task is not None:
        _run_one(args.task, args)
        return 0
    from titans_sci.demo import associative_recall
    from titans_sci.resources import tasks_dir

    # The main job's demo runs replace their own earlier runs (unless resumed).
    args.overwrite = not args.resume
    print("== 1/3: test-time learning (associative recall, no outer training)")
    associative_recall(tokens=args.tokens, batch=args.batch, seed=args.seed)
    for i, name in enumerate(MAIN_JOB, start=2):
        print(f"\n== {i}/3: tasks/{name}")
        _run_one(tasks_dir() / name, args)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    result = _run_one(args.task, args, titans_only=True)
    root = Path(args.out) / result["task"]["name"] / "checkpoints"
    for folder in sorted(root.glob("*/titans/model")):
        print(f"model: {folder}")
    return 0


def _load(path: str):
    from titans_sci.api import load

    return load(path)


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Warnings of the body (an input far outside the training data...) print as one
    ``titans-sci: warning:`` line each once it succeeded; on an error, its one line says it
    all."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for text in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        print(f"titans-sci: warning: {text}", file=sys.stderr)


def _cmd_predict(args: argparse.Namespace) -> int:
    with _warnings_as_lines():
        _predict(args)
    return 0


def _read_options(args: argparse.Namespace, model: object):
    """The series read options given on the command line (``None``: the model's own); refused
    for a sequence classifier, which reads no series."""
    from titans_sci.api import Forecaster
    from titans_sci.data.timeseries import ReadOptions

    given = {k: getattr(args, k) for k in ("date_format", "nan_policy", "gaps")}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    if not isinstance(model, Forecaster):
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise UserError(f"{flags}: for a forecaster's series; {args.model} is a classifier")
    return ReadOptions.from_dict({**model.trained_options.to_dict(), **given})


def _predict(args: argparse.Namespace) -> None:
    from titans_sci.api import GenomeAnnotator, SequenceClassifier
    from titans_sci.files import atomic_open, check_output

    if args.stride and not args.window:
        raise UserError("--stride is the step between --window windows: give --window too")
    if args.window and args.surprise:
        raise UserError("--window and --surprise are two outputs: choose one")
    if args.output:  # before anything is read: a bad output costs nothing
        check_output(args.output, [args.input], [args.model])
    model = _load(args.model)
    if isinstance(model, GenomeAnnotator):
        raise UserError(
            f"{args.model} is a genome annotator: titans-sci annotate {args.model} GENOME -o "
            "OUT.gff3"
        )
    options = _read_options(args, model)
    if args.surprise:
        if not args.output or not isinstance(model, SequenceClassifier):
            raise UserError("--surprise needs a sequence classifier and --output")
        count = model.stream_surprise(
            args.input, args.output, args.segment, not args.quiet, args.allow_duplicate_ids
        )
        print(f"{count} positions in {args.output}")
        return
    if args.window:
        if not args.output or not isinstance(model, SequenceClassifier):
            raise UserError("--window needs a sequence classifier and --output")
        count = model.predict_windows(
            args.input,
            args.output,
            args.window,
            args.stride,
            progress=not args.quiet,
            allow_duplicate_ids=args.allow_duplicate_ids,
        )
        print(f"{count} windows in {args.output}")
        return
    if isinstance(model, SequenceClassifier):
        table = model.predict(args.input, allow_duplicate_ids=args.allow_duplicate_ids)
    else:
        table = model.predict(args.input, options)
    if args.output:
        with atomic_open(args.output) as sink:
            table.to_csv(sink, index=False)
        print(f"{len(table)} predictions in {args.output}")
    else:
        print(table.to_csv(index=False), end="")


def _cmd_annotate(args: argparse.Namespace) -> int:
    from titans_sci.api import GenomeAnnotator
    from titans_sci.files import check_output

    check_output(args.output, [args.genome], [args.model])  # before anything is read
    model = _load(args.model)
    if not isinstance(model, GenomeAnnotator):
        raise UserError(f"{args.model}: not a genome annotator (an annotation task's model)")
    count = model.annotate(
        args.genome, args.output, args.piece, not args.quiet, args.allow_duplicate_ids
    )
    print(f"{count} genes in {args.output}")
    return 0


def _classifier(path: str):  # -> SequenceClassifier
    from titans_sci.api import SequenceClassifier

    model = _load(path)
    if not isinstance(model, SequenceClassifier):
        raise UserError(f"{path}: not a DNA classifier (a classification task's model)")
    return model


def _cmd_explain(args: argparse.Namespace) -> int:
    from titans_sci.api import GenomeAnnotator, SequenceClassifier

    model = _load(args.model)
    if not isinstance(model, (SequenceClassifier, GenomeAnnotator)):
        raise UserError(f"{args.model}: not a DNA classifier or genome annotator")
    table = model.explain(args.sequences, args.output, args.target, progress=not args.quiet,
                          allow_duplicate_ids=args.allow_duplicate_ids)  # fmt: skip
    records = table["record"].nunique()
    print(f"attributions of {records} record(s) in {Path(args.output) / 'attributions.csv'}, "
          f"a logo per record beside it")  # fmt: skip
    return 0


def _cmd_variants(args: argparse.Namespace) -> int:
    model = _classifier(args.model)
    count = model.variant_effects(args.reference, args.vcf, args.output, args.window,
                                  args.target, progress=not args.quiet)  # fmt: skip
    print(f"{count} variant effects in {args.output}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from titans_sci.evaluation.saved import evaluate_saved

    with _warnings_as_lines():
        model = _load(args.model)
        metrics = evaluate_saved(model, args.data, _read_options(args, model))
        # Strict JSON: an undefined metric is null; evaluate_saved refuses non-finite ones.
        print(json.dumps(metrics, indent=2, allow_nan=False))
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from titans_sci.resources import tasks_dir

    folder = Path(args.folder) if args.folder else tasks_dir()
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise UserError(f"{folder}: no task files (*.toml)")
    for path in files:
        first = next((line for line in path.read_text().splitlines() if line.strip()), "")
        print(f"{path.name:<34} {first.lstrip('# ').strip()}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from titans_sci.data.registry import main as registry_main

    argv = [args.action, *args.names] + (["--kind", args.kind] if args.kind else [])
    return registry_main(argv)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.suite == "genomics":
        from titans_sci.suites.genomics import GenomicsSuite, run_suite

        run_suite(GenomicsSuite.from_args(args))
        print(f"leaderboard: {args.out / 'genomics.md'}")
        return 0
    from titans_sci.bench import memory_throughput

    memory_throughput(lengths=args.lengths, quiet=args.quiet)
    return 0


def _positive_even(text: str) -> int:
    value = int(text)
    if value <= 0 or value % 2:
        raise argparse.ArgumentTypeError(f"must be a positive even number, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _task_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--out", default="runs", help="where results go (default runs/)")
    again = command.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run of the same task, data and code from its checkpoints "
        "(same numbers as one go)",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="clear the task's run folder first if it holds an earlier run",
    )
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a task file key, e.g. --set training.epochs=1 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="titans-sci",
        description="Titans/MIRAS neural long-term memory for genomics and time series.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a task file, or the main job",
        description=(
            "Run a task file (tasks/*.toml: the Titans model and its baselines on the task's "
            "protocol). Without one, the main job: the memory learning associative recall at "
            "test time, then a small genomic and a small forecasting task on bundled data."
        ),
    )
    run.add_argument("task", nargs="?", default=None, help="a task file (tasks/*.toml)")
    _task_options(run)
    run.add_argument(
        "--models",
        nargs="*",
        metavar="NAME",
        help="train only these of the task's models (e.g. --models cnn to run one baseline "
        "model again; --models with no name: the baselines that train nothing); the task's "
        "other baselines run as it says",
    )
    run.add_argument("--tokens", type=_positive_even, default=2048, help="demo stream length")
    run.add_argument("--batch", type=_positive, default=4, help="demo streams to average")
    run.add_argument("--seed", type=int, default=0, help="demo random seed (default 0)")
    run.set_defaults(func=_cmd_run)

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train a task's Titans model (no baselines) and save it",
        description="Train the Titans model of a task file on its protocol and save every "
        "trained model (safetensors + JSON) under the run's checkpoints/.",
    )
    train.add_argument("task", help="a task file (tasks/*.toml)")
    _task_options(train)
    train.set_defaults(func=_cmd_train)

    from titans_sci.data.timeseries import GapPolicy, NanPolicy

    reading = argparse.ArgumentParser(add_help=False)
    reading.add_argument(
        "--date-format", help="a series' date format, e.g. '%%d/%%m/%%Y %%H:%%M' (forecasters)"
    )
    reading.add_argument(
        "--nan-policy",
        choices=get_args(NanPolicy),
        help="fill a series' missing values (forecasters; default: as trained)",
    )
    reading.add_argument(
        "--gaps",
        choices=get_args(GapPolicy),
        help="a series' missing steps: refuse, keep the rows as consecutive steps, or fill "
        "them as missing values (forecasters; default: as trained)",
    )
    evaluate = sub.add_parser(
        "evaluate",
        parents=[common, reading],
        help="test metrics of a saved model",
        description="Evaluate a saved model on its task's test split, or on a labelled file "
        "(sequence,label CSV for a classifier; a series CSV for a forecaster).",
    )
    evaluate.add_argument("model", help="a saved model folder (holds model.json)")
    evaluate.add_argument("data", nargs="?", default=None, help="a labelled file (optional)")
    evaluate.set_defaults(func=_cmd_evaluate)

    predict = sub.add_parser(
        "predict",
        parents=[common, reading],
        help="predictions of a saved model for a new file",
        description="Class probabilities for every record of a FASTA/FASTQ/GenBank/CSV file, "
        "or a forecast after the last row of a series CSV/Parquet.",
    )
    predict.add_argument("model", help="a saved model folder (holds model.json)")
    predict.add_argument("input", help="sequences (FASTA, CSV, ...) or a series (CSV, Parquet)")
    predict.add_argument("-o", "--output", help="write the predictions CSV here (else stdout)")
    predict.add_argument(
        "--window",
        type=_positive,
        help="long sequences: score every WINDOW-base window (streamed, constant memory)",
    )
    predict.add_argument("--stride", type=_positive, help="bases between windows (default WINDOW)")
    predict.add_argument(
        "--surprise",
        action="store_true",
        help="write the memories' surprise at every base instead (streamed with carried state, "
        "constant memory)",
    )
    predict.add_argument(
        "--segment",
        type=_positive,
        default=4096,
        help="bases per streamed segment for --surprise (default 4096)",
    )
    predict.add_argument(
        "--allow-duplicate-ids",
        action="store_true",
        help="accept records that share an id (refused by default)",
    )
    predict.set_defaults(func=_cmd_predict)

    annotate = sub.add_parser(
        "annotate",
        parents=[common],
        help="annotate a genome with a saved genome annotator (GFF3 out)",
        description="The genes (CDS with introns) and RNA genes a trained genome annotator "
        "finds in every record of a FASTA (or GenBank) file, as GFF3; each record is read whole "
        "in both directions, piece by piece, in constant memory.",
    )
    annotate.add_argument("model", help="a saved genome annotator folder (holds model.json)")
    annotate.add_argument("genome", help="a FASTA file (plain or .gz) or a GenBank file")
    annotate.add_argument("-o", "--output", required=True, help="the GFF3 file to write")
    annotate.add_argument(
        "--piece", type=_positive, default=1 << 16, help="bases read at a time (default 65536)"
    )
    annotate.add_argument(
        "--allow-duplicate-ids",
        action="store_true",
        help="accept records that share an id (refused by default)",
    )
    annotate.set_defaults(func=_cmd_annotate)

    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="which bases drive a saved DNA model (ISM, gradients; CSV and logos)",
        description="In-silico saturation mutagenesis, gradient x input and integrated gradients "
        "(32 steps from the uniform-base baseline) of every record of a sequence file, both "
        "strands averaged as the model predicts (a classifier's class; a genome annotator's "
        "label, its mean over the record): OUTPUT/attributions.csv (a row per record and base, "
        "1-based positions) and a logo PNG per record.",
    )
    explain.add_argument(
        "model", help="a saved DNA classifier or genome annotator folder (holds model.json)"
    )
    explain.add_argument("sequences", help="FASTA/FASTQ/GenBank/CSV/TSV (optionally .gz)")
    explain.add_argument("-o", "--output", required=True, help="the folder to write into")
    explain.add_argument(
        "--target",
        type=int,
        default=None,
        help="the class attributed (default: a classifier's last; an annotator's 1, CDS+)",
    )
    explain.add_argument(
        "--allow-duplicate-ids",
        action="store_true",
        help="accept records that share an id (refused by default)",
    )
    explain.set_defaults(func=_cmd_explain)

    variants = sub.add_parser(
        "variants",
        parents=[common],
        help="variant effects of a VCF on a saved DNA classifier's score (CSV)",
        description="For each ALT allele of a VCF, the classifier's strand-averaged probability "
        "of the window around it with the reference and the alternative allele (read from an "
        "indexed FASTA, never whole), their difference and log odds ratio. Indels are scored; a "
        "REF that does not match the reference, a contig the FASTA lacks and a malformed line "
        "are refused naming the line.",
    )
    variants.add_argument("model", help="a saved DNA classifier folder (holds model.json)")
    variants.add_argument("reference", help="the reference FASTA (plain or bgzip)")
    variants.add_argument("vcf", help="the variants (VCF, plain or gzip/bgzip)")
    variants.add_argument("-o", "--output", required=True, help="the CSV to write")
    variants.add_argument(
        "--window",
        type=_positive,
        default=None,
        help="bases read around each variant (default: the model's training length)",
    )
    variants.add_argument(
        "--target", type=int, default=None, help="the class scored (default: the last)"
    )
    variants.set_defaults(func=_cmd_variants)

    tasks = sub.add_parser(
        "tasks",
        parents=[common],
        help="list task files",
        description="List the task files of a folder, one line each.",
    )
    tasks.add_argument("folder", nargs="?", default=None, help="default: the bundled tasks/")
    tasks.set_defaults(func=_cmd_tasks)

    data = sub.add_parser(
        "data",
        parents=[common],
        help="list or verify the bundled data sets",
        description="List the bundled data sets, or verify their files against the manifests.",
    )
    data.add_argument("action", choices=["list", "verify"])
    data.add_argument("names", nargs="*", help="data set names (verify; default: all)")
    data.add_argument("--kind", choices=["dna", "timeseries"], help="only this kind")
    data.set_defaults(func=_cmd_data)

    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="time the memory on this machine, or run a benchmark suite",
        description="Without a suite: tokens per second of a Titans memory layer (forward and "
        "backward) at several lengths. 'bench genomics': every bundled genomic task, Titans "
        "and the baselines, resumable, with a leaderboard. Peer comparisons live in "
        "benchmarks/.",
    )
    bench.add_argument("--lengths", type=_positive, nargs="+", default=[256, 1024, 4096])
    bench.set_defaults(func=_cmd_bench, suite=None)
    suites = bench.add_subparsers(dest="suite", metavar="SUITE")
    genomics = suites.add_parser(
        "genomics",
        parents=[common],
        help="the genomic suite: every task, resumable, with a leaderboard",
        description="Run or resume every bundled genomic task for the Titans entrants and both "
        "baselines; write genomics.md (next to published numbers) and genomics_margins.png "
        "into --out. Cells already done with the same settings are skipped; an interrupted "
        "run continues from its last epoch.",
    )
    from titans_sci.suites.genomics import add_arguments

    add_arguments(genomics)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from titans_sci.distributed import init_from_env, is_main

    try:
        init_from_env()
        if not is_main():  # under torchrun, process 0 speaks for the job
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            args.quiet = True
        return args.func(args)
    except BrokenPipeError:  # `titans-sci tasks | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except (UserError, ValueError, OSError, FloatingPointError) as error:
        if args.debug:
            traceback.print_exc()
        print(f"titans-sci: {' '.join(_message(error).split())}", file=sys.stderr)
        return 2


def _message(error: BaseException) -> str:
    """One line for an error: an OS error names its file first, and a full disk says what to
    do."""
    if not isinstance(error, OSError) or error.filename is None:
        return str(error)
    what = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        what += "; free some space, then run again (with --resume for a task)"
    return f"{error.filename}: {what}"


if __name__ == "__main__":
    raise SystemExit(main())
