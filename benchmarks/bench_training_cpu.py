"""CPU benchmark: one training step of two real models, old code against new, side by side.

This is a benchmark, not a test: it prints one markdown table and writes it to
``benchmarks/results/training_cpu.md`` (``--out`` changes the path).

Run it from the project's venv as ``python benchmarks/bench_training_cpu.py`` (flags:
``--baseline``, ``--threads``, ``--reps``, ``--warmup``, ``--cases``, ``--timeout``, ``--out``).

"new" is the code of the current working tree (uncommitted changes included); "old" is the git
revision ``--baseline`` (default :data:`BASELINE`, the commit before the new training engine),
checked out for the run in a temporary ``git worktree`` that is removed afterwards.

Each (case, version) cell runs in a fresh subprocess (``python -c`` with ``PYTHONPATH`` and the
working directory set to that version's tree, so that ``import titans_sci`` finds that tree's
package and not the venv's editable install; the child reports ``titans_sci.__file__`` and the
parent checks that it lies in the intended tree). The old and the new code never share a process,
and peak memory is per cell. The child builds the model (seed 0), runs ``--warmup`` and then
``--reps`` timed steps of AdamW (``lr=1e-3``, ``weight_decay=0.01``): zero the gradients,
forward, loss, backward, optimizer step, in training mode. It reports:

* tokens/s: ``B * T`` over the median step time (the forecaster: ``B * lookback * channels``
  input values per step).
* peak RSS growth: ``ru_maxrss`` after the steps minus ``ru_maxrss`` before the model is built
  (after ``import torch, titans_sci``), in GiB.
* saved KB/token: the bytes of the distinct tensor storages (deduplicated by
  ``untyped_storage().data_ptr()``) that autograd still holds for the backward at the end of one
  extra forward, as ``torch.autograd.graph.saved_tensors_hooks`` sees them packed (tensors packed
  and freed again within the forward are not counted), the model's parameters left out (they are
  weights, not activations), over the tokens (values) of the step; 1 KB = 1024 bytes.
  The inputs that non-reentrant activation checkpointing keeps for its recomputation are among
  them (checked by wrapping ``torch.utils.checkpoint.checkpoint``: every input it kept was
  counted); tensors stored on an autograd.Function's ``ctx`` as plain attributes would not be
  (titans_sci's own Function keeps everything through ``save_for_backward``).

Cases (the attention variants ``dna mag|mal|mac 32x300`` only when named with ``--cases``): the
genomics classifier of the GUE task files (``DNAClassifier`` on an LMM backbone of dim
64, depth 2, bidirectional, Titans memory of 4 heads of 16, chunk 16; conv stem 9, max pooling) on
random bases at several ``B x T``, and the forecaster of ``tasks/forecast_etth1.toml`` (LMM,
channel-independent patches of 16 every 8, point head, dropout 0.1, memory chunk 4; lookback 96,
horizon 96, 7 channels, batch 32) on random windows: timing does not depend on the values.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import inspect
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import cpu_model
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "training_cpu.md"

# The commit before the new training engine (the lean chunked path).
BASELINE = "4b87b4a"

LR = 1e-3
WEIGHT_DECAY = 0.01
GIB = 2**30

# What ``python -c`` runs in each cell's child: this file's ``child_main`` on its JSON argument.
# The child's PYTHONPATH holds the version's tree (titans_sci) and then the benchmarks folder
# (this module).
CHILD_CODE = "import sys; from bench_training_cpu import child_main; child_main(sys.argv[1])"

# Issue 16's goals (see ``goal_lines``).
GOAL_RSS_CASE = "dna 32x3000"
GOAL_RSS_GIB = 3.0
GOAL_SAVED_RATIO = 0.1
GOAL_LONG_LENGTH = 2048
GOAL_LONG_SPEEDUP = 3.0
GOAL_SHORT_LENGTH = 101
GOAL_SHORT_SPEEDUP = 2.0


@dataclass(frozen=True)
class Case:
    """One model and input: ``batch`` sequences of ``length`` (times ``channels`` values)."""

    name: str
    kind: str  # "dna" or "forecaster"
    batch: int
    length: int
    channels: int = 1
    variant: str = "lmm"  # the dna classifier's backbone: lmm, mag, mal or mac

    @property
    def units(self) -> int:
        """Tokens (values) per step, the divisor of tokens/s and of the saved bytes."""
        return self.batch * self.length * self.channels


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case("dna 32x101", "dna", 32, 101),
        Case("dna 32x300", "dna", 32, 300),
        Case("dna 8x2048", "dna", 8, 2048),
        Case("dna 32x3000", "dna", 32, 3000),
        Case("forecaster etth1", "forecaster", 32, 96, channels=7),
        Case("dna mag 32x300", "dna", 32, 300, variant="mag"),
        Case("dna mal 32x300", "dna", 32, 300, variant="mal"),
        Case("dna mac 32x300", "dna", 32, 300, variant="mac"),
    )
}
DEFAULT_CASES = ["dna 32x101", "dna 32x300", "dna 8x2048", "dna 32x3000", "forecaster etth1"]
"""The cases issue 16 asks for; the attention variants run on request (``--cases``)."""


# ---------------------------------------------------------------------------------------------
# The child: one cell in its own process.

LossFn = Callable[[], torch.Tensor]


def _max_rss_kib() -> int:
    """Peak resident set size of this process so far (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _dna_model(case: Case, generator: torch.Generator) -> tuple[nn.Module, LossFn]:
    """The genomics tasks' classifier and a loss on random bases and labels."""
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig, MACConfig, MAGConfig, MALConfig
    from titans_sci.models.dna_classifier import DNAClassifier

    memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=16)
    common = dict(dim=64, depth=2, bidirectional=True, memory=memory)
    backbone = {
        "lmm": lambda: LMMConfig(**common),
        "mag": lambda: MAGConfig(**common, window=64),
        "mal": lambda: MALConfig(**common, window=64),
        "mac": lambda: MACConfig(**common, segment_len=32),
    }[case.variant]()
    try:  # the task system's classifier takes one config (issue 17)
        from titans_sci.models.dna_classifier import ClassifierConfig
    except ImportError:  # older trees (the baseline): the backbone and the head's arguments
        model = DNAClassifier(backbone, num_classes=2)
    else:
        model = DNAClassifier(ClassifierConfig(backbone, num_classes=2))
    ids = torch.randint(0, 4, (case.batch, case.length), generator=generator)
    mask = torch.ones(case.batch, case.length, dtype=torch.bool)
    labels = torch.randint(0, 2, (case.batch,), generator=generator)
    return model, lambda: F.cross_entropy(model(ids, mask), labels)


def _forecaster_model(case: Case, generator: torch.Generator) -> tuple[nn.Module, LossFn]:
    """The forecaster of ``tasks/forecast_etth1.toml`` (horizon 96) and its training loss
    (``units="data"``, the task's default) on random windows."""
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig
    from titans_sci.models.forecaster import ForecasterConfig, TitansForecaster

    memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=4)
    config = ForecasterConfig(
        lookback=case.length,
        horizon=96,
        channels=case.channels,
        backbone=LMMConfig(dim=64, depth=2, memory=memory),
        mode="channel_independent",
        patch_len=16,
        stride=8,
        head="point",
        dropout=0.1,
    )
    model = TitansForecaster(config)
    x = torch.randn(case.batch, case.length, case.channels, generator=generator)
    y = torch.randn(case.batch, config.horizon, case.channels, generator=generator)
    loss = getattr(model, "loss", None)
    if loss is None:
        return model, lambda: F.mse_loss(model(x), y)
    if "units" in inspect.signature(loss).parameters:
        return model, lambda: loss(x, y, units="data")
    return model, lambda: loss(x, y)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn) -> float:
    """One training step; returns its wall-clock seconds."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def _saved_bytes(model: nn.Module, loss_fn: LossFn) -> int:
    """Bytes of the distinct non-parameter storages that autograd still holds for the backward
    after one forward + loss (tensors packed and dropped again during the forward, e.g. by
    ops whose graph is freed at once, are not counted)."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    packed: list[weakref.ref[torch.Tensor]] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.untyped_storage().data_ptr() not in parameters:
            packed.append(weakref.ref(tensor))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn()
    storages: dict[int, int] = {}
    for ref in packed:
        tensor = ref()
        if tensor is not None:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    del loss
    return sum(storages.values())


def child_main(raw: str) -> None:
    """Run one cell (``raw``: JSON of the case, threads, reps, warmup); print one JSON line."""
    spec = json.loads(raw)
    case = Case(**spec["case"])
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    import titans_sci

    rss_before = _max_rss_kib()
    generator = torch.Generator().manual_seed(0)
    build = _dna_model if case.kind == "dna" else _forecaster_model
    model, loss_fn = build(case, generator)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    for _ in range(spec["warmup"]):
        _step(model, optimizer, loss_fn)
    seconds = [_step(model, optimizer, loss_fn) for _ in range(spec["reps"])]
    rss_after = _max_rss_kib()
    saved = _saved_bytes(model, loss_fn)
    median = statistics.median(seconds)
    result = {
        "file": titans_sci.__file__,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "median_s": median,
        "per_second": case.units / median,
        "rss_gib": (rss_after - rss_before) * 1024 / GIB,
        "saved_kb": saved / case.units / 1024,
    }
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# The parent: git trees, one subprocess per cell, the table.


@dataclass
class Cell:
    """One (case, version) measurement, or the ``note`` saying why there are no numbers."""

    per_second: float | None = None
    rss_gib: float | None = None
    saved_kb: float | None = None
    median_s: float | None = None
    file: str = ""  # the titans_sci/__init__.py the child imported
    note: str = ""


def git(*args: str) -> str:
    """``git args`` in the repository root; its stdout without trailing whitespace (leading
    whitespace is kept: it is part of ``git status --porcelain``'s first line)."""
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return done.stdout.rstrip()


def describe(rev: str) -> str:
    """``<short hash> <subject>`` of ``rev``."""
    return git("log", "-1", "--format=%h %s", rev)


def describe_working_tree() -> str:
    """What "new" is: the working tree at HEAD, and whether it has uncommitted changes."""
    text = f"working tree at {describe('HEAD')}"
    changed = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    if changed:
        package = [line for line in changed if line[3:].startswith("titans_sci/")]
        text += f" (uncommitted changes: {len(changed)} path(s), {len(package)} under titans_sci/)"
    return text


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A temporary detached ``git worktree`` of ``rev``, removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="titans_sci_baseline_"))
    try:
        git("worktree", "add", "--detach", str(path), rev)
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO_ROOT, check=False)


def _failure_note(returncode: int, stderr: str) -> str:
    """A table note for a child that exited with ``returncode``."""
    if returncode == -signal.SIGKILL:
        return "out of memory (killed)"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no stderr"
    return f"failed (exit {returncode}): {last[:160]}"


def _limit_memory(gib: float) -> None:
    """In the child, before it starts: cap its address space, so that a cell that would need
    more memory than the machine has fails alone with an allocation error (not the OOM killer,
    which may pick another process)."""
    limit = int(gib * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_cell(tree: Path, case: Case, args: argparse.Namespace) -> Cell:
    """Measure ``case`` with the titans_sci of ``tree`` in a fresh subprocess."""
    spec = {
        "case": asdict(case),
        "threads": args.threads,
        "reps": args.reps,
        "warmup": args.warmup,
    }
    env = dict(os.environ)
    paths = [str(tree), str(BENCH_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    code = CHILD_CODE
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(spec)],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
            preexec_fn=lambda: _limit_memory(args.memory_limit_gib),
        )
    except subprocess.TimeoutExpired:
        return Cell(note=f"timed out after {args.timeout:g} s")
    if done.returncode != 0:
        if "can't allocate memory" in done.stderr or "MemoryError" in done.stderr:
            return Cell(note=f"out of memory (over the {args.memory_limit_gib:g} GiB limit)")
        return Cell(note=_failure_note(done.returncode, done.stderr))
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        return Cell(note="no output")
    result = json.loads(lines[-1])
    file = Path(result["file"]).resolve()
    assert file.is_relative_to(tree.resolve()), (
        f"the child imported titans_sci from {file}, not from {tree}"
    )
    assert result["threads"] == args.threads, f"child ran on {result['threads']} threads"
    return Cell(
        per_second=result["per_second"],
        rss_gib=result["rss_gib"],
        saved_kb=result["saved_kb"],
        median_s=result["median_s"],
        file=str(file),
    )


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _ratio(new: float | None, old: float | None) -> float | None:
    if not (_finite(new) and _finite(old)) or old == 0:
        return None
    return new / old


def _number(value: float | None, spec: str, note: str = "n/a") -> str:
    return format(value, spec) if _finite(value) else note


def _cell_text(cell: Cell, value: float | None, spec: str) -> str:
    return _number(value, spec, cell.note.replace("|", "/") or "n/a")


def table_rows(results: dict[str, tuple[Cell, Cell]]) -> list[str]:
    """The markdown table, one row per case."""
    lines = [
        "| case | old tokens/s | new tokens/s | speed-up (new/old) | old peak RSS growth GiB "
        "| new peak RSS growth GiB | old saved KB/token | new saved KB/token "
        "| saved ratio (new/old) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (old, new) in results.items():
        speedup = _ratio(new.per_second, old.per_second)
        saved = _ratio(new.saved_kb, old.saved_kb)
        cells = [
            name,
            _cell_text(old, old.per_second, ",.0f"),
            _cell_text(new, new.per_second, ",.0f"),
            _number(speedup, ".2f") + ("x" if speedup is not None else ""),
            _cell_text(old, old.rss_gib, ".3f"),
            _cell_text(new, new.rss_gib, ".3f"),
            _cell_text(old, old.saved_kb, ".2f"),
            _cell_text(new, new.saved_kb, ".2f"),
            _number(saved, ".3f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _verdict(checks: list[tuple[str, float | None, bool]], unit: str) -> str:
    """``case: value (met|missed)`` per check, then an overall verdict."""
    if not checks:
        return "not measured (no such case run)"
    parts, verdicts = [], []
    for name, value, met in checks:
        if value is None:
            parts.append(f"{name}: no number")
            verdicts.append(None)
        else:
            parts.append(f"{name}: {value:.3g}{unit} ({'met' if met else 'missed'})")
            verdicts.append(met)
    if None in verdicts:
        overall = "MISSED" if False in verdicts else "incomplete"
    else:
        overall = "MET" if all(verdicts) else "MISSED"
    return f"**{overall}**: " + "; ".join(parts)


def goal_lines(results: dict[str, tuple[Cell, Cell]]) -> list[str]:
    """Issue 16's goals, each with met / missed from the measured numbers."""
    rss = []
    if GOAL_RSS_CASE in results:
        value = results[GOAL_RSS_CASE][1].rss_gib
        value = value if _finite(value) else None
        rss.append((GOAL_RSS_CASE, value, value is not None and value <= GOAL_RSS_GIB))
    saved, long, short = [], [], []
    for name, (old, new) in results.items():
        ratio = _ratio(new.saved_kb, old.saved_kb)
        saved.append((name, ratio, ratio is not None and ratio <= GOAL_SAVED_RATIO))
        speedup = _ratio(new.per_second, old.per_second)
        length = CASES[name].length
        if CASES[name].kind == "dna" and length >= GOAL_LONG_LENGTH:
            long.append((name, speedup, speedup is not None and speedup >= GOAL_LONG_SPEEDUP))
        if CASES[name].kind == "dna" and length == GOAL_SHORT_LENGTH:
            short.append((name, speedup, speedup is not None and speedup >= GOAL_SHORT_SPEEDUP))
    return [
        f"Goals (issue 16): peak RSS growth at {GOAL_RSS_CASE} <= {GOAL_RSS_GIB:g} GiB; saved "
        f"activations/token <= 1/{1 / GOAL_SAVED_RATIO:g} of old; tokens/s >= "
        f"{GOAL_LONG_SPEEDUP:g}x old at length >= {GOAL_LONG_LENGTH} and >= "
        f"{GOAL_SHORT_SPEEDUP:g}x at length {GOAL_SHORT_LENGTH}.",
        "",
        f"- peak RSS growth at {GOAL_RSS_CASE} <= {GOAL_RSS_GIB:g} GiB (new): "
        + _verdict(rss, " GiB"),
        f"- saved activations/token <= {GOAL_SAVED_RATIO:g} x old: " + _verdict(saved, "x old"),
        f"- tokens/s >= {GOAL_LONG_SPEEDUP:g}x old at length >= {GOAL_LONG_LENGTH}: "
        + _verdict(long, "x"),
        f"- tokens/s >= {GOAL_SHORT_SPEEDUP:g}x old at length {GOAL_SHORT_LENGTH}: "
        + _verdict(short, "x"),
    ]


def render(
    results: dict[str, tuple[Cell, Cell]], args: argparse.Namespace, old: str, new: str
) -> str:
    """The whole markdown document."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# One training step on the CPU: old code against new",
        "",
        f"- date: {now}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} cores)",
        f"- torch {importlib.metadata.version('torch')}, {args.threads} thread(s)",
        f"- old: {old}",
        f"- new: {new}",
        f"- {args.reps} timed step(s) per cell (median) after {args.warmup} warm-up step(s); "
        "each cell in a fresh process",
        "",
        "One step = AdamW zero_grad + forward + loss + backward + optimizer step. tokens/s: "
        "B*T over the median step (forecaster etth1: B*lookback*channels = 32*96*7 input values, "
        "and its KB/token is per value). Peak RSS growth: ru_maxrss after the steps minus before "
        "building the model. Saved KB/token: distinct non-parameter storages that autograd still "
        "holds for the backward at the end of one forward (1 KB = 1024 bytes). A cell without "
        "numbers shows its note.",
        "",
        *table_rows(results),
        "",
        *goal_lines(results),
        "",
    ]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        handle.write(text)
        temp = Path(handle.name)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", default=BASELINE, help=f"git revision of 'old' (default {BASELINE})"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--reps", type=int, default=3, help="timed steps per cell (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up steps (default 1)")
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=list(CASES),
        default=DEFAULT_CASES,
        help="default: the cases of issue 16 (the attention variants only when named)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per cell (default 1800)"
    )
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        default=16.0,
        help="address-space limit of each cell's process (default 16; the machine has 24)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.reps < 1 or args.warmup < 0:
        parser.error("need --threads >= 1, --reps >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rev = git("rev-parse", "--verify", f"{args.baseline}^{{commit}}")
    old, new = describe(rev), describe_working_tree()
    results: dict[str, tuple[Cell, Cell]] = {}
    with worktree(rev) as baseline_tree:
        for name in args.cases:
            cells = []
            for label, tree in (("old", baseline_tree), ("new", REPO_ROOT)):
                print(f"{name} / {label} ...", file=sys.stderr, flush=True)
                cell = run_cell(tree, CASES[name], args)
                print(f"  {cell}", file=sys.stderr, flush=True)
                cells.append(cell)
            results[name] = (cells[0], cells[1])
    text = render(results, args, old, new)
    print(text)
    write_atomic(args.out, text)
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
