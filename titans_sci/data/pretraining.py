"""The corpus of self-supervised pretraining, with every evaluation sequence kept out.

A pretrained model is only worth its fine-tuned numbers if no sequence it is tested on (or
selected on) was in its pretraining. :func:`build_corpus` takes the training splits of the
bundled DNA data sets (and/or the user's own sequence files, e.g. a genome, cut into windows)
and drops every piece that shares a ``k``-mer (default 32 bases), on either strand, with any
**held-out** sequence: every split other than ``train`` of every bundled DNA data set. A data set
with no training split (the Genomic Benchmarks sets here, cross-validated on their only split) is
held out whole. Sharing one 32-mer catches exact copies, reverse complements and every overlap of
32 bases or more (a 70-base core promoter inside a 300-base window of the same promoter); two
unrelated random 32-mers collide with probability 4^-32.

k-mers are packed two bits per base into ``uint64`` (``k <= 32``) and compared with sorted
arrays, so the whole bundled collection (24M training bases against 9M held-out ones) is checked
in seconds. k-mers with a base other than ``ACGT`` are not compared; a piece shorter than ``k`` is
compared as a whole string (exact and reverse complement).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from titans_sci.data.dna import base_codes, canonical, read_sequences, reverse_complement
from titans_sci.data.fasta_stream import iter_pieces
from titans_sci.data.registry import list_datasets

#: Length of the shared stretch that makes a piece held-out (bases).
K = 32


def kmers(sequences: Sequence[str], k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Every ``k``-mer of ``sequences`` made only of ``ACGT`` (either case), packed 2 bits per
    base: ``(codes [M] uint64, owner [M] int64)``, ``owner`` the index of the sequence each
    k-mer comes from."""
    if not 1 <= k <= 32:
        raise ValueError(f"k={k}; expected 1..32 (a k-mer is packed into 64 bits)")
    if not sequences:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    codes = base_codes("\0".join(sequences))  # \0 breaks every k-mer across
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    invalid = np.concatenate([[0], np.cumsum(codes == 4)])
    valid = invalid[k : k + n] - invalid[:n] == 0
    packed = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        packed = (packed << np.uint64(2)) | codes[j : j + n].astype(np.uint64)
    lengths = np.array([len(s) + 1 for s in sequences])
    owner = np.repeat(np.arange(len(sequences)), lengths)[:n]
    return packed[valid], owner[valid]


@dataclass
class HeldOut:
    """The k-mers (both strands) and the short whole sequences of the held-out sequences."""

    codes: np.ndarray  # sorted unique uint64
    short: set[str] = field(default_factory=set)
    k: int = K
    sources: list[str] = field(default_factory=list)
    sequences: int = 0

    @classmethod
    def of(cls, sequences: Sequence[str], k: int = K, sources: Sequence[str] = ()) -> HeldOut:
        upper = [canonical(s) for s in sequences]
        both = upper + [reverse_complement(s) for s in upper]
        codes, _ = kmers(both, k)
        short = {s for s in both if len(s) < k}
        return cls(_sorted_unique(codes), short, k, list(sources), len(sequences))

    def touches(self, sequences: Sequence[str]) -> np.ndarray:
        """``[N]`` bool: which of ``sequences`` share a k-mer (on either strand) with a
        held-out sequence, or are a short held-out sequence or its reverse complement."""
        hit = np.zeros(len(sequences), dtype=bool)
        codes, owner = kmers(sequences, self.k)
        if len(codes) and len(self.codes):
            order = np.argsort(codes)  # sorted queries: searchsorted walks memory in order
            codes, owner = codes[order], owner[order]
            found = np.searchsorted(self.codes, codes).clip(max=len(self.codes) - 1)
            hit[owner[self.codes[found] == codes]] = True
        for i, s in enumerate(sequences):
            if len(s) < self.k and (
                canonical(s) in self.short or canonical(reverse_complement(s)) in self.short
            ):
                hit[i] = True
        return hit


def bundled_splits(held_out: bool) -> Iterator[tuple[str, Path]]:
    """``(name/split, file)`` of the bundled DNA data sets: their training splits
    (``held_out=False``), or every split a model is selected or tested on (``True``: every
    split but ``train``, and every split of a set that has no ``train``)."""
    for manifest in list_datasets(kind="dna"):
        has_train = "train" in manifest.splits
        for split, info in manifest.splits.items():
            if (split != "train" or not has_train) == held_out:
                yield f"{manifest.name}/{split}", Path(info.file)


def bundled_held_out(k: int = K) -> HeldOut:
    """:class:`HeldOut` of every bundled dev, test and cross-validated sequence."""
    names, sequences = [], []
    for name, path in bundled_splits(held_out=True):
        names.append(name)
        sequences += [r.sequence for r in read_sequences(path)]
    return HeldOut.of(sequences, k, names)


@dataclass
class Corpus:
    """Pretraining pieces and what was kept out: ``dropped`` counts the pieces that touched a
    held-out sequence, ``duplicates`` the repeated pieces (either strand) left out."""

    sequences: list[str]
    sources: list[str]
    dropped: int
    duplicates: int
    held_out: list[str]

    def describe(self) -> str:
        bases = sum(len(s) for s in self.sequences)
        return (
            f"{len(self.sequences)} pieces ({bases} bases) from {len(self.sources)} source(s); "
            f"{self.dropped} dropped for sharing a {K}-mer with a held-out sequence, "
            f"{self.duplicates} duplicates left out"
        )


def file_pieces(path: str | Path, window: int) -> Iterator[str]:
    """Consecutive ``window``-base pieces of every record of a sequence file (FASTA, FASTQ,
    GenBank, CSV; streamed for FASTA); a record's last piece may be shorter."""
    for _, _, piece in iter_pieces(path, window):
        yield piece


def build_corpus(
    files: Sequence[str | Path] = (),
    bundled: bool = True,
    window: int = 512,
    held_out: HeldOut | None = None,
    min_length: int = 16,
) -> Corpus:
    """The pretraining pieces: every bundled training sequence (``bundled``) and the
    ``window``-base pieces of ``files``, minus every piece that touches ``held_out`` (default:
    :func:`bundled_held_out`), minus repeats (a piece equal to an earlier one or to its reverse
    complement) and pieces shorter than ``min_length``."""
    held_out = held_out or bundled_held_out()
    sources: list[tuple[str, Iterable[str]]] = []
    if bundled:
        for name, path in bundled_splits(held_out=False):
            sources.append((name, [r.sequence for r in read_sequences(path)]))
    for file in files:
        sources.append((str(file), file_pieces(file, window)))
    if not sources:
        raise ValueError("an empty pretraining corpus: give files or keep the bundled splits")
    kept: list[str] = []
    seen: set[str] = set()
    dropped = duplicates = 0
    for _, pieces in sources:
        for batch in _batched(pieces, 50_000):
            batch = [canonical(p) for p in batch if len(p) >= min_length]
            for piece, touches in zip(batch, held_out.touches(batch), strict=True):
                if touches:
                    dropped += 1
                    continue
                either_strand = min(piece, reverse_complement(piece))
                if either_strand in seen:
                    duplicates += 1
                    continue
                seen.add(either_strand)
                kept.append(piece)
    if not kept:
        raise ValueError("every pretraining piece touches a held-out sequence: nothing is left")
    return Corpus(kept, [name for name, _ in sources], dropped, duplicates, held_out.sources)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2's hash-based ``unique`` is ~100x slower on 10M+
    ``uint64``)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
