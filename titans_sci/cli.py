"""Command line: ``titans-sci run`` (the main job) and, later, train/evaluate/predict/bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from titans_sci import __version__


def _task_module(path: str):
    """The module that runs a task file: ``[task] kind`` = "classification" (the default,
    genomic classification) or "forecasting"."""
    import importlib

    from titans_sci._toml import tomllib

    try:
        kind = tomllib.loads(Path(path).read_text()).get("task", {}).get("kind", "classification")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError) as error:
        raise ValueError(f"{path}: cannot read the task file: {error}") from None
    modules = {"classification": "titans_sci.genomics", "forecasting": "titans_sci.forecasting"}
    if kind not in modules:
        raise ValueError(f"{path}: [task] kind = {kind!r}; expected one of {sorted(modules)}")
    return importlib.import_module(modules[kind])


def _cmd_run(args: argparse.Namespace) -> int:
    if args.task is not None:
        try:
            module = _task_module(args.task)
            result = module.run_task(args.task, args.out, args.resume, not args.quiet)
        except ValueError as error:
            print(f"titans-sci: {error}", file=sys.stderr)
            return 2
        print(module.format_summary(result))
        print(f"results in {Path(args.out) / result['task']['name']}")
        return 0
    from titans_sci.demo import associative_recall

    associative_recall(tokens=args.tokens, batch=args.batch, seed=args.seed)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="titans-sci",
        description="Titans/MIRAS neural long-term memory for genomics and time series.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the main job (for now: the test-time associative-recall demo)",
        description=(
            "Run the main job. For now this is the associative-recall demo: the neural memory "
            "learns 16 key/value pairs at test time, with no outer training, and prints recall "
            "accuracy per 256 tokens for the four presets (and Titans' linear memory)."
        ),
    )
    run.add_argument(
        "task",
        nargs="?",
        default=None,
        help="a task file (tasks/*.toml); without one, the associative-recall demo",
    )
    run.add_argument("--out", default="runs", help="where task results go (default runs/)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted task from its checkpoints (same numbers as one go)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--tokens", type=_positive_even, default=2048, help="stream length (default 2048)"
    )
    run.add_argument(
        "--batch", type=_positive, default=4, help="independent streams to average (default 4)"
    )
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
