"""Variant effects on real sequence (yeast chromosome I, from the bundled S288C genome): windows
centred on each variant with the reference and the alternative allele (SNVs, several ALT
alleles, an insertion, a deletion, a variant near the contig's end), the CSV of scores, and the
VCF problems each refused in one line naming the line: a REF that does not match the
reference, a contig the FASTA lacks, a malformed line, a symbolic allele."""

from __future__ import annotations

import csv
import gzip

import pytest
import torch
from Bio import SeqIO

from titans_sci.api import SequenceClassifier
from titans_sci.explain import Reference, Variant, log_odds, read_vcf, variant_windows
from titans_sci.explain.files import EFFECT_COLUMNS
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier

GENOME = "datasets/genomes/s_cerevisiae_s288c/chr01.gb.gz"
W = 20


@pytest.fixture(scope="module")
def chr1(tmp_path_factory):
    """Chromosome I as a FASTA named ``chrI`` (pyfaidx indexes it beside), and its bases."""
    with gzip.open(GENOME, "rt") as handle:
        sequence = str(next(SeqIO.parse(handle, "genbank")).seq).upper()
    path = tmp_path_factory.mktemp("ref") / "ref.fa"
    lines = [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    path.write_text(">chrI yeast chromosome I\n" + "\n".join(lines) + "\n")
    return path, sequence


def vcf(folder, *rows: str, name: str = "v.vcf"):
    path = folder / name
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(header + "".join(r.replace(" ", "\t") + "\n" for r in rows))
    return path


def test_windows_carry_each_allele_at_the_centre(chr1, tmp_path):
    path, seq = chr1
    reference = Reference(path)
    p = 1001  # 1-based
    b = seq[p - 1]
    other = "A" if b != "A" else "C"
    rows = [f"chrI {p} snv {b} {other},T", f"chrI {p} ins {b} {b}GG",
            f"chrI {p} del {seq[p - 1 : p + 2]} {b}",
            f"chrI {len(seq)} end {seq[-1]} N"]  # fmt: skip
    variants = list(read_vcf(vcf(tmp_path, *rows)))
    assert [v.alt for v in variants] == [other, "T", b + "GG", b, "N"]  # one per ALT allele
    left = seq[p - 1 - W // 2 : p - 1]
    ref_window, alt_window = variant_windows(reference, variants[0], W, "v.vcf")
    assert ref_window == seq[p - 1 - W // 2 : p - 1 - W // 2 + W]
    assert alt_window == left + other + seq[p : p - W // 2 + W - 1]
    _, insertion = variant_windows(reference, variants[2], W, "v.vcf")
    assert insertion == (left + b + "GG" + seq[p:])[:W]
    _, deletion = variant_windows(reference, variants[3], W, "v.vcf")
    assert deletion == (left + b + seq[p + 2 :])[:W]
    end_ref, end_alt = variant_windows(reference, variants[4], W, "v.vcf")
    assert end_ref == seq[-(W // 2 + 1) :] + "N" * (W // 2 - 1) and end_alt.endswith("NN")
    reference.close()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("chrI 1001 x G A", r"line 3: REF 'G' at chrI:1001 does not match the reference '{b}'"),
        ("chrV 5 x A C", r"line 3: contig 'chrV' is not in .*ref.fa"),
        ("chrI 12x x A C", r"line 3: POS '12x' is not a positive integer"),
        ("chrI 1001", r"line 3: 2 tab-separated column\(s\)"),
        ("chrI 1001 x {b} <DEL>", r"line 3: ALT '<DEL>' is not a run of A, C, G, T, N"),
        ("chrI 1001 x {b} .", r"line 3: ALT '.' \(no alternative allele\): nothing to score"),
        ("chrI 999999 x A C", r"line 3: chrI:999999 \(REF A\) runs past the contig's 230,218"),
    ],
)
def test_each_vcf_problem_is_refused_naming_its_line(chr1, tmp_path, row, message):
    path, seq = chr1
    b = seq[1000]
    if b == "G" and "REF 'G'" in message:
        row, message = row.replace(" G ", " T "), message.replace("'G'", "'T'")
    model = SequenceClassifier(tiny_classifier(), {"sequence_length": W})
    with pytest.raises(ValueError, match=message.format(b=b)):
        model.variant_effects(path, vcf(tmp_path, row.format(b=b)), tmp_path / "out.csv",
                              progress=False)  # fmt: skip
    assert not (tmp_path / "out.csv").exists()  # nothing half-written


def tiny_classifier() -> DNAClassifier:
    torch.manual_seed(0)
    backbone = LMMConfig(dim=16, depth=1, bidirectional=True,
                         memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8,
                                                    chunk_size=8))  # fmt: skip
    return DNAClassifier(ClassifierConfig(backbone=backbone, num_classes=2)).eval()


def test_the_effects_csv_scores_both_alleles_of_every_variant(chr1, tmp_path):
    path, seq = chr1
    rows = [f"chrI {p} v{p} {seq[p - 1]} {'A' if seq[p - 1] != 'A' else 'G'}"
            for p in range(500, 5000, 97)]  # fmt: skip
    model = SequenceClassifier(tiny_classifier(), {"sequence_length": W})
    count = model.variant_effects(path, vcf(tmp_path, *rows), tmp_path / "out.csv",
                                  batch_size=8, progress=False)  # fmt: skip
    table = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert count == len(rows) == len(table) and list(table[0]) == EFFECT_COLUMNS
    reference = Reference(path)
    first = Variant(3, "chrI", 500, "v500", seq[499], table[0]["alt"])
    ref_window, alt_window = variant_windows(reference, first, W, "v.vcf")
    tokens = model.tokenizer
    p = model.model.predict_proba(torch.tensor([tokens.encode(ref_window),
                                                tokens.encode(alt_window)]))[:, 1]  # fmt: skip
    assert float(table[0]["p_ref"]) == pytest.approx(float(p[0]), rel=1e-5)
    assert float(table[0]["p_alt"]) == pytest.approx(float(p[1]), rel=1e-5)
    expected = log_odds(float(p[1])) - log_odds(float(p[0]))
    assert float(table[0]["log_odds_ratio"]) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_a_missing_reference_or_vcf_is_one_line(chr1, tmp_path):
    path, _ = chr1
    model = SequenceClassifier(tiny_classifier(), {"sequence_length": W})
    with pytest.raises(ValueError, match=r"missing.fa: no such file"):
        model.variant_effects(tmp_path / "missing.fa", vcf(tmp_path, "chrI 5 x A C"),
                              tmp_path / "out.csv", progress=False)  # fmt: skip
    with pytest.raises(FileNotFoundError):
        model.variant_effects(path, tmp_path / "missing.vcf", tmp_path / "out.csv",
                              progress=False)  # fmt: skip
