"""CPU benchmark: stream long inputs through a small Titans LMM; peak memory must stay flat.

This is a benchmark, not a test. Run it from the repository root with the project's venv::

    .venv/bin/python benchmarks/bench_streaming_cpu.py

(flags: ``--lengths`` (default ``10000 100000 1000000``), ``--piece`` (default 4096),
``--threads`` (default 2), ``--seed``, ``--out``). It prints one markdown table and writes it to
``benchmarks/results/streaming_cpu.md``.

What it does: a ``TitansLMM`` (dim 128, depth 2, ``titans`` memory preset with 4 heads of 32 and
chunk 64) in ``eval()`` and ``torch.inference_mode()`` reads a DNA-like stream of B=1 sequence,
``piece`` tokens per call, carrying the returned state from call to call (the last piece may be
shorter). The tokens (uniform over A, C, G, T) are drawn piece by piece from a seeded
``torch.Generator`` and embedded by a fixed random ``nn.Embedding(4, 128)``; the whole stream is
never materialised, and each piece's output is dropped once its finiteness is checked.

Each length runs in a fresh subprocess (the script re-invokes itself with ``--worker LENGTH``),
so that the peak resident set size of one length cannot hide behind another's. The worker
reports its wall time (token generation, embedding and model calls, the first call included),
RSS after the first piece and after the last one (``VmRSS`` from ``/proc/self/status``), its
peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) and the largest size of the streaming state.

What it shows: the state has a fixed size, so RSS after the first piece, RSS after the last
piece and the peak RSS are the same (up to allocator noise) whether the worker streamed 10k or
1M tokens; the last column, peak growth against the smallest length, stays near 0 MiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from machine import cpu_model
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "streaming_cpu.md"
DEFAULT_LENGTHS = [10_000, 100_000, 1_000_000]

BATCH = 1
DIM = 128
DEPTH = 2
HEADS = 4
HEAD_DIM = 32
CHUNK = 64
VOCAB = 4  # A, C, G, T
EMBED_SCALE = 0.5
MIB = 1024 * 1024


# ----------------------------------------------------------------------------- measurement


def proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or ``None`` off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak RSS of this process: ``ru_maxrss`` is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int | None:
    kib = proc_status_kib("VmRSS")
    return None if kib is None else kib * 1024


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors in a (nested) state: tensors, dataclasses, sequences, dicts."""
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(tensor_bytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(item) for item in obj)
    if isinstance(obj, dict):
        return sum(tensor_bytes(item) for item in obj.values())
    return 0


# ----------------------------------------------------------------------------- worker


def build_model() -> nn.Module:
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig, TitansLMM

    memory = MemoryConfig.preset("titans", num_heads=HEADS, head_dim=HEAD_DIM, chunk_size=CHUNK)
    return TitansLMM(LMMConfig(dim=DIM, depth=DEPTH, memory=memory)).eval()


def stream(length: int, piece: int, seed: int) -> dict[str, Any]:
    """Stream ``length`` tokens through the model, ``piece`` at a time; the worker's JSON row."""
    torch.manual_seed(seed)
    model = build_model()
    embed = nn.Embedding(VOCAB, DIM)
    nn.init.normal_(embed.weight, std=EMBED_SCALE)
    params = sum(p.numel() for p in model.parameters())
    tokens_rng = torch.Generator().manual_seed(seed + 1)

    state = None
    done = pieces = 0
    finite = True
    state_bytes = 0
    rss_first: int | None = None
    start = time.perf_counter()
    with torch.inference_mode():
        while done < length:
            n = min(piece, length - done)
            tokens = torch.randint(VOCAB, (BATCH, n), generator=tokens_rng)
            h, state = model(embed(tokens), state=state)
            finite = finite and bool(torch.isfinite(h).all())
            del h
            state_bytes = max(state_bytes, tensor_bytes(state))
            done += n
            pieces += 1
            if pieces == 1:
                rss_first = current_rss_bytes()
    seconds = time.perf_counter() - start
    return {
        "length": length,
        "tokens": done * BATCH,
        "pieces": pieces,
        "seconds": seconds,
        "tokens_per_s": done * BATCH / seconds,
        "rss_first_bytes": rss_first,
        "rss_last_bytes": current_rss_bytes(),
        "peak_rss_bytes": peak_rss_bytes(),
        "state_bytes": state_bytes,
        "params": params,
        "finite": finite,
    }


# ----------------------------------------------------------------------------- parent


def run_worker(length: int, args: argparse.Namespace) -> dict[str, Any]:
    """One length in a fresh interpreter; its JSON row, or ``{"length", "error"}``."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(length),
        "--piece",
        str(args.piece),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    print(f"streaming {length:,} tokens ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        print(proc.stderr, file=sys.stderr)
        return {"length": length, "error": f"worker exit {proc.returncode}: {tail}"}
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  {row['seconds']:.1f} s, {row['tokens_per_s']:,.0f} tokens/s, "
        f"peak RSS {row['peak_rss_bytes'] / MIB:.1f} MiB",
        file=sys.stderr,
    )
    return row


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.1f}"


def load_avg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def render(rows: list[dict[str, Any]], args: argparse.Namespace, loads: tuple[float, float]) -> str:
    ok = [row for row in rows if "error" not in row]
    base = min(ok, key=lambda row: row["length"]) if ok else None
    params = f"{ok[0]['params']:,}" if ok else "n/a"
    state = f"{max(row['state_bytes'] for row in ok) / 1024:.1f} KiB" if ok else "n/a"
    lines = [
        f"# Streaming a Titans LMM on CPU: B={BATCH}, pieces of {args.piece} tokens",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"1-min load avg {loads[0]:.2f} at start, {loads[1]:.2f} at end",
        f"- torch {torch.__version__}, python {platform.python_version()}",
        f"- model: TitansLMM(dim={DIM}, depth={DEPTH}), memory preset `titans` with {HEADS} "
        f"heads x {HEAD_DIM}, chunk {CHUNK}; {params} parameters; fp32, eval, inference_mode",
        f"- input: uniform 4-letter tokens, seed {args.seed}, drawn piece by piece and embedded "
        f"by a fixed random nn.Embedding({VOCAB}, {DIM}) (std {EMBED_SCALE}); the last piece "
        "may be shorter",
        f"- streaming state (largest over all pieces and lengths): {state}",
        "- each length runs in a fresh subprocess; seconds include token generation, embedding "
        "and the first (warm-up) call",
        "",
        "| length | pieces | seconds | tokens/s | RSS after first piece MiB "
        "| RSS after last piece MiB | peak RSS MiB | peak growth vs smallest MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['length']:,} | {row['error']} | | | | | | |")
            continue
        growth = row["peak_rss_bytes"] - base["peak_rss_bytes"] if base is not None else 0
        note = "" if row["finite"] else " (non-finite output)"
        lines.append(
            f"| {row['length']:,}{note} | {row['pieces']:,} | {row['seconds']:.1f} "
            f"| {row['tokens_per_s']:,.0f} | {mib(row['rss_first_bytes'])} "
            f"| {mib(row['rss_last_bytes'])} | {mib(row['peak_rss_bytes'])} "
            f"| {growth / MIB:+.1f} |"
        )
    lines += [
        "",
        "RSS is the whole process (Python, torch, model); peak RSS is `ru_maxrss`. Flat RSS "
        "and a peak growth near 0 MiB across lengths mean memory does not grow with the length "
        "streamed.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS, help="tokens to stream"
    )
    parser.add_argument("--piece", type=int, default=4096, help="tokens per call (default 4096)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="model and token seed (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output path")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.piece < 1 or any(length < 1 for length in args.lengths):
        parser.error("--piece and --lengths must be >= 1")

    if args.worker is not None:
        torch.set_num_threads(args.threads)
        print(json.dumps(stream(args.worker, args.piece, args.seed)))
        return 0

    load = load_avg()
    rows = [run_worker(length, args) for length in sorted(set(args.lengths))]
    table = render(rows, args, (load, load_avg()))
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}", file=sys.stderr)
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
