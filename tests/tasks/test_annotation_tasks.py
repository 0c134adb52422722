"""Genome annotation as a task on the real yeast genome (chromosomes cut short): the splits keep
every test base out of training, the run scores every model on the same chromosomes, and the
saved model annotates a FASTA into a GFF3 that reads back (``titans-sci annotate``) and is
evaluated by ``titans-sci evaluate``; a user's own FASTA + GFF3 genome runs the same way."""

from __future__ import annotations

import gzip
import json
import math
import subprocess

import numpy as np
import pytest

from titans_sci import load
from titans_sci.cli import main
from titans_sci.data.annotation import (
    Feature,
    features_from_labels,
    read_genbank,
    read_gff3,
    write_gff3,
)
from titans_sci.data.dna import BASE_CODE
from titans_sci.evaluation.saved import evaluate_saved
from titans_sci.resources import datasets_dir
from titans_sci.tasks import load_task, run
from titans_sci.tasks.annotation import Annotation, Stretches, predict_labels

YEAST = datasets_dir() / "genomes" / "s_cerevisiae_s288c"
SMALL = {
    "training.epochs": 1,
    "training.stretch": 2048,
    "data.max_train": 6000,
    "data.max_eval": 5000,
    "protocol.seeds": [1, 2],
    "protocol.reset_every": [512],
    "model.backbone.dim": 16,
    "model.backbone.memory": {"preset": "titans", "num_heads": 2, "head_dim": 8, "chunk_size": 8},
}


@pytest.fixture(scope="module")
def yeast_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    task = load_task("tasks/annotate_yeast.toml", SMALL)
    return task, run(task, folder), folder / task.name


def test_no_test_or_dev_base_reaches_training():
    task = load_task("tasks/annotate_yeast.toml", SMALL)
    kind = Annotation(task)
    unit = next(kind.units())
    names = {split: {c.name for c in unit.data[split]} for split in ("train", "dev", "test")}
    assert names["test"] == {"chr14", "chr15", "chr16"} and names["dev"] == {"chr09"}
    assert len(names["train"]) == 12 and not names["train"] & (names["test"] | names["dev"])
    model = kind.models(unit)["titans"]()
    stretches = Stretches(model, unit.data["train"], task.training.stretch)
    covered = sum(b - a for _, a, b in stretches.items)
    assert covered == sum(len(c.codes) for c in unit.data["train"])  # every base once
    test_codes = {c.codes.tobytes() for c in unit.data["test"]}
    assert not any(codes.numpy().astype(np.uint8).tobytes() in test_codes
                   for codes in stretches.codes)  # fmt: skip


def test_the_memory_stage_trains_at_its_own_learning_rate():
    """The second stage trains every parameter at ``training.memory_lr``; the first, the
    parameters outside the memory layers, at ``training.lr``."""
    from titans_sci.tasks.runner import _stages

    task = load_task("tasks/annotate_yeast.toml", {**SMALL, "training.memory_lr": 3e-4})
    kind = Annotation(task)
    model = kind.models(next(kind.units()))["titans"]()
    stages = _stages(kind, model)
    assert [(name, changes) for name, _, changes in stages] == [
        ("local", {}),
        ("memory", {"lr": 3e-4}),
    ]
    assert len(stages[1][1]) == len(list(model.parameters())) > len(stages[0][1])


def test_every_model_is_scored_on_the_same_test_chromosomes(yeast_run):
    task, result, folder = yeast_run
    models = [r["model"] for r in result["runs"]]
    assert models == ["titans", "cnn", "attention", "augustus", "titans", "cnn", "attention"]
    for row in result["runs"]:
        for key, value in row.items():
            assert value is None or isinstance(value, str) or math.isfinite(value), (row, key)
        assert 0 <= row["cds_f1"] <= 1 if row["cds_f1"] is not None else True
    titans = [r for r in result["runs"] if r["model"] == "titans"]
    assert all("cds_f1_reset_512" in r for r in titans)
    augustus = next(r for r in result["runs"] if r["model"] == "augustus")
    assert augustus["cds_f1"] > 0.5 and augustus["rna_precision"] is None  # no RNA gene
    assert (
        "AUGUSTUS (3." in result["protocol"] and "test chromosomes' included" in result["protocol"]
    )
    text = (folder / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert {"annotation.png", "surprise.png"} <= {p.name for p in folder.glob("*.png")}


def test_the_saved_model_annotates_a_fasta_into_gff3_that_reads_back(yeast_run, tmp_path):
    _, _, folder = yeast_run
    saved = folder / "checkpoints" / "seed1" / "titans" / "model"
    [chromosome] = read_genbank(YEAST / "chr16.gb.gz")
    sequence = chromosome.sequence[:7001]
    fasta = tmp_path / "two.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(f">piece one\n{sequence}\n>short\n{sequence[:300]}\n")
    out = tmp_path / "two.gff3"
    assert main(["annotate", str(saved), str(fasta), "-o", str(out), "--quiet",
                 "--piece", "1000"]) == 0  # fmt: skip
    # valid GFF3 by the genometools validator (what genome browsers' loaders expect)
    checked = subprocess.run(["gt", "gff3validator", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0 and "input is valid GFF3" in checked.stdout, checked.stderr
    back = read_gff3(out, {"piece one": 7001, "short": 300})
    annotator = load(saved)
    for name, bases in (("piece one", sequence), ("short", sequence[:300])):
        codes = BASE_CODE[np.frombuffer(bases.encode(), np.uint8)]
        expected = features_from_labels(predict_labels(annotator.model, codes)[0])
        key = lambda f: (f.kind, f.strand, f.parts)  # noqa: E731
        assert sorted(map(key, back.get(name, []))) == sorted(map(key, expected))


def test_evaluate_scores_the_saved_model_on_its_test_chromosomes_or_a_genbank_file(yeast_run):
    _, _, folder = yeast_run
    annotator = load(folder / "checkpoints" / "seed1" / "titans" / "model")
    metrics = evaluate_saved(annotator, YEAST / "chr01.gb.gz")
    assert metrics["chromosomes"] == 1 and metrics["bases"] == 230_218
    assert {"cds_f1", "exon_f1", "cds_exact_f1", "mcc"} <= set(metrics)
    json.dumps(metrics, allow_nan=False)


def test_a_users_fasta_and_gff3_genome_runs_as_a_task(tmp_path):
    [chromosome] = read_genbank(YEAST / "chr01.gb.gz")
    pieces = {"chrA": (0, 40_000), "chrB": (40_000, 60_000), "chrC": (60_000, 90_000)}
    fasta, gff3 = tmp_path / "mine.fa", tmp_path / "mine.gff3"
    fasta.write_text("".join(f">{n}\n{chromosome.sequence[a:b]}\n" for n, (a, b) in pieces.items()))
    # the yeast genes written by write_gff3 are valid GFF3 too
    with open(gff3, "w") as handle:
        inside = {n: [_shifted(f, a) for f in chromosome.features if a <= f.start and f.stop <= b]
                  for n, (a, b) in pieces.items()}  # fmt: skip
        write_gff3(handle, [(n, b - a, inside[n]) for n, (a, b) in pieces.items()])
    checked = subprocess.run(["gt", "gff3validator", str(gff3)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    task_file = tmp_path / "mine.toml"
    task_file.write_text(
        'format = 2\nkind = "annotation"\nname = "mine"\n[data]\nfiles = ["mine.fa"]\n'
        'gff3 = "mine.gff3"\ndev = ["chrB"]\ntest = ["chrC"]\n[training]\nepochs = 1\n'
        "stretch = 4096\n[baselines]\ncnn = false\nattention = false\n"
        "[model.backbone]\ndim = 16\nmemory = { num_heads = 2, head_dim = 8, chunk_size = 8 }\n"
    )
    result = run(load_task(task_file), tmp_path / "runs")
    assert "train ['chrA'], dev ['chrB'], test ['chrC']" in result["protocol"]
    assert [r["model"] for r in result["runs"]] == ["titans"]


def _shifted(feature: Feature, offset: int) -> Feature:
    parts = tuple((a - offset, b - offset) for a, b in feature.parts)
    return Feature(feature.kind, feature.strand, parts, feature.name)


BAD = [
    ({"data.dev": ["chr14"]}, "chromosome 'chr14' is in two splits"),
    ({"data.test": ["chr99"]}, r"data\.test: no chromosome 'chr99' in the genome \(it has chr01"),
    ({"training.stretch": 1001}, r"training\.stretch = 1001 is not a multiple of model\.patch = 8"),
    ({"model.mixer": "conv"}, r"model\.mixer = 'conv': the task's Titans model reads with its"),
    ({"protocol.reset_every": [1001]}, r"reset_every: 1001 is not a multiple of model\.patch = 8"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_a_bad_annotation_task_is_refused_in_one_line(overrides, message):
    with pytest.raises(ValueError, match=message):
        Annotation(load_task("tasks/annotate_yeast.toml", overrides))


@pytest.mark.parametrize("mixer", ["memory", "attention", "conv"])
def test_stretches_from_refreshed_states_give_the_logits_of_the_whole_chromosome(mixer):
    """With the weights of the refresh, every stretch's logits (each reading starting from its
    kept state) are the whole chromosome's, read in one pass each way, at those bases."""
    import dataclasses

    import torch

    from titans_sci.models.genome_annotator import GenomeAnnotator, stream_logits
    from titans_sci.tasks.annotation import Chromosome

    task = load_task("tasks/annotate_yeast.toml", SMALL)
    torch.manual_seed(0)
    # float64: the memory's recurrence sums in other orders for other piece sizes
    model = GenomeAnnotator(dataclasses.replace(task.model, mixer=mixer)).double().eval()
    [record] = read_genbank(YEAST / "chr01.gb.gz")
    chromosome = Chromosome.of("chr01", record, 5003)  # not whole patches: padded at the end
    stretches = Stretches(model, [chromosome], 1024)
    stretches.refresh()
    whole = stream_logits(model, chromosome.codes)
    with torch.no_grad():
        for index, (_, a, b) in enumerate(stretches.items):
            got = stretches.logits(index).numpy()
            stop = min(b, 5003)  # the padding's bases are not the chromosome's
            np.testing.assert_allclose(got[: stop - a], whole[a:stop], atol=1e-5, rtol=1e-5)
