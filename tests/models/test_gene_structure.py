"""The gene-structure decoder against a brute force over label tracks judged by a checker
written from the rules (not from the decoder's states), its reverse-complement symmetry, and
real yeast genes decoded back from their own labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from Bio.Seq import Seq

from titans_sci.data.annotation import (
    CDS_MINUS,
    CDS_PLUS,
    INTERGENIC,
    INTRON,
    LABELS,
    RNA_GENE,
    AnnotatedSequence,
    features_from_labels,
    read_genbank,
)
from titans_sci.data.annotation import STRAND_SWAP as SWAP
from titans_sci.data.dna import base_codes
from titans_sci.models.gene_structure import STATES, decode_labels, viterbi
from titans_sci.resources import datasets_dir

STOPS = {"TAA", "TAG", "TGA"}


def _runs(labels: list[int]) -> list[tuple[int, int, int]]:
    runs: list[tuple[int, int, int]] = []
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], i + 1)
        else:
            runs.append((label, i, i + 1))
    return runs


def _plus_gene_ok(seq: str, parts: list[tuple[int, int]]) -> bool:
    """A + strand CDS with exons ``parts`` (left to right) obeys the rules."""
    for (_, b), (a, _) in itertools.pairwise(parts):
        intron = seq[b:a]
        if not (intron.startswith("GT") and intron.endswith("AG") and len(intron) >= 4):
            return False
    spliced = "".join(seq[a:b] for a, b in parts)
    owner = [k for k, (a, b) in enumerate(parts) for _ in range(a, b)]  # exon of each base
    if len(spliced) % 3 or len(spliced) < 6 or spliced[:3] != "ATG":
        return False
    codons = [
        (spliced[j : j + 3], len(set(owner[j : j + 3])) == 1) for j in range(0, len(spliced), 3)
    ]
    if not (codons[0][1] and codons[-1][1] and codons[-1][0] in STOPS):
        return False
    return not any(unsplit and codon in STOPS for codon, unsplit in codons[:-1])


def valid(labels: list[int], seq: str) -> bool:
    """Whether ``labels`` (starting and ending intergenic) is a valid gene structure of
    ``seq``: each CDS is one or more coding runs of one strand joined by intron runs, with
    intergenic bases on both sides, and obeys the rules on its own strand (a - strand CDS is
    checked as the + strand CDS of the reverse complement); RNA lies between intergenic bases."""
    runs = _runs(labels)
    if runs[0][0] != INTERGENIC or runs[-1][0] != INTERGENIC:
        return False
    i = 0
    while i < len(runs):
        label, a, b = runs[i]
        if label == INTERGENIC:
            i += 1
            continue
        if label == RNA_GENE:
            if runs[i + 1][0] != INTERGENIC:
                return False
            i += 1
            continue
        if label == INTRON:
            return False  # an intron outside a gene
        parts = [(a, b)]
        i += 1
        while runs[i][0] == INTRON and runs[i + 1][0] == label:
            parts.append(runs[i + 1][1:])
            i += 2
        if runs[i][0] != INTERGENIC:
            return False
        if label == CDS_MINUS:
            n = len(seq)
            seq_rc = str(Seq(seq).reverse_complement())
            mirrored = [(n - b, n - a) for a, b in reversed(parts)]
            if not _plus_gene_ok(seq_rc, mirrored):
                return False
        elif not _plus_gene_ok(seq, parts):
            return False
    return True


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def brute_force(logits: np.ndarray, seq: str, inner: list[int]) -> tuple[list[int], float]:
    """The best valid track whose first and last bases are intergenic and whose other bases
    take labels from ``inner``, by trying them all, best first."""
    log_p = _log_softmax(logits.astype(np.float64))
    shape = (len(inner),) * (len(seq) - 2)
    tracks = np.array(inner)[np.stack(np.unravel_index(np.arange(np.prod(shape)), shape), 1)]
    tracks = np.pad(tracks, ((0, 0), (1, 1)), constant_values=INTERGENIC)
    scores = log_p[np.arange(len(seq)), tracks].sum(axis=1)
    for index in np.argsort(-scores, kind="stable"):
        if valid(tracks[index].tolist(), seq):
            return tracks[index].tolist(), float(scores[index])
    raise AssertionError("no valid track")


def _case_logits(rng: np.random.Generator, length: int, favour: int | str, inner: list[int]):
    """Random logits that favour, inside, label ``favour`` (or the labels of a lure track,
    a string of label digits), make the ends intergenic and rule out labels not in ``inner``
    inside (so the decoder searches what the brute force does)."""
    logits = rng.normal(0.0, 1.0 if isinstance(favour, int) else 0.3, (length, len(LABELS)))
    if isinstance(favour, int):
        logits[1:-1, favour] += rng.uniform(0.0, 3.0)
    else:
        logits[np.arange(1, length - 1), [int(c) for c in favour]] += 3.0
    logits[1:-1, [k for k in range(len(LABELS)) if k not in inner]] = -1e4
    logits[[0, -1], INTERGENIC] = 50.0
    return logits.astype(np.float32)


def _rc(text: str) -> str:
    return str(Seq(text).reverse_complement())


def _mirror(lure: str) -> str:
    return "".join(str(SWAP[int(c)]) for c in reversed(lure))


CASES = [  # (inner bases, the labels inside, the label favoured or a lure track)
    ("ATGCCCTAA", list(range(len(LABELS))), CDS_PLUS),  # one codon between start and stop
    (_rc("ATGCCCTAA"), list(range(len(LABELS))), CDS_MINUS),
    ("ATGGTCAGTAA", [INTERGENIC, CDS_PLUS, INTRON], CDS_PLUS),  # an intron between codons
    (_rc("ATGGTCAGTAA"), [INTERGENIC, CDS_MINUS, INTRON], CDS_MINUS),
    ("ATGCCGTCAGCTAA", [CDS_PLUS, INTRON], CDS_PLUS),  # an intron splitting a codon
    (_rc("ATGCCGTCAGCTAA"), [CDS_MINUS, INTRON], CDS_MINUS),
    ("ATGTGGTCAGATAA", [CDS_PLUS, INTRON], CDS_PLUS),  # TGA split by the intron: not checked
    # lures: the track the logits favour is not a gene
    ("ATGTAGTAA", [INTERGENIC, CDS_PLUS, RNA_GENE], "111111111"),  # a stop in frame (TAG)
    (_rc("ATGTAGTAA"), [INTERGENIC, CDS_MINUS, RNA_GENE], _mirror("111111111")),
    ("ATGTAAGTAGTGA", [INTERGENIC, CDS_PLUS, INTRON], "1111113333111"),  # TAA, then an intron
    (_rc("ATGTAAGTAGTGA"), [INTERGENIC, CDS_MINUS, INTRON], _mirror("1111113333111")),
    ("ATGCCAGTAA", [INTERGENIC, CDS_PLUS, INTRON], "1111113111"),  # a 1-base intron
    (_rc("ATGCCAGTAA"), [INTERGENIC, CDS_MINUS, INTRON], _mirror("1111113111")),
]


@pytest.mark.parametrize("inner, labels, favour", CASES)
def test_viterbi_finds_the_best_valid_track_of_a_brute_force(inner, labels, favour):
    rng = np.random.default_rng(len(inner) * 7 + len(labels))
    seq = "C" + inner + "C"
    found_genes = 0
    for _ in range(4 if isinstance(favour, int) else 2):
        logits = _case_logits(rng, len(seq), favour, labels)
        expected, best = brute_force(logits, seq, labels)
        decoded, total = viterbi(logits, base_codes(seq))
        assert decoded.tolist() == expected
        assert total == pytest.approx(best, abs=1e-3)
        found_genes += CDS_PLUS in expected or CDS_MINUS in expected
    if isinstance(favour, int):
        assert found_genes, "no case decoded a gene: the test checks nothing about genes"


def test_every_decoded_track_is_valid_on_random_bases():
    rng = np.random.default_rng(0)
    for length in (37, 101, 257):
        seq = "C" + "".join(rng.choice(list("ACGT"), length - 2)) + "C"
        logits = rng.normal(0.0, 2.0, (length, len(LABELS))).astype(np.float32)
        logits[[0, -1], INTERGENIC] = 50.0
        assert valid(decode_labels(logits, base_codes(seq)).tolist(), seq)


@pytest.mark.parametrize("length", [1, 2, 3, 1001, 4097])
def test_the_reverse_complement_decodes_to_the_mirrored_track(length):
    """Read from the other strand (bases reverse-complemented, logits reversed with the two
    coding labels swapped), the decoder gives the same track mirrored, with the same score."""
    rng = np.random.default_rng(length)
    seq = "".join(rng.choice(list("ACGT"), length))
    logits = rng.normal(0.0, 1.5, (length, len(LABELS)))
    for start in range(0, length, 60):  # stretches that favour one label, as a network's do
        logits[start : start + 60, rng.integers(len(LABELS))] += 3.0
    logits = logits.astype(np.float32)
    labels, total = viterbi(logits, base_codes(seq))
    other, other_total = viterbi(logits[::-1][:, list(SWAP)].copy(), base_codes(_rc(seq)))
    assert other.tolist() == np.array(SWAP)[labels[::-1]].tolist()
    assert other_total == pytest.approx(total, rel=1e-6)
    if length > 1000:
        assert {CDS_PLUS, CDS_MINUS, INTRON} <= set(labels.tolist())


def test_back_pointers_on_disk_give_the_same_track(tmp_path):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, 3001).astype(np.uint8)
    logits = rng.normal(0.0, 1.5, (3001, len(LABELS))).astype(np.float32)
    back = np.memmap(tmp_path / "back", dtype=np.uint8, mode="w+", shape=(3001, len(STATES)))
    out = np.memmap(tmp_path / "out", dtype=np.uint8, mode="w+", shape=(3001,))
    labels, total = viterbi(logits, codes, back=back, out=out)
    assert labels is out
    expected, expected_total = viterbi(logits, codes)
    assert np.array_equal(np.asarray(out), expected) and total == expected_total


def test_shapes_are_checked_and_empty_input_decodes_to_nothing():
    assert viterbi(np.zeros((0, len(LABELS)), np.float32), np.zeros(0, np.uint8))[0].size == 0
    with pytest.raises(ValueError, match="logits have shape"):
        viterbi(np.zeros((4, 3), np.float32), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="back or out"):
        viterbi(np.zeros((4, 5), np.float32), np.zeros(4, np.uint8), out=np.zeros(3, np.uint8))


@pytest.fixture(scope="module")
def chr01() -> AnnotatedSequence:
    [chromosome] = read_genbank(datasets_dir() / "genomes" / "s_cerevisiae_s288c" / "chr01.gb.gz")
    return chromosome


def test_real_yeast_genes_come_back_from_their_own_labels(chr01):
    """Chromosome 1's annotation as confident logits: the decoded track keeps nearly every base
    and nearly every CDS exactly, and each decoded CDS translates as a whole protein (biopython's
    ``translate(cds=True)``: start, stop, length, no stop in frame)."""
    record = chr01
    truth = record.labels()
    logits = np.eye(len(LABELS), dtype=np.float32)[truth] * 3.0
    decoded = decode_labels(logits, base_codes(record.sequence))
    assert (decoded == truth).mean() > 0.999
    genes = [f for f in features_from_labels(decoded) if f.kind == "CDS"]
    true = {(f.strand, f.start, f.stop) for f in record.features if f.kind == "CDS"}
    found = {(f.strand, f.start, f.stop) for f in genes}
    assert len(found & true) >= 0.95 * len(true)
    for gene in genes:
        spliced = Seq("".join(record.sequence[a:b] for a, b in gene.parts))
        (spliced if gene.strand == 1 else spliced.reverse_complement()).translate(cds=True)
