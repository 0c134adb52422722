"""The pretraining corpus keeps every dev, test and cross-validated sequence out: exact copies,
reverse complements and overlaps of 32 bases or more, checked here by plain string search
(independent of the packed k-mers the corpus builder uses)."""

from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest

from titans_sci.data.dna import read_sequences, reverse_complement
from titans_sci.data.pretraining import (
    HeldOut,
    build_corpus,
    bundled_held_out,
    bundled_splits,
    kmers,
)


def _naive_kmers(sequence: str, k: int) -> list[int]:
    out = []
    for i in range(len(sequence) - k + 1):
        word = sequence[i : i + k].upper()
        if set(word) <= set("ACGT"):
            out.append(int("".join(str("ACGT".index(c)) for c in word), 4))
    return out


def test_kmers_are_the_packed_acgt_words_of_each_sequence():
    sequences = ["ACGTNACGTTGCA", "acgtac", "GG", "TTTTACGTA"]
    codes, owner = kmers(sequences, k=4)
    expected = [(code, i) for i, s in enumerate(sequences) for code in _naive_kmers(s, 4)]
    assert list(zip(codes.tolist(), owner.tolist(), strict=True)) == expected
    assert len(kmers(["A" * 40], k=32)[0]) == 9
    with pytest.raises(ValueError, match="k=33"):
        kmers(["A" * 40], k=33)


def test_held_out_catches_copies_reverse_complements_and_long_overlaps():
    test = read_sequences("datasets/gue/prom/prom_core_tata/test.csv.gz")
    train = read_sequences("datasets/gue/prom/prom_core_tata/train.csv.gz")
    held = HeldOut.of([r.sequence for r in test[:50]], sources=["a"])
    unrelated = train[0].sequence
    assert not held.touches([unrelated])[0]
    one = test[7].sequence
    candidates = [
        one,  # an exact copy
        reverse_complement(one),  # its reverse complement
        one.lower(),  # soft-masked
        unrelated[:30] + one[10:45] + unrelated[30:],  # 35 shared bases inside another sequence
        unrelated[:30] + reverse_complement(one[5:40]) + unrelated[30:],  # the same, other strand
        unrelated[:30] + one[10:40] + unrelated[30:],  # 30 shared bases: below k, kept
    ]
    assert held.touches(candidates).tolist() == [True, True, True, True, True, False]
    short = HeldOut.of(["ACGTACGTAC"])
    assert short.touches(["ACGTACGTAC", "GTACGTACGT", "ACGTACGTAA"]).tolist() == [True, True, False]


@pytest.fixture(scope="module")
def bundled_corpus():
    return build_corpus()


def test_the_bundled_corpus_holds_no_dev_test_or_cross_validated_sequence(bundled_corpus):
    corpus = bundled_corpus
    splits = bundled_splits(held_out=True)
    held = [r.sequence.upper() for _, path in splits for r in read_sequences(path)]
    held_names = [name for name, _ in bundled_splits(held_out=True)]
    # every GUE dev and test split and both Genomic Benchmarks sets (their only split) are held
    assert "gue/tf/0/test" in held_names and "gue/mouse/3/dev" in held_names
    assert "genomic_benchmarks/human_enhancers_cohn/test" in held_names
    assert not any(name.endswith("/train") for name in held_names)
    assert corpus.held_out == held_names
    pieces = set(corpus.sequences)
    assert not pieces & set(held)
    assert not pieces & {reverse_complement(s) for s in held}
    # no piece contains a held-out stretch of 32 bases, on either strand (a sample of 400)
    text = "|".join(corpus.sequences)
    rng = np.random.default_rng(0)
    for index in rng.choice(len(held), size=400, replace=False):
        sequence = held[index]
        start = int(rng.integers(0, len(sequence) - 32 + 1))
        probe = sequence[start : start + 32]
        assert probe not in text and reverse_complement(probe) not in text
    # the corpus is every training split's pieces, less those dropped and repeated
    train = sum(len(read_sequences(p)) for _, p in bundled_splits(held_out=False))
    assert len(corpus.sequences) + corpus.dropped + corpus.duplicates == train
    assert corpus.dropped > 0 and len(corpus.sequences) > 0.5 * train


def test_a_genome_file_loses_exactly_the_windows_that_touch_a_held_out_sequence(tmp_path):
    train = [r.sequence for r in read_sequences("datasets/gue/tf/0/train.csv.gz")[:60]]
    test = read_sequences("datasets/gue/tf/0/test.csv.gz")[3].sequence
    held = HeldOut.of([test])
    # a 'chromosome' of real training sequences, the test sequence's reverse complement at
    # 600-701 (inside the second 512-base window)
    genome = "".join(train)
    genome = genome[:600] + reverse_complement(test) + genome[600:]
    path = tmp_path / "genome.fa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(">chr1\n")
        for start in range(0, len(genome), 60):
            handle.write(genome[start : start + 60] + "\n")
    corpus = build_corpus([path], bundled=False, window=512, held_out=held)
    windows = [genome[i : i + 512] for i in range(0, len(genome), 512)]
    assert corpus.dropped == 1
    assert corpus.sequences == [w for i, w in enumerate(windows) if i != 1 and len(w) >= 16]
    assert corpus.sources == [str(path)]


def test_an_empty_or_fully_held_out_corpus_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty pretraining corpus"):
        build_corpus([], bundled=False, held_out=HeldOut.of(["ACGT" * 10]))
    path = tmp_path / "one.fa"
    sequence = "".join(itertools.islice(itertools.cycle("ACGGTCATTG"), 200))
    path.write_text(f">r\n{sequence}\n")
    with pytest.raises(ValueError, match="every pretraining piece touches"):
        build_corpus([path], bundled=False, held_out=HeldOut.of([sequence]))


def test_bundled_held_out_covers_both_strands():
    held = bundled_held_out()
    record = read_sequences("datasets/genomic_benchmarks/human_nontata_promoters/test.csv.gz")[0]
    codes, _ = kmers([reverse_complement(record.sequence.upper())])
    assert np.isin(codes, held.codes).all()
