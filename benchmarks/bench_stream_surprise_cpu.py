"""CPU benchmark: per-base surprise of a long FASTA record through the product path.

This is a benchmark, not a test. Run it from the repository root with the project's venv::

    .venv/bin/python benchmarks/bench_stream_surprise_cpu.py

(flags: ``--lengths`` (default ``250000 1000000 2000000``), ``--segment`` (default 4096),
``--threads`` (default 1), ``--out``). It prints one markdown table and writes it to
``benchmarks/results/stream_surprise_cpu.md``.

What it does: it saves a DNA classifier of the genomics benchmark's shape (Titans LMM, dim 64,
depth 2, stem 9, ``titans`` memory with 4 heads of 16, chunk 16; untrained weights, seed 0,
since speed and memory do not depend on them) with :func:`titans_sci.api.save_model`, writes
one FASTA record per length made of real bases (the GUE prom_core_all training sequences end to
end), and for each length runs ``titans_sci.load(model).stream_surprise(fasta, csv)`` in a fresh
subprocess: the record streams ``segment`` bases at a time with the memories' state carried, and
every base's surprise (2 layers x 4 heads) is appended to a CSV. The worker reports its wall time
(loading included), the rows written, the RSS after loading the model and at the end, and its
peak RSS (``ru_maxrss``). The record's text is the only thing that grows with the length (one
byte per base, plus its FASTA parse), so the peak RSS should grow by about that much and no
more.
"""

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
    from titans_sci.api import save_model
    from titans_sci.memory import MemoryConfig
    from titans_sci.models import LMMConfig
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

    torch.manual_seed(0)
    memory = MemoryConfig.preset("titans", num_heads=4, head_dim=16, chunk_size=16)
    backbone = LMMConfig(dim=64, depth=2, bidirectional=True, memory=memory)
    config = ClassifierConfig(backbone, num_classes=2, stem_kernel=9, pool="max")
    model = DNAClassifier(config).eval()
    save_model(folder, model, {"classes": [0, 1]})


def write_fasta(path: Path, length: int) -> None:
    from titans_sci.data.registry import load_manifest

    frame = pd.read_csv(load_manifest(SOURCE).splits["train"].file)
    bases = "".join(frame["sequence"])
    if len(bases) < length:
        raise SystemExit(f"{SOURCE} has {len(bases):,} bases; {length:,} asked")
    path.write_text(f">{SOURCE}_{length}\n{bases[:length]}\n")


def worker(model: Path, fasta: Path, output: Path, segment: int) -> dict:
    import titans_sci

    start = time.perf_counter()
    classifier = titans_sci.load(model)
    rss_loaded = current_rss_bytes()
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


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[250_000, 1_000_000, 2_000_000])
    parser.add_argument("--segment", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.segment)))
        return 0

    loads = [load_avg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_classifier(root / "model")
        for length in sorted(set(args.lengths)):
            fasta, csv = root / f"{length}.fa", root / f"{length}.csv"
            write_fasta(fasta, length)
            print(f"streaming {length:,} bases ...", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--threads", str(args.threads)]
            cmd += ["--segment", str(args.segment), "--worker", str(root / "model"), str(fasta)]
            proc = subprocess.run([*cmd, str(csv)], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            row = {"length": length, **json.loads(proc.stdout.strip().splitlines()[-1])}
            print(f"  {row['seconds']:.1f} s, peak RSS {mib(row['peak_rss'])} MiB", file=sys.stderr)
            rows.append(row)
            csv.unlink()
    loads.append(load_avg())

    base = rows[0]["peak_rss"]
    lines = [
        "# Per-base surprise of a long FASTA record, streamed through `stream_surprise`",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"1-min load avg {loads[0]:.2f} at start, {loads[1]:.2f} at end",
        f"- torch {torch.__version__}, python {platform.python_version()}",
        "- model: DNAClassifier of the genomics benchmark's shape (Titans LMM dim 64, depth 2, "
        "stem 9, memory `titans` 4 heads x 16, chunk 16), untrained, fp32; saved and loaded "
        "through `titans_sci.save_model`/`titans_sci.load`",
        f"- input: one FASTA record of real bases ({SOURCE} training sequences end to end); "
        f"segments of {args.segment} bases with the state carried; one CSV row per base "
        "(record, position, base, 8 surprise columns)",
        "- command: `.venv/bin/python benchmarks/bench_stream_surprise_cpu.py`; each length in "
        "a fresh subprocess; seconds include loading the model and writing the CSV",
        "",
        "| bases | seconds | bases/s | CSV MiB | RSS after loading MiB | RSS at end MiB "
        "| peak RSS MiB | peak growth vs smallest MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['rows']:,} | {row['seconds']:.1f} | {row['bases_per_s']:,.0f} "
            f"| {mib(row['csv_bytes'])} | {mib(row['rss_loaded'])} | {mib(row['rss_end'])} "
            f"| {mib(row['peak_rss'])} | {(row['peak_rss'] - base) / MIB:+.1f} |"
        )
    lines += [
        "",
        "The record's text (one byte per base, read whole by biopython) is the only input held "
        "in memory; the model's state and each segment's tensors have a fixed size.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
