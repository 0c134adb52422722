"""Genome annotation over whole chromosomes (issue 39): ``tasks/annotate_yeast.toml`` run in
parts, one per seed and model (a run folder each, resumable), every finished part's rows
stored in ``annotation.json`` and the table ``annotation.md`` rebuilt.

The parts: the Titans annotator (``titans``: trained on the twelve training chromosomes,
selected on chromosome 9, scored once on chromosomes 14-16, also with its memory reset every 1,
4, 16 and 64 kb: the context curve), the CNN (``cnn``) and the sliding-window-attention
annotator (``attention``), each trained and scored the same way, and AUGUSTUS (``augustus``,
once: it has no seed). A part is the task with only that model (``run(models=...)``) and that
baseline switched on, so the parts of one seed are the rows of the task's own run with the same
settings; they run apart so that each fits in a working session (a whole seed takes several
hours on one core), its rows committed when it finishes.

    .venv/bin/python benchmarks/bench_annotation.py --seeds 1 2 3 --runs runs/annotation
    .venv/bin/python benchmarks/bench_annotation.py --seeds 1 --parts augustus cnn
    .venv/bin/python benchmarks/bench_annotation.py --render
    .venv/bin/python benchmarks/bench_annotation.py --cost        # bases/s and peak RSS

``--set KEY=VALUE`` overrides the task as ``titans-sci run --set`` does (recorded in the store
beside the rows; a smoke run is never mixed with the real one: its store is another file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from machine import describe
from store import save

from titans_sci.evaluation.protocol import summarize
from titans_sci.tasks import load_task, run
from titans_sci.tasks.config import AnnotationTask, parse_overrides
from titans_sci.version import code_version

RESULTS = Path(__file__).resolve().parent / "results"
TASK = "tasks/annotate_yeast.toml"
COLUMNS = {
    "cds_f1": "CDS base F1",
    "exon_f1": "exon F1",
    "cds_exact_f1": "exact CDS F1",
    "mcc": "MCC (5 labels)",
    "intron_f1": "intron F1",
    "rna_f1": "RNA F1",
    "cds_f1_argmax": "CDS base F1, argmax",
    "cds_exact_f1_argmax": "exact CDS F1, argmax",
}
NAMES = {"titans": "Titans (memory)", "cnn": "CNN", "attention": "sliding-window attention",
         "augustus": "AUGUSTUS"}  # fmt: skip


PARTS = ("titans", "cnn", "attention", "augustus")
#: The Titans run's report figures: predicted against true labels along 20 kb of the first test
#: chromosome, and the memory's surprise there; kept beside the table as
#: ``annotation_seed<seed>_<figure>``.
FIGURES = ("annotation.png", "surprise.png")


def part_name(seed: int, part: str) -> str:
    """The run folder's (and the task's) name of ``part`` at ``seed``."""
    return f"annotate_yeast_seed{seed}_{part}"


def run_part(seed: int, part: str, runs: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The task at ``seed`` with ``part`` alone (its model, or AUGUSTUS) into
    ``runs/<part_name>`` (resumed if started)."""
    name = part_name(seed, part)
    baselines = {f"baselines.{b}": b == part for b in PARTS[1:]}
    task = load_task(TASK, {**overrides, **baselines, "name": name, "protocol.seeds": [seed]})
    started = time.time()
    models = [] if part == "augustus" else [part]
    result = run(task, runs, resume=(runs / name / "run.json").exists(), models=models)
    return {
        "seed": seed,
        "part": part,
        "result": result,
        "seconds": round(time.time() - started),
        "date": datetime.date.today().isoformat(),
        "machine": describe(torch.get_num_threads()),
        "overrides": overrides,
    }


def _cell(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    stats = summarize([{"v": v} for v in known])["v"]
    spread = f" +- {stats['std']:.3f}" if len(known) > 1 else ""
    return f"{stats['mean']:.3f}{spread}"


def render(store: dict[str, Any]) -> str:
    """The markdown table of every stored seed."""
    parts = sorted(store.values(), key=lambda s: (s["seed"], PARTS.index(s["part"])))
    if not parts:
        return "# Genome annotation (issue 39)\n\nNo part has finished yet.\n"
    rows = [r for s in parts for r in s["result"]["runs"]]
    first = next((s for s in parts if s["part"] == "titans"), parts[0])
    task = first["result"]["task"]
    lines = [
        "# Genome annotation over whole chromosomes (issue 39)",
        "",
        f"Written by `benchmarks/bench_annotation.py` from `{TASK}`, one run per seed and model "
        "(the task with that model alone: the same settings, data and code as the task's "
        f"whole run). Protocol (as the seed {first['seed']} {first['part']} run states it): "
        f"{first['result']['protocol']}.",
        "",
        "Every base of the three test chromosomes (2.83 Mb) is scored. `CDS base F1`: coding "
        "bases on the right strand. `exon F1` and `exact CDS F1`: exons and whole CDS whose "
        "first and last bases (and strand) are exactly those of the annotation; a model's genes "
        "are read off its label track. A learned model's label track is the valid gene "
        "structure its logits like best (a Viterbi pass, `titans_sci.models.gene_structure`); "
        "the `argmax` columns score each base's highest logit alone instead. "
        "`MCC (5 labels)`: the multiclass MCC of every base. "
        "Mean +- standard deviation over seeds.",
        "",
        "| model | seeds | parameters | " + " | ".join(COLUMNS.values()) + " | epochs (best) |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | --- |",
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        cells = [_cell([r.get(k) for r in mine]) for k in COLUMNS]
        params = f"{mine[0]['parameters']:,}" if "parameters" in mine[0] else "-"
        epochs = ", ".join(f"{r['epochs_run']} ({r['best_epoch']})" for r in mine
                           if "epochs_run" in r) or "-"  # fmt: skip
        note = " (yeast-trained parameters, test genes included)" if model == "augustus" else ""
        lines.append(f"| {NAMES.get(model, model)}{note} | {len(mine)} | {params} | "
                     + " | ".join(cells) + f" | {epochs} |")  # fmt: skip
    titans = [r for r in rows if r["model"] == "titans"]
    resets = sorted({int(k.rsplit("_", 1)[1]) for r in titans for k in r if "_reset_" in k})
    if resets:
        lines += [
            "",
            "## The context curve",
            "",
            "The same trained Titans annotators, their memory dropped every N bases of each "
            "reading (and at each chromosome's ends), against the whole chromosome. The CNN's "
            f"reach is {_reach(task, 'conv')} bases per reading, the attention's "
            f"{_reach(task, 'attention')}.",
            "",
            "| memory reset every | CDS base F1 | exon F1 | exact CDS F1 |",
            "| --- | ---: | ---: | ---: |",
        ]
        for every in resets:
            cells = [
                _cell([r.get(f"{k}_reset_{every}") for r in titans]) for k in list(COLUMNS)[:3]
            ]
            lines.append(f"| {every:,} bases | " + " | ".join(cells) + " |")
        whole = [_cell([r.get(k) for r in titans]) for k in list(COLUMNS)[:3]]
        lines.append("| never (whole chromosome) | " + " | ".join(whole) + " |")
    titans_seeds = sorted({s["seed"] for s in parts if s["part"] == "titans"})
    if titans_seeds:
        lines += [
            "",
            "Each Titans run's report figures, beside this table: its predicted against true "
            "labels along 20 kb of the first test chromosome (`annotation_seed<N>_annotation.png`)"
            " and its memory's surprise there (`annotation_seed<N>_surprise.png`), for seeds "
            f"{', '.join(map(str, titans_seeds))}.",
        ]
    lines += ["", "## Budgets and runs", ""]
    training = task["training"]
    lines.append(
        f"- Each neural model: at most {training['epochs']} epochs (one epoch: every "
        f"{training['stretch']}-base stretch of the 8.8 Mb of training chromosomes once, in a "
        f"random order, each read both ways), AdamW lr {training['lr']}, weight decay "
        f"{training['weight_decay']}, clip {training['clip_norm']}, patience "
        f"{training['patience']} epochs on dev CDS base F1; the model as the task file gives it "
        f"(`{json.dumps(task['model'], sort_keys=True)}`)."
    )
    for s in parts:
        extra = f", overrides {s['overrides']}" if s["overrides"] else ""
        lines.append(
            f"- seed {s['seed']}, {NAMES[s['part']]}: {s['seconds'] / 60:.0f} min, {s['date']}, "
            f"{s['machine']}, code {s['result']['fingerprint']['code']}{extra}"
        )
    return "\n".join(lines) + "\n"


def _reach(task: dict[str, Any], mixer: str) -> str:
    from titans_sci.models.genome_annotator import AnnotatorConfig

    config = AnnotatorConfig.from_dict({**task["model"], "mixer": mixer})
    return f"{config.reach():,}"


def cost(out: Path) -> None:
    """Training bases/s (steps on chromosome 1), annotation bases/s and peak RSS of
    ``titans-sci annotate`` on the shortest and the longest test chromosome, in fresh
    processes, with the task's Titans model (untrained: the cost does not depend on the
    weights)."""
    code = (
        "import sys, time, resource, gzip, torch\n"
        "from pathlib import Path\n"
        "from titans_sci.data.annotation import read_genbank\n"
        "from titans_sci.modelfolder import save_model\n"
        "from titans_sci.models.genome_annotator import GenomeAnnotator\n"
        "from titans_sci.tasks import load_task\n"
        "from titans_sci.cli import main\n"
        "torch.set_num_threads(1)\n"
        "name, out = sys.argv[1], Path(sys.argv[2])\n"
        f"task = load_task('{TASK}')\n"
        "torch.manual_seed(0)\n"
        "save_model(out / 'model', GenomeAnnotator(task.model), {})\n"
        "[c] = read_genbank(f'datasets/genomes/s_cerevisiae_s288c/{name}.gb.gz')\n"
        "(out / f'{name}.fa').write_text(f'>{name}\\n{c.sequence}\\n')\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.time()\n"
        "main(['annotate', str(out / 'model'), str(out / f'{name}.fa'), '-o', "
        "str(out / f'{name}.gff3'), '--quiet'])\n"
        "seconds = time.time() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(c.sequence), seconds, before, peak)\n"
    )
    lines = ["| chromosome | bases | seconds | bases/s (both readings) | RSS before MiB | "
             "peak RSS MiB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name in ("chr01", "chr15"):
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run([sys.executable, "-c", code, name, folder], capture_output=True,
                                  text=True, check=True, env={"OMP_NUM_THREADS": "1",
                                  "PATH": "/usr/bin:/bin"})  # fmt: skip
        bases, seconds, before, peak = done.stdout.split()[-4:]
        lines.append(
            f"| {name} | {int(bases):,} | {float(seconds):.0f} | "
            f"{int(bases) / float(seconds):,.0f} | {int(before) / 1024:.0f} | "
            f"{int(peak) / 1024:.0f} |"
        )
    lines += ["", _training_speed()]
    text = "\n".join([
        "# Genome annotation: cost on CPU (issue 39)",
        "",
        f"- {datetime.date.today().isoformat()}, {describe(1)}, code {code_version()}",
        f"- the Titans annotator of `{TASK}`, untrained (cost does not depend on the weights), "
        "1 torch thread",
        "",
        "`titans-sci annotate` on a whole chromosome in a fresh process (peak RSS: ru_maxrss):",
        "",
        *lines,
    ])  # fmt: skip
    (out / "annotation_cost_cpu.md").write_text(text + "\n")
    print(text)


def _training_speed(steps: int = 6) -> str:
    from titans_sci.data.annotation import read_genbank
    from titans_sci.models.genome_annotator import GenomeAnnotator
    from titans_sci.tasks.annotation import Chromosome, Stretches

    torch.set_num_threads(1)
    task = load_task(TASK)
    assert isinstance(task, AnnotationTask)
    torch.manual_seed(0)
    model = GenomeAnnotator(task.model)
    [record] = read_genbank("datasets/genomes/s_cerevisiae_s288c/chr01.gb.gz")
    stretches = Stretches(model, [Chromosome.of("chr01", record, 0)], task.training.stretch)
    optimizer = torch.optim.AdamW(model.parameters(), task.training.lr)
    started = time.time()
    stretches.refresh()
    refresh = time.time() - started
    times = []
    for index in list(range(len(stretches.items)))[:steps]:
        t = time.time()
        stretches.loss(index).backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.time() - t)
    bases = sum(b - a for _, a, b in stretches.items[:steps])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (
        f"Training: {bases / sum(times):,.0f} bases/s over {steps} steps of "
        f"{task.training.stretch}-base stretches of chromosome 1 (both readings, forward, "
        f"backward and AdamW step); the epoch's state refresh read its 230 kb at "
        f"{len(record.sequence) / refresh:,.0f} bases/s; peak RSS {rss:.0f} MiB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--runs", type=Path, default=Path("runs/annotation"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--cost", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cost:
        cost(args.out)
        return
    overrides = parse_overrides(args.set)
    stem = "annotation" if not overrides else "annotation_smoke"
    store_path = args.out / f"{stem}.json"
    for seed in args.seeds:
        for part in args.parts:
            if part == "augustus" and seed != 1:
                continue  # a program without a seed: once
            cell = run_part(seed, part, args.runs, overrides)
            folder = args.runs / part_name(seed, part)
            for figure in (f for f in FIGURES if (folder / f).exists()):  # a Titans part's
                shutil.copyfile(folder / figure, args.out / f"{stem}_seed{seed}_{figure}")
            save({f"{seed}|{part}": cell}, store_path, args.out / f"{stem}.md", render)
    if args.render:
        store = json.loads(store_path.read_text()) if store_path.exists() else {}
        (args.out / f"{stem}.md").write_text(render(store))


if __name__ == "__main__":
    main()
