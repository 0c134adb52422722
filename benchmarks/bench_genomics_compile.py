"""CPU benchmark: what ``torch.compile`` buys on the genomics suite's own training step.

This is a benchmark, not a test: it prints one markdown table and writes it to
``benchmarks/results/genomics_compile_cpu.md`` (``--out`` changes the path).

The step is the suite's (``titans-sci bench genomics`` at its defaults): the GUE classifier of
``titans_sci.suites.genomics.build_task`` (LMM, dim 64, depth 2, bidirectional, 4 heads of
16, chunk 16, stem 9, max pooling), AdamW, batches of 32 real training sequences of a bundled
task (``--task``, default ``gue/mouse/0``) with reverse-complement augmentation, exactly as the
task kind yields them. Two copies of the model from the same seed, one eager and one wrapped
in ``torch.compile`` (``--mode``), take the same batches. The compiled copy's first steps
(compilation, and recompilation for the batch shapes that follow) are timed apart; then
``--rounds`` rounds of ``--steps`` steps alternate between the two, so that a neighbour's load
on the machine falls on both alike. Reported: the median step time of each, their ratio, the
compile time, and the steps after which compiling has paid for itself, set against the steps
of one epoch of the smallest and the largest bundled GUE task. The losses of the two copies
after the same steps are printed too (a change that keeps the numbers keeps them close).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import machine  # noqa: F401  (puts the repository on the path)
import pandas as pd
import torch

from titans_sci.data.registry import load_manifest
from titans_sci.models.dna_classifier import DNAClassifier
from titans_sci.suites.genomics import Entrant, GenomicsSuite, build_task
from titans_sci.tasks.classification import Classification


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gue/mouse/0")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="compiled steps timed as compile")
    parser.add_argument("--mode", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/genomics_compile_cpu.md")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = build_task(args.task, Entrant.parse("lmm"), GenomicsSuite(), baselines=False)
    kind = Classification(task)
    unit = next(kind.units())
    torch.manual_seed(1)
    eager = DNAClassifier(kind.models(unit)["titans"]().config)
    twin = DNAClassifier(eager.config)
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin, mode=None if args.mode == "default" else args.mode)
    optimizers = {
        name: torch.optim.AdamW(model.parameters(), lr=task.training.lr)
        for name, model in (("eager", eager), ("compiled", twin))
    }
    models = {"eager": eager, "compiled": compiled}
    generator = torch.Generator().manual_seed(1)
    batches = list(kind.batches(unit, eager)(0, generator))
    need = args.warmup + args.rounds * args.steps
    batches = (batches * (need // len(batches) + 1))[:need]
    tokens = batches[0][0].numel()

    def step(name: str, batch) -> float:
        ids, mask, labels = batch
        model, optimizer = models[name], optimizers[name]
        model.train()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(ids, mask), labels)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    start = time.perf_counter()
    first: dict[str, float] = {}
    for batch in batches[: args.warmup]:
        first.setdefault("compiled", step("compiled", batch))
        first.setdefault("eager", step("eager", batch))  # the same batches for both copies
    compile_seconds = time.perf_counter() - start
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    losses: dict[str, float] = {}
    rest = batches[args.warmup :]
    for r in range(args.rounds):
        chunk = rest[r * args.steps : (r + 1) * args.steps]
        for name in ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager"):
            for batch in chunk:
                begin = time.perf_counter()
                losses[name] = step(name, batch)
                times[name].append(time.perf_counter() - begin)
    median = {name: statistics.median(t) for name, t in times.items()}
    compile_seconds -= args.warmup * median["eager"]  # the eager steps inside the warm-up
    saving = median["eager"] - median["compiled"]
    breakeven = compile_seconds / saving if saving > 0 else float("inf")
    per_epoch = {
        n: -(-len(pd.read_csv(load_manifest(n).splits["train"].file)) // 32)
        for n in ("gue/mouse/3", "gue/prom/prom_core_all")  # the smallest and the largest
    }

    lines = [
        "# torch.compile on the genomics suite's training step (CPU)",
        "",
        f"`python benchmarks/bench_genomics_compile.py --task {args.task} --steps {args.steps} "
        f"--rounds {args.rounds} --mode {args.mode} --threads {args.threads}`; "
        f"{machine.describe(args.threads)}; "
        f"{dt.date.today().isoformat()}. Batches of {tuple(batches[0][0].shape)} real "
        f"training sequences of {args.task}.",
        "",
        "| | median step (s) | tokens/s | first step's loss | loss after the same steps |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("eager", "compiled"):
        lines.append(
            f"| {name} | {median[name]:.4f} | {tokens / median[name]:,.0f} | "
            f"{first[name]:.6f} | {losses[name]:.5f} |"
        )
    lines += [
        "",
        f"- compiled / eager step time: **{median['compiled'] / median['eager']:.3f}**",
        f"- compile time (the first {args.warmup} compiled steps, less eager steps): "
        f"{compile_seconds:.1f} s; paid back after {breakeven:,.0f} steps",
        "- steps per epoch (batch 32): "
        + ", ".join(f"{n} {int(v):,}" for n, v in per_epoch.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
