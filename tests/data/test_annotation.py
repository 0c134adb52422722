"""Annotated genomes (:mod:`titans_sci.data.annotation`) on the real yeast genome: spliced and
minus-strand genes land on the right bases, GenBank and GFF3 give the same label track, the
GFF3 written reads back, a label track decodes back into its features, and bad files are
refused in one line naming the file, record or line."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from Bio.Seq import Seq
from hypothesis import given, settings
from hypothesis import strategies as st

from titans_sci.data.annotation import (
    CDS_MINUS,
    CDS_PLUS,
    INTERGENIC,
    INTRON,
    LABELS,
    RNA_GENE,
    STRAND_SWAP,
    AnnotatedSequence,
    Feature,
    features_from_labels,
    features_from_runs,
    iter_runs,
    label_track,
    overlaps,
    read_annotated,
    read_genbank,
    read_gff3,
    write_gff3,
)
from titans_sci.resources import datasets_dir

YEAST = datasets_dir() / "genomes" / "s_cerevisiae_s288c"


@pytest.fixture(scope="module")
def chr01() -> AnnotatedSequence:
    [chromosome] = read_genbank(YEAST / "chr01.gb.gz")
    return chromosome


def _translate(sequence: str, feature: Feature) -> str:
    coding = "".join(sequence[a:b] for a, b in feature.parts)
    seq = Seq(coding) if feature.strand == 1 else Seq(coding).reverse_complement()
    return str(seq.translate(table=1, to_stop=True))


def test_spliced_genes_on_both_strands_land_on_their_bases(chr01):
    """SNC1 (YAL030W, + strand, one intron) and every spliced CDS of chromosome I: the bases
    the label track calls coding, read in order on the gene's strand, translate to the protein
    the GenBank record states; the intron's bases are labelled intron."""
    labels = chr01.labels()
    snc1 = next(f for f in chr01.features if f.name == "YAL030W")
    assert snc1.parts == ((87285, 87387), (87500, 87752))  # join(87286..87387,87501..87752)
    assert set(labels[87285:87387]) == {CDS_PLUS} and set(labels[87500:87752]) == {CDS_PLUS}
    assert set(labels[87387:87500]) == {INTRON}
    assert labels[87284] != CDS_PLUS and labels[87752] != CDS_PLUS

    [chr02] = read_genbank(YEAST / "chr02.gb.gz")  # minus-strand spliced genes are on chr II
    checked = {1: 0, -1: 0}
    for chromosome in (chr01, chr02):
        track = chromosome.labels()
        proteins = _proteins(YEAST / f"chr0{1 if chromosome is chr01 else 2}.gb.gz")
        for feature in chromosome.features:
            if feature.kind != "CDS" or len(feature.parts) < 2:
                continue
            coding = CDS_PLUS if feature.strand == 1 else CDS_MINUS
            taken = np.zeros(len(track), dtype=bool)
            for a, b in feature.parts:
                taken[a:b] = True
            if not (track[taken] == coding).all():
                continue  # an overlap the rule gave to another label (counted by overlaps())
            assert _translate(chromosome.sequence, feature) == proteins[feature.name]
            for a, b in feature.introns():
                assert (track[a:b] == INTRON).all() or overlaps(len(track), chromosome.features)
            checked[feature.strand] += 1
    assert checked[1] >= 2 and checked[-1] >= 2, checked


def _proteins(path: Path) -> dict[str, str]:
    """locus_tag -> /translation of every CDS, read straight from the GenBank text."""
    from Bio import SeqIO

    with gzip.open(path, "rt") as handle:
        record = SeqIO.read(handle, "genbank")
    return {
        f.qualifiers["locus_tag"][0]: f.qualifiers["translation"][0]
        for f in record.features
        if f.type == "CDS" and "translation" in f.qualifiers
    }


def _sgd_style_gff3(chromosome: AnnotatedSequence, path: Path) -> None:
    """A GFF3 of the chromosome's GenBank features written here the way SGD and Ensembl write
    theirs (gene / mRNA / CDS lines with ``Parent`` and no shared ``ID``; tRNA lines), straight
    from Biopython's parse, independently of the module's writer."""
    from Bio import SeqIO

    with gzip.open(YEAST / "chr01.gb.gz", "rt") as handle:
        record = SeqIO.read(handle, "genbank")
    lines = ["##gff-version 3"]
    for n, f in enumerate(record.features):
        strand = "+" if f.location.strand == 1 else "-"
        start, end = int(f.location.start) + 1, int(f.location.end)
        if f.type == "CDS":
            lines.append(f"chrI\tSGD\tgene\t{start}\t{end}\t.\t{strand}\t.\tID=g{n}")
            lines.append(f"chrI\tSGD\tmRNA\t{start}\t{end}\t.\t{strand}\t.\tID=m{n};Parent=g{n}")
            for part in f.location.parts:
                a, b = int(part.start) + 1, int(part.end)
                lines.append(f"chrI\tSGD\tCDS\t{a}\t{b}\t.\t{strand}\t0\tParent=m{n}")
        elif f.type in ("tRNA", "ncRNA", "rRNA"):
            lines.append(f"chrI\tSGD\t{f.type}\t{start}\t{end}\t.\t{strand}\t.\tID=r{n}")
        elif f.type == "LTR":
            lines.append(f"chrI\tSGD\tLTR_retrotransposon\t{start}\t{end}\t.\t{strand}\t.\tID=l{n}")
    path.write_text("\n".join(lines) + "\n")


def test_genbank_and_fasta_plus_gff3_give_the_same_label_track(chr01, tmp_path):
    fasta, gff3 = tmp_path / "chr01.fa", tmp_path / "chr01.gff3"
    fasta.write_text(f">chrI\n{chr01.sequence}\n")
    _sgd_style_gff3(chr01, gff3)
    [from_gff3] = read_annotated(fasta, gff3)
    assert from_gff3.id == "chrI" and from_gff3.sequence == chr01.sequence
    np.testing.assert_array_equal(from_gff3.labels(), chr01.labels())
    # SGD writes an RNA gene as one line: its span, not its exons (the RNA label is the span)
    key = lambda f: (f.kind, f.strand, f.parts if f.kind == "CDS" else (f.start, f.stop))  # noqa: E731
    assert sorted(map(key, from_gff3.features)) == sorted(map(key, chr01.features))


def test_the_gff3_written_reads_back(chr01, tmp_path):
    predicted = features_from_labels(chr01.labels())
    assert any(f.kind == "RNA" for f in predicted) and any(len(f.parts) > 1 for f in predicted)
    for features in (list(chr01.features), predicted):
        handle = io.StringIO()
        write_gff3(handle, [(chr01.id, len(chr01.sequence), features)])
        path = tmp_path / "out.gff3"
        path.write_text(handle.getvalue())
        back = read_gff3(path, {chr01.id: len(chr01.sequence)})[chr01.id]
        key = lambda f: (f.kind, f.strand, f.parts)  # noqa: E731
        assert sorted(map(key, back)) == sorted(map(key, features))
    text = handle.getvalue().splitlines()
    assert text[0] == "##gff-version 3" and text[1] == f"##sequence-region {chr01.id} 1 230218"
    cds = [line.split("\t") for line in text if "\tCDS\t" in line]
    assert all(len(c) == 9 and c[7] in "012" for c in cds)


def test_a_minus_strand_cds_gets_its_phases_from_its_3_prime_end():
    """GFF3 phase counts from the 5' end of the gene: on - that is the last part."""
    f = Feature("CDS", -1, ((0, 100), (200, 301)))  # 101 coding bases in the 5' part
    handle = io.StringIO()
    write_gff3(handle, [("s", 400, [f])])
    phases = [line.split("\t")[7] for line in handle.getvalue().splitlines() if "\tCDS\t" in line]
    assert phases == ["1", "0"]  # (3 - 101 % 3) % 3 = 1 for the part at 1..100


@st.composite
def _tracks(draw) -> tuple[int, list[Feature]]:
    """Features that do not overlap on a short sequence: CDS of 1-3 parts on either strand
    (introns of at least 20 bases) and RNA genes, separated by intergenic gaps."""
    features, at = [], draw(st.integers(0, 5))
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            parts = []
            for _ in range(draw(st.integers(1, 3))):
                length = draw(st.integers(1, 30))
                parts.append((at, at + length))
                at += length + draw(st.integers(20, 40))
            at = parts[-1][1]
            features.append(Feature("CDS", draw(st.sampled_from([1, -1])), tuple(parts)))
        else:
            length = draw(st.integers(1, 30))
            features.append(Feature("RNA", 0, ((at, at + length),)))
            at += length
        at += draw(st.integers(1, 10))
    return at + draw(st.integers(0, 5)), features


@settings(max_examples=200, deadline=None)
@given(_tracks())
def test_a_label_track_decodes_back_into_its_features(case):
    length, features = case
    labels = label_track(length, features)
    key = lambda f: (f.kind, f.strand, f.parts)  # noqa: E731
    assert sorted(map(key, features_from_labels(labels))) == sorted(map(key, features))


@settings(max_examples=100, deadline=None)
@given(_tracks())
def test_the_reverse_complement_reverses_the_track_and_swaps_the_strands(case):
    length, features = case
    flipped = label_track(length, [f.reverse_complement(length) for f in features])
    swapped = np.asarray(STRAND_SWAP, dtype=np.uint8)[label_track(length, features)[::-1]]
    np.testing.assert_array_equal(flipped, swapped)


def test_overlaps_follow_the_written_rule():
    features = [
        Feature("CDS", 1, ((10, 20),)),
        Feature("CDS", -1, ((15, 30), (60, 70))),  # intron 30..60
        Feature("RNA", 1, ((25, 40),)),
    ]
    labels = label_track(80, features)
    assert set(labels[10:20]) == {CDS_PLUS} and set(labels[20:30]) == {CDS_MINUS}
    assert set(labels[30:40]) == {RNA_GENE} and set(labels[40:60]) == {INTRON}
    assert labels[:10].tolist() == [INTERGENIC] * 10 and labels[70:].tolist() == [0] * 10
    counted = overlaps(80, features)
    assert counted["CDS+ over CDS-"] == 5 and counted["CDS- over RNA"] == 5
    assert counted["RNA over intron"] == 10 and len(LABELS) == 5


def test_a_frameshift_gap_is_not_an_intron(chr01, tmp_path):
    """Gaps under 20 bases (programmed frameshifts) merge the parts around them."""
    gff3 = tmp_path / "a.gff3"
    gff3.write_text(
        "s\t.\tCDS\t1\t100\t.\t+\t0\tID=c\ns\t.\tCDS\t102\t200\t.\t+\t0\tID=c\n"
        "s\t.\tCDS\t260\t300\t.\t+\t0\tID=c\n"
    )
    [f] = read_gff3(gff3, {"s": 300})["s"]
    assert f.parts == ((0, 200), (259, 300))


BAD_GFF3 = [
    ("s\t.\tCDS\t1\t500\t.\t+\t0\tID=c\n", r"a\.gff3: line 1 \(CDS 'c' on 's'\): bases 1\.\.500 "
     r"are outside its sequence \(1\.\.300\)"),
    ("s\t.\tCDS\t1\t50\t.\t?\t0\tID=c\n", r"a\.gff3: line 1 \(CDS on 's'\): unknown strand '\?'"),
    ("chrX\t.\tCDS\t1\t50\t.\t+\t0\tID=c\n", r"a\.gff3: line 1 \(CDS on 'chrX'\): the sequence "
     r"'chrX' is not in the FASTA file \(it has 's'\)"),
    ("##gff-version 3\ns\t.\tCDS\t1\t50\n", r"a\.gff3: line 2: 5 tab-separated columns"),
    ("s\t.\tCDS\tone\t50\t.\t+\t0\tID=c\n", r"a\.gff3: line 1 \(CDS on 's'\): start 'one'"),
    ("s\t.\tCDS\t1\t50\t.\t+\t0\tID=c\ns\t.\tCDS\t80\t90\t.\t-\t0\tID=c\n",
     r"a\.gff3: lines 1, 2 \(CDS 'c' on 's'\): unknown strand"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_GFF3)
def test_bad_gff3_lines_are_refused_by_file_and_line(tmp_path, text, message):
    path = tmp_path / "a.gff3"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_gff3(path, {"s": 300})


def test_bad_fasta_and_genbank_are_refused_by_file_record_and_position(tmp_path, chr01):
    fasta, gff3 = tmp_path / "g.fa", tmp_path / "g.gff3"
    fasta.write_text(">s\nACGTAXGT\n")
    gff3.write_text("s\t.\tCDS\t1\t6\t.\t+\t0\tID=c\n")
    with pytest.raises(
        ValueError, match=r"g\.fa: record 's' has invalid character 'X' at position 6"
    ):
        read_annotated(fasta, gff3)
    with pytest.raises(ValueError, match=r"g\.fa: an annotated genome is a GenBank file"):
        read_annotated(fasta)
    with gzip.open(YEAST / "chr01.gb.gz", "rt") as handle:
        text = handle.read()
    # Move SNC1's second exon past the chromosome's end (230,218 bases).
    bad = tmp_path / "bad.gb"
    bad.write_text(
        text.replace("join(87286..87387,87501..87752)", "join(87286..87387,87501..230300)")
    )
    with pytest.raises(
        ValueError,
        match=r"bad\.gb: record 'BK006935\.2', feature \d+ \(CDS\): bases 87501\.\.230300 are "
        r"outside its sequence \(1\.\.230218\)",
    ):
        read_genbank(bad)


@settings(max_examples=100, deadline=None)
@given(_tracks(), st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_runs_read_piece_by_piece_give_the_features_of_the_whole_track(case, sizes):
    length, features = case
    labels = label_track(length, features)
    cuts, at = [], 0
    while at < length:
        size = sizes[len(cuts) % len(sizes)]
        cuts.append(labels[at : at + size])
        at += size
    key = lambda f: (f.kind, f.strand, f.parts)  # noqa: E731
    streamed = list(features_from_runs(iter_runs(cuts)))
    assert list(map(key, streamed)) == list(map(key, features_from_labels(labels)))
