"""The commands a user runs on a saved classifier (the shipped TATA-promoter task at a tiny
budget): ``titans-sci explain`` on promoters (a CSV and a logo each) and ``titans-sci variants``
on a VCF against a reference FASTA (its window the model's training length), and their
one-line refusals."""

from __future__ import annotations

import csv

import pytest

from tiny_tasks import TINY_BACKBONE
from titans_sci.cli import main
from titans_sci.data.dna import read_sequences
from titans_sci.tasks import load_task, run

TINY = {
    "training.epochs": 1,
    "data.max_train": 512,
    "data.max_eval": 64,
    "protocol.seeds": [1],
    **TINY_BACKBONE,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    task = load_task("tasks/gue_prom_core_tata.toml", {**TINY, "baselines.kmer_lr": False})
    run(task, folder)
    return folder / task.name / "checkpoints" / "seed1" / "titans" / "model"


def test_explain_writes_attributions_and_logos(saved, tmp_path, capsys):
    records = read_sequences("datasets/gue/prom/prom_core_tata/test.csv.gz")[:3]
    fasta = tmp_path / "promoters.fa"
    fasta.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in records))
    out = tmp_path / "explained"
    assert main(["explain", str(saved), str(fasta), "-o", str(out), "-q"]) == 0
    assert "attributions of 3 record(s)" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "attributions.csv").open()))
    assert len(rows) == 3 * 70 and {r["record"] for r in rows} == {r.id for r in records}
    assert sorted(p.name for p in out.glob("*.png")) == ["row1.png", "row2.png", "row3.png"]
    assert main(["explain", str(saved), str(fasta), "-o", str(out), "--target", "5"]) == 2
    assert "class 5; the model knows classes 0 (class 0), 1 (class 1)" in capsys.readouterr().err


def test_variants_scores_a_vcf_against_a_reference(saved, tmp_path, capsys):
    sequence = read_sequences("datasets/gue/prom/prom_core_tata/test.csv.gz")[0].sequence
    reference = tmp_path / "ref.fa"
    reference.write_text(">chrP\n" + sequence * 3 + "\n")
    bases = sequence * 3
    lines = [f"chrP\t{p}\t.\t{bases[p - 1]}\t{'A' if bases[p - 1] != 'A' else 'T'}"
             for p in (80, 100, 120)]  # fmt: skip
    vcf = tmp_path / "v.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(lines) + "\n")
    out = tmp_path / "effects.csv"
    assert main(["variants", str(saved), str(reference), str(vcf), "-o", str(out), "-q"]) == 0
    assert "3 variant effects" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [r["pos"] for r in rows] == ["80", "100", "120"]
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\nchrQ\t5\t.\tA\tC\n")
    assert main(["variants", str(saved), str(reference), str(vcf), "-o", str(out), "-q"]) == 2
    assert "line 2: contig 'chrQ' is not in" in capsys.readouterr().err


def test_explain_attributes_a_genome_annotators_label(tmp_path, capsys):
    """An annotator's attributions: its CDS+ label (the default) over a stretch of yeast
    chromosome I holding the start of a gene."""
    import torch

    from titans_sci.data.annotation import read_genbank
    from titans_sci.memory import MemoryConfig
    from titans_sci.modelfolder import save_model
    from titans_sci.models.config import LMMConfig
    from titans_sci.models.genome_annotator import AnnotatorConfig, GenomeAnnotator

    torch.manual_seed(0)
    memory = MemoryConfig(num_heads=2, head_dim=8, chunk_size=8)
    model = GenomeAnnotator(AnnotatorConfig(backbone=LMMConfig(dim=16, memory=memory)))
    save_model(tmp_path / "annotator", model, {"labels": []})
    [chromosome] = read_genbank("datasets/genomes/s_cerevisiae_s288c/chr01.gb.gz")
    (tmp_path / "stretch.fa").write_text(f">chrI_1800\n{chromosome.sequence[1800:1950]}\n")
    out = tmp_path / "explained"
    args = ["explain", str(tmp_path / "annotator"), str(tmp_path / "stretch.fa"), "-o", str(out)]
    assert main([*args, "-q"]) == 0
    rows = list(csv.DictReader((out / "attributions.csv").open()))
    assert len(rows) == 150 and (out / "chrI_1800.png").exists()
    assert main([*args, "--target", "7"]) == 2
    assert "class 7; the model knows classes 0 (intergenic), 1 (CDS+)" in capsys.readouterr().err
