"""What the attributions and variant effects of issue 41 show on real promoters, and what they
cost.

**Known answer** (``--seeds``): the shipped TATA-promoter classifier (``tasks/
gue_prom_core_tata.toml``, its full budget) is trained per seed, and beside it a control with
the same budget on the same sequences with their training and dev labels shuffled (seeded). On
every test promoter (label 1) holding a TATA box (the first match of ``TATA[AT]A[AT]``), ISM,
gradient x input and integrated gradients (64 steps) of class 1 are taken; the figure is the
mean absolute attribution at the box's 7 positions over the mean at the other positions (each
averaged over the promoters).
The variant test: every base of each box changed (to the base two steps on in ACGT: A->G,
T->C, breaking the A/T run), and as many changes at random positions outside the box (seeded);
the mean absolute change of the strand-averaged log-odds of class 1, box over random.
Integrated gradients' completeness gap (how far their sum is from the score's change from the
baseline, over that change, the median over the promoters) says how smooth the score is along
the path.

**Cost** (``--cost``, run alone on the machine): ISM and gradient sequences/s of the trained
seed-1 classifier on 70-base test promoters, variants/s of ``titans-sci variants`` against a
real 1 Mb reference (yeast chromosome IV's first 1,000,000 bases), and the peak RSS of a fresh
process scoring 10,000 variants on that reference and on its first 250,000 bases (memory
constant in the chromosome's length).

    .venv/bin/python benchmarks/bench_attributions.py --seeds 1 2 3 --runs runs/attributions
    .venv/bin/python benchmarks/bench_attributions.py --cost --runs runs/attributions
    .venv/bin/python benchmarks/bench_attributions.py --profile 1 --runs runs/attributions

``--profile SEED`` draws ``attributions_tata_profile.png``: the ISM attribution (signed, class
1) of every TATA-box promoter aligned at its box's first base and averaged, for the classifier
and its control of that seed.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import describe
from store import save

from titans_sci import load
from titans_sci.data.dna import read_sequences
from titans_sci.explain import (
    baseline_scores,
    classifier_view,
    gradient_x_input,
    gradients,
    integrated_gradients,
    ism_track,
    saturation_mutagenesis,
)
from titans_sci.tasks import load_task, run
from titans_sci.tasks.config import parse_overrides
from titans_sci.version import code_version

RESULTS = Path(__file__).resolve().parent / "results"
TASK = "tasks/gue_prom_core_tata.toml"
DATA = Path("datasets/gue/prom/prom_core_tata")
TATA = re.compile("TATA[AT]A[AT]")
BOX = 7
SWAP = {"A": "G", "C": "T", "G": "A", "T": "C"}  # two steps on in ACGT
STEPS = 64  # integrated gradients' points on the path
METHODS = {"ism": "ISM", "gradient_x_input": "gradient x input",
           "integrated_gradients": "integrated gradients"}  # fmt: skip


def _shuffled_files(folder: Path, seed: int) -> dict[str, str]:
    """The task's train and dev CSVs with their labels shuffled (test as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {}
    for split in ("train", "dev", "test"):
        with gzip.open(DATA / f"{split}.csv.gz", "rt") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
        if split != "test":
            labels = rng.permutation([r[1] for r in body])
            body = [[r[0], label] for r, label in zip(body, labels, strict=True)]
        path = folder / f"{split}.csv"
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *body])
        files[f"data.{split}"] = str(path.resolve())
    return files


def train(seed: int, runs: Path, control: bool, overrides: dict[str, Any]) -> Path:
    """The task's classifier at ``seed`` (the control: shuffled labels), without the task's
    baselines, resumed if started (a finished run is reused as it is); its run folder (the
    model in ``checkpoints/seed<seed>/titans/model``)."""
    name = f"attributions_{'control' if control else 'tata'}_seed{seed}"
    if (runs / name / "results.json").exists():  # finished: reused as it is
        return runs / name
    settings: dict[str, Any] = {**overrides, "name": name, "protocol.seeds": [seed],
                                "baselines.kmer_lr": False, "baselines.cnn": False}  # fmt: skip
    if control:
        settings |= {"data.dataset": None, **_shuffled_files(runs / f"{name}_data", seed)}
    task = load_task(TASK, settings)
    run(task, runs, resume=(runs / name / "run.json").exists(), progress=False)
    return runs / name


def _sha() -> str:
    return str(code_version()["source_sha256"])[:12]


def _model(folder: Path, seed: int) -> Path:
    return folder / "checkpoints" / f"seed{seed}" / "titans" / "model"


def tata_promoters() -> list[tuple[str, int]]:
    """``(sequence, box start)`` of every test promoter (label 1) holding a TATA box."""
    found = []
    for record in read_sequences(DATA / "test.csv.gz"):
        match = TATA.search(record.sequence.upper())
        if record.label == 1 and match:
            found.append((record.sequence.upper(), match.start()))
    return found


def known_answer(folder: Path, promoters: list[tuple[str, int]], seed: int) -> dict[str, float]:
    """The TATA-box attribution ratios and the variant test of one saved classifier."""
    view = classifier_view(load(folder).model)
    inside: dict[str, list[float]] = {name: [] for name in METHODS}
    outside: dict[str, list[float]] = {name: [] for name in METHODS}
    box_effect, random_effect, gaps = [], [], []
    rng = np.random.default_rng(seed)
    for sequence, start in promoters:
        ids = view.encode(sequence)
        integrated = integrated_gradients(view, ids, steps=STEPS)[:, 1]
        with torch.no_grad():
            change = float(view.score(ids[None])[0, 1] - baseline_scores(view, ids)[1])
        gaps.append(abs(float(integrated.sum()) - change) / max(abs(change), 1e-12))
        tracks = {
            "ism": ism_track(saturation_mutagenesis(view, ids), ids, view.alphabet)[:, 1],
            "gradient_x_input": gradient_x_input(gradients(view, ids), ids, view.alphabet)[:, 1],
            "integrated_gradients": integrated,
        }
        box = np.zeros(len(sequence), bool)
        box[start : start + BOX] = True
        for name, track in tracks.items():
            values = track.abs().numpy()
            inside[name].append(float(values[box].mean()))
            outside[name].append(float(values[~box].mean()))
        others = rng.choice(np.flatnonzero(~box), size=BOX, replace=False)
        changes = [*range(start, start + BOX), *others]
        mutants = []
        for position in changes:
            mutant = list(sequence)
            mutant[position] = SWAP[sequence[position]]
            mutants.append(view.encode("".join(mutant)))
        with torch.no_grad():
            scores = view.score(torch.stack([ids, *mutants]))
        odds = (scores[:, 1] - scores[:, 0]).numpy()  # the strand-averaged log-odds of class 1
        effects = np.abs(odds[1:] - odds[0])
        box_effect.append(float(effects[:BOX].mean()))
        random_effect.append(float(effects[BOX:].mean()))
    ratios = {f"{k}_ratio": float(np.mean(inside[k]) / np.mean(outside[k])) for k in inside}
    return {
        **ratios,
        "completeness_gap": float(np.median(gaps)),
        "variant_box": float(np.mean(box_effect)),
        "variant_random": float(np.mean(random_effect)),
        "variant_ratio": float(np.mean(box_effect) / np.mean(random_effect)),
        "promoters": len(promoters),
    }


def _figure(entry: dict[str, Any], field: str, digits: int = 2) -> str:
    """``entry[field]`` to ``digits``; "-" in a row measured before the field existed."""
    return f"{entry[field]:.{digits}f}" if field in entry else "-"


def render(store: dict[str, dict]) -> str:
    lines = [
        "# Attributions and variant effects on real promoters (issue 41)",
        "",
        f"`benchmarks/bench_attributions.py`: `{TASK}` at its own budget per seed, and a "
        "control trained alike on the same sequences with shuffled training and dev labels. "
        "On every GUE prom_core_tata test promoter (label 1) holding a TATA box (first "
        "`TATA[AT]A[AT]`), class 1's attributions (both strands averaged): the mean absolute "
        "attribution at the box's 7 bases over that at the other 63 (each averaged over the "
        "promoters). Variant test: each box base changed (A->G, T->C) against as many random "
        "changes outside the box; mean |change of the strand-averaged log-odds|, box over "
        "random. Goal: the box carries at least 3x.",
        "",
        f"Integrated gradients: {STEPS} steps from the uniform-base baseline; their "
        "completeness gap is |sum - change of the score from the baseline| / |change|, the "
        "median over the promoters (small: the score is smooth along the path).",
        "",
        "| model | seed | promoters | ISM ratio | gradient x input ratio | integrated gradients "
        "ratio | IG completeness gap | variant: box | variant: random | variant ratio | test "
        "MCC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in sorted(store):
        e = store[key]
        lines.append(
            f"| {e['model']} | {e['seed']} | {e['promoters']} | {e['ism_ratio']:.2f} | "
            f"{e['gradient_x_input_ratio']:.2f} | {_figure(e, 'integrated_gradients_ratio')} | "
            f"{_figure(e, 'completeness_gap', 3)} | {e['variant_box']:.3f} | "
            f"{e['variant_random']:.3f} | {e['variant_ratio']:.2f} | {e['mcc']:.3f} |"
        )
    for model in ("TATA classifier", "shuffled-label control"):
        rows = [e for e in store.values() if e["model"] == model]
        if len(rows) > 1:
            fields = [(f"{k}_ratio", name) for k, name in METHODS.items()
                      if all(f"{k}_ratio" in r for r in rows)]  # fmt: skip
            parts = [
                f"{name} {np.mean([r[field] for r in rows]):.2f} +- "
                f"{np.std([r[field] for r in rows]):.2f}"
                for field, name in [*fields, ("variant_ratio", "variants")]
            ]
            lines.append(f"\n{model}, {len(rows)} seeds (mean +- std): " + ", ".join(parts) + ".")
    lines += ["", "## Budgets", ""]
    lines += [f"- {k}: {store[k]['budget']}" for k in sorted(store)]
    return "\n".join(lines) + "\n"


def known_answers(seeds: list[int], runs: Path, out: Path, overrides: dict[str, Any]) -> None:
    """Train (or reuse) and measure each seed's classifier and control; an entry already in
    the store, measured by this code with these overrides, is kept as it is."""
    promoters = tata_promoters()
    stored = json.loads((out / "attributions.json").read_text()) if (
        out / "attributions.json").exists() else {}  # fmt: skip
    for seed in seeds:
        for control in (False, True):
            key = f"{'control' if control else 'tata'}|seed{seed}"
            done = stored.get(key)
            if done and done["overrides"] == overrides and done["budget"].endswith(_sha()):
                print(key, "measured by this code: kept", flush=True)
                continue
            started = time.time()
            folder = train(seed, runs, control, overrides)
            result = known_answer(_model(folder, seed), promoters, seed)
            name = "shuffled-label control" if control else "TATA classifier"
            runs_json = json.loads((folder / "results.json").read_text())["runs"]
            [row] = [r for r in runs_json if r["model"] == "titans"]
            entry = {
                "model": name, "seed": seed, **result, "mcc": float(row["mcc"]),
                "overrides": overrides,
                "budget": f"{TASK} as shipped{' with ' + str(overrides) if overrides else ''}, "
                f"seed {seed}; {time.time() - started:.0f} s wall (training resumed or reused "
                f"where done); {describe(torch.get_num_threads())}; "
                f"{datetime.date.today().isoformat()}; code {_sha()}",
            }  # fmt: skip
            save({key: entry}, out / "attributions.json", out / "attributions.md", render)
            print(key, {k: v for k, v in entry.items() if k != "budget"}, flush=True)


def cost(runs: Path, out: Path) -> None:
    """Throughput on the trained seed-1 classifier and peak RSS of fresh processes."""
    folder = _model(train(1, runs, False, {}), 1)
    model = load(folder)
    torch.set_num_threads(1)
    sequences = [s for s, _ in tata_promoters()[:40]]
    started = time.time()
    view = classifier_view(model.model)
    for sequence in sequences:
        saturation_mutagenesis(view, view.encode(sequence))
    ism_rate = len(sequences) / (time.time() - started)
    started = time.time()
    for sequence in sequences:
        gradients(view, view.encode(sequence))
    gradient_rate = len(sequences) / (time.time() - started)
    started = time.time()
    for sequence in sequences:
        integrated_gradients(view, view.encode(sequence), steps=STEPS)
    integrated_rate = len(sequences) / (time.time() - started)
    lines = [
        "# Attributions and variant effects: cost on CPU (issue 41)",
        "",
        f"- {datetime.date.today().isoformat()}, {describe(1)}, code {_sha()}",
        f"- the seed-1 classifier of `{TASK}` (dim 64, depth 2), 1 torch thread, nothing else "
        "running",
        "",
        f"- ISM of 70-base promoters (210 mutants each, both strands): {ism_rate:.2f} sequences/s",
        f"- gradients (two classes, both strands): {gradient_rate:.2f} sequences/s",
        f"- integrated gradients ({STEPS} steps, two classes, both strands): "
        f"{integrated_rate:.2f} sequences/s",
        "",
        "`titans-sci variants` in a fresh process that does nothing else (peak RSS: VmHWM), "
        "70-base windows, 256 variants (512 windows) a batch:",
        "",
        "| reference | variants | seconds | variants/s | RSS before MiB | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for bases in (250_000, 1_000_000):
        seconds, before, peak = _variants_process(folder, bases, 10_000)
        rate, before_mib, peak_mib = 10_000 / seconds, before / 1024, peak / 1024
        lines.append(f"| yeast chrIV, first {bases:,} bases | 10,000 | {seconds:.0f} | "
                     f"{rate:.0f} | {before_mib:.0f} | {peak_mib:.0f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    (out / "attributions_cost_cpu.md").write_text(text)
    print(text)


def _variants_files(folder: Path, bases: int, count: int) -> None:
    """``folder/ref.fa``: the first ``bases`` bases of yeast chromosome IV; ``folder/v.vcf``:
    ``count`` single-base changes at random positions of it (seeded)."""
    from Bio import SeqIO

    with gzip.open("datasets/genomes/s_cerevisiae_s288c/chr04.gb.gz", "rt") as handle:
        sequence = str(next(SeqIO.parse(handle, "genbank")).seq).upper()[:bases]
    lines = [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    (folder / "ref.fa").write_text(">chrIV\n" + "\n".join(lines) + "\n")
    positions = np.sort(np.random.default_rng(0).choice(np.arange(100, bases - 100), count,
                                                        replace=False))  # fmt: skip
    swap = {**SWAP, "N": "A"}
    rows = [f"chrIV\t{p + 1}\t.\t{sequence[p]}\t{swap[sequence[p]]}" for p in positions]
    (folder / "v.vcf").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(rows) + "\n")


def _variants_process(model: Path, bases: int, count: int) -> tuple[float, int, int]:
    """``titans-sci variants`` on :func:`_variants_files` in a fresh process that does nothing
    else: ``(seconds, RSS before it in KiB, peak RSS in KiB)``."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
    code = (
        "import sys, time, re\n"
        "import torch\n"
        "from titans_sci.cli import main\n"
        "torch.set_num_threads(1)\n"
        "def hwm():\n"
        "    text = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', text).group(1))\n"
        "model, folder = sys.argv[1], sys.argv[2]\n"
        "before = hwm()\n"
        "t = time.time()\n"
        "main(['variants', model, f'{folder}/ref.fa', f'{folder}/v.vcf', '-o', "
        "f'{folder}/out.csv', '-q'])\n"
        "print(time.time() - t, before, hwm())\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        _variants_files(Path(folder), bases, count)
        done = subprocess.run(
            [sys.executable, "-c", code, str(model), folder],
            capture_output=True, text=True, check=True,
            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    seconds, before, peak = done.stdout.split()[-3:]
    return float(seconds), int(before), int(peak)


def profile(seed: int, runs: Path, out: Path) -> Path:
    """The mean ISM track of the TATA-box promoters, aligned at the box (see the docstring)."""
    from matplotlib.figure import Figure

    promoters = tata_promoters()
    figure = Figure(figsize=(8, 3.2))
    axis = figure.subplots()
    offsets = np.arange(-30, 41)
    for control, style in ((False, "-"), (True, "--")):
        folder = _model(runs / f"attributions_{'control' if control else 'tata'}_seed{seed}",
                        seed)  # fmt: skip
        view = classifier_view(load(folder).model)
        sums, counts = np.zeros(len(offsets)), np.zeros(len(offsets))
        for sequence, start in promoters:
            ids = view.encode(sequence)
            track = ism_track(saturation_mutagenesis(view, ids), ids, view.alphabet)[:, 1]
            at = offsets + start
            inside = (at >= 0) & (at < len(sequence))
            sums[inside] += track.numpy()[at[inside]]
            counts[inside] += 1
        label = "shuffled-label control" if control else "TATA classifier"
        mean = np.where(counts >= 10, sums / np.maximum(counts, 1), np.nan)  # 10+ promoters
        axis.plot(offsets, mean, style, label=label)
    axis.axvspan(-0.5, BOX - 0.5, color="grey", alpha=0.2, label="TATA box (7 bases)")
    axis.axhline(0, color="grey", linewidth=0.5)
    axis.set_xlabel("position relative to the box's first base")
    axis.set_ylabel("mean ISM attribution (class 1)")
    axis.set_title(f"{len(promoters)} test promoters with a TATA box, seed {seed}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "attributions_tata_profile.png"
    figure.savefig(path, dpi=100)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[])
    parser.add_argument("--runs", type=Path, default=Path("runs/attributions"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--profile", type=int, default=None, metavar="SEED")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a task key (a smoke run: give another --out)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.seeds:
        known_answers(args.seeds, args.runs, args.out, parse_overrides(args.set))
    if args.cost:
        cost(args.runs, args.out)
    if args.profile is not None:
        print(profile(args.profile, args.runs, args.out))


if __name__ == "__main__":
    main()
