"""How fast each annotator learns (issue 39): a short training run on the first 200 kb of four
training chromosomes of ``tasks/annotate_yeast.toml`` (stretches of 8 kb, AdamW, clipping at
1), printing the mean loss of the last 50 steps and the dev CDS base F1 (chromosome 9's first
100 kb) after each epoch. The README's learning-speed figures come from it.

    .venv/bin/python benchmarks/probe_annotation_learning.py --mixer memory
    .venv/bin/python benchmarks/probe_annotation_learning.py --mixer memory --no-writes
    .venv/bin/python benchmarks/probe_annotation_learning.py --mixer memory --fresh-states
    .venv/bin/python benchmarks/probe_annotation_learning.py --mixer conv --set model.front=0

``--from-local CHECKPOINT`` probes the second training stage instead: the Titans model from a
first-stage checkpoint (``.../titans/local/checkpoint.pt`` of a run of the task), every
parameter trained by a fresh AdamW at ``--lr`` on 25 stretches of the task's size from two whole
training chromosomes (their states refreshed first, as an epoch starts), printing each loss::

    .venv/bin/python benchmarks/probe_annotation_learning.py --from-local CHECKPOINT --lr 2e-3
    .venv/bin/python benchmarks/probe_annotation_learning.py --from-local CHECKPOINT --lr 2e-4
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from titans_sci.layers import memory_writes
from titans_sci.models.genome_annotator import GenomeAnnotator
from titans_sci.tasks import load_task
from titans_sci.tasks.annotation import Annotation, Stretches, predict_labels, score
from titans_sci.tasks.config import parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixer", choices=["memory", "attention", "conv"], default="memory")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--no-writes", action="store_true", help="the memory only reads")
    parser.add_argument("--fresh-states", action="store_true", help="no state carried in")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--from-local", type=Path, default=None, metavar="CHECKPOINT")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.from_local is not None:
        second_stage(args.from_local, args.lr)
        return
    overrides = {"data.max_train": 200_000, "data.max_eval": 100_000, **parse_overrides(args.set)}
    task = load_task("tasks/annotate_yeast.toml", overrides)
    unit = next(Annotation(task).units())
    torch.manual_seed(0)
    model = GenomeAnnotator(dataclasses.replace(task.model, mixer=args.mixer))
    stretches = Stretches(model, unit.data["train"][:4], 8192)
    optimizer = torch.optim.AdamW(model.parameters(), args.lr)
    generator = torch.Generator().manual_seed(0)
    losses: list[float] = []
    started = time.time()
    quiet = memory_writes(model, False) if args.no_writes else contextlib.nullcontext()
    with quiet:
        for epoch in range(args.epochs):
            order = list(stretches.batches(epoch, generator))
            if args.fresh_states:
                stretches.states = [(None, None)] * len(stretches.items)
            for index in order:
                loss = stretches.loss(index)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                losses.append(loss.item())
            dev = unit.data["dev"]
            f1 = score(dev, {c.name: predict_labels(model, c.codes)[0] for c in dev})["cds_f1"]
            print(f"{args.mixer} epoch {epoch + 1}: {len(losses)} steps, loss (last 50) "
                  f"{np.mean(losses[-50:]):.3f}, dev CDS F1 {f1 or 0:.3f}, "
                  f"{time.time() - started:.0f} s", flush=True)  # fmt: skip


def second_stage(checkpoint: Path, lr: float, steps: int = 25) -> None:
    """The memory stage's first ``steps`` steps from a first-stage checkpoint (see above)."""
    task = load_task("tasks/annotate_yeast.toml")
    unit = next(Annotation(task).units())
    model = GenomeAnnotator(task.model)
    model.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    stretches = Stretches(model, unit.data["train"][:2], task.training.stretch)
    stretches.refresh()
    optimizer = torch.optim.AdamW(model.parameters(), lr, weight_decay=task.training.weight_decay)
    order = torch.randperm(len(stretches.items), generator=torch.Generator().manual_seed(0))
    for step, index in enumerate(order.tolist()[:steps]):
        loss = stretches.loss(index)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        print(f"lr {lr} step {step}: loss {loss.item():.3f}", flush=True)


if __name__ == "__main__":
    main()
