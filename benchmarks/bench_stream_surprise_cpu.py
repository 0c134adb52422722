"""CPU benchmark: per-base surprise of a long FASTA record through the product path.

This is a benchmark, not a test. Run it from the repository root with the project's venv::

    .venv/bin/python benchmarks/bench_stream_surprise_cpu.py

(flags: ``--lengths`` (default ``250000 1000000 2000000``), ``--segment`` (default 4096),
``--threads`` (default 1), ``--out``). It prints one markdown table and writes it to
``benchmarks/results/stream_surprise_cpu.md``.

What it does: it saves a DNA classifier of the genomics benchmark's shape (Titans LMM, dim 64,
depth 2, stem 9, ``titans`` memory with 4 heads of 16, chunk 16; untrained weights, seed 0,
since speed and memory do not depend on them) with :func:`titans_sci.modelfolder.save_model`,
writes one FASTA record per length made of real bases (the GUE prom_core_all training sequences
end to end), and for each length runs ``titans_sci.load(model).stream_surprise(fasta, csv)`` in
a fresh subprocess: the record streams ``segment`` bases at a time with the memories' state
carried, and every base's surprise (2 layers x 4 heads) is appended to a CSV. The worker reports
its wall time (loading included), the rows written, the RSS after loading the model and at the
end, and its peak RSS (``ru_maxrss``). The record's text is the only thing that grows with the
length (one byte per base, plus its FASTA parse), so the peak RSS should grow by about that much
and no more."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from bench_streaming_cpu import MIB, current_rss_bytes, load_avg, peak_rss_bytes
from machine import cpu_model

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "stream_surprise_cpu.md"
SOURCE = "gue/prom/prom_core_all"


def save_classifier(folder: Path) -> None:
    from titans_sci.memory import MemoryConfig
    from titans_sci.modelfolder import save_model
    from titans_sci.models import LMMConfig
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

    torch.manual_seed(0)
    memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=16)
    backbone = LMMConfig(dim=64, depth=2, bidirectional=True, memory=memory)
    config = ClassifierConfig(backbone, num_classes=2, stem_kernel=9, pool="max")
    model = DNAClassifier(config).eval()
    save_model(folder, model, {"classes": [0, 1]})


def write_fasta(path: Path, length: int) -> None:
    """One record of ``length`` real bases (the source's sequences end to end, repeated as
    often as needed), in lines of 80 as FASTA files of chromosomes are."""
    from titans_sci.data.registry import load_manifest

    frame = pd.read_csv(load_manifest(SOURCE).splits["train"].file)
    bases = "".join(frame["sequence"])
    with open(path, "w") as handle:
        handle.write(f">{SOURCE}_{length}\n")
        written = 0
        while written < length:
            block = bases[: min(len(bases), length - written)]
            for i in range(0, len(block), 80):
                handle.write(block[i : i + 80] + "\n")
            written += len(block)


def worker(
    model: Path, fasta: Path, output: Path, segment: int, window: int, stride: int, batch: int
) -> dict:
    import titans_sci

    start = time.perf_counter()
    classifier = titans_sci.load(model)
    rss_loaded = current_rss_bytes()
    if window:
        rows = classifier.predict_windows(
            fasta, output, window, stride or None, batch_size=batch, progress=False
        )
    else:
        rows = classifier.stream_surprise(fasta, output, segment=segment, progress=False)
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "seconds": seconds,
        "bases_per_s": rows / seconds,
        "rss_loaded": rss_loaded,
        "rss_end": current_rss_bytes(),
        "peak_rss": peak_rss_bytes(),
        "csv_bytes": output.stat().st_size,
    }


def _describe_code(tree: Path) -> str:
    """A source tree as its git commit (with ``+changes`` when its work tree differs)."""
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "titans_sci"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return f"{head or tree.name}{' +changes' if dirty else ''}"


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[250_000, 1_000_000, 2_000_000])
    parser.add_argument("--segment", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--window",
        type=int,
        default=0,
        help="score WINDOW-base windows (predict --window) instead of streaming the surprise",
    )
    parser.add_argument(
        "--code",
        type=Path,
        nargs="+",
        default=[REPO_ROOT],
        help="source trees to run (each worker imports titans_sci from there; e.g. an old "
        "commit's `git worktree` next to this one)",
    )
    parser.add_argument(
        "--stride", type=int, default=0, help="bases between windows (default WINDOW)"
    )
    parser.add_argument("--batch", type=int, default=256, help="windows per batch")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        work = worker(*args.worker, args.segment, args.window, args.stride, args.batch)
        print(json.dumps(work))
        return 0
    if args.out is None:
        args.out = DEFAULT_OUT if not args.window else DEFAULT_OUT.with_name("windows_cpu.md")

    loads = [load_avg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_classifier(root / "model")
        for length in sorted(set(args.lengths)):
            fasta, csv = root / f"{length}.fa", root / f"{length}.csv"
            write_fasta(fasta, length)
            for code in args.code:
                print(f"{code}: {length:,} bases ...", file=sys.stderr, flush=True)
                cmd = [sys.executable, __file__, "--threads", str(args.threads)]
                cmd += ["--segment", str(args.segment), "--window", str(args.window)]
                cmd += ["--stride", str(args.stride), "--batch", str(args.batch)]
                cmd += ["--worker", str(root / "model"), str(fasta)]
                env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(args.threads)}
                proc = subprocess.run([*cmd, str(csv)], capture_output=True, text=True, env=env)
                if proc.returncode:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                row = {"length": length, "code": _describe_code(code)}
                row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"  {row['seconds']:.1f} s, peak {mib(row['peak_rss'])} MiB", file=sys.stderr)
                rows.append(row)
                csv.unlink()
            fasta.unlink()
    loads.append(load_avg())

    what = (
        f"`predict_windows` ({args.window}-base windows, stride {args.stride or args.window}, "
        f"batches of {args.batch})"
        if args.window
        else f"`stream_surprise` (segments of {args.segment} bases, state carried)"
    )
    lines = [
        f"# A long FASTA record through {what}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"1-min load avg {loads[0]:.2f} at start, {loads[1]:.2f} at end",
        f"- torch {torch.__version__}, python {platform.python_version()}",
        "- model: DNAClassifier of the genomics benchmark's shape (Titans LMM dim 64, depth 2, "
        "stem 9, memory `titans` 4 heads x 16, chunk 16), untrained, fp32; saved and loaded "
        "through `titans_sci.save_model`/`titans_sci.load`",
        f"- input: one FASTA record of real bases ({SOURCE} training sequences end to end, "
        "repeated), in lines of 80; one CSV row per "
        + ("window (record, start, end, p_0, p_1)" if args.window else "base (8 surprise columns)"),
        "- command: `.venv/bin/python benchmarks/bench_stream_surprise_cpu.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`; each length and code tree in a fresh subprocess; seconds include loading the "
        "model and writing the CSV",
        "",
        "| code | bases | CSV rows | seconds | bases/s | CSV MiB | RSS after loading MiB "
        "| peak RSS MiB | peak growth vs loaded MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['code']} | {row['length']:,} | {row['rows']:,} | {row['seconds']:.1f} "
            f"| {row['length'] / row['seconds']:,.0f} | {mib(row['csv_bytes'])} "
            f"| {mib(row['rss_loaded'])} | {mib(row['peak_rss'])} "
            f"| {(row['peak_rss'] - row['rss_loaded']) / MIB:+.1f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
