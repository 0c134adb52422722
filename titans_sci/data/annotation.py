"""Annotated genomes: the features of annotated chromosomes (GenBank, or FASTA + GFF3), the
per-base label track they give, the genes a label track gives back, and GFF3 out.

Coordinates are 0-based and half-open, ``[start, stop)``, everywhere in Python; GenBank and
GFF3 text is 1-based and inclusive, converted on reading and writing.

The label set (:data:`LABELS`), one label per base:

- ``CDS+`` / ``CDS-``: a coding part (exon) of a CDS on the + / - strand;
- ``intron``: a gap of at least :data:`MIN_INTRON` bases between two parts of one CDS;
- ``RNA``: the whole span of an RNA gene (tRNA, rRNA, ncRNA, ...; its introns included);
- ``intergenic``: everything else (pseudogenes without a CDS, LTRs, origins, centromeres...).

Where features overlap, the higher label wins, in the order ``CDS+`` > ``CDS-`` > ``RNA`` >
``intron`` > ``intergenic`` (:func:`overlaps` counts the bases where a rule was needed). A gap
shorter than :data:`MIN_INTRON` between two parts of one feature (a programmed frameshift, 47
of them in yeast, of 0 to 4 bases) is not an intron: the parts are merged into one exon, so
that exons are what a label track can show.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote

import numpy as np

from titans_sci.data.dna import GENBANK_SUFFIXES, iter_genbank, iter_sequences
from titans_sci.data.textfile import check_file, open_text, reading, split_suffix

__all__ = [
    "LABELS",
    "STRAND_SWAP",
    "MIN_INTRON",
    "Feature",
    "AnnotatedSequence",
    "read_genbank",
    "read_gff3",
    "read_annotated",
    "label_track",
    "overlaps",
    "features_from_labels",
    "features_from_runs",
    "iter_runs",
    "write_gff3",
]

LABELS = ("intergenic", "CDS+", "CDS-", "intron", "RNA")
INTERGENIC, CDS_PLUS, CDS_MINUS, INTRON, RNA_GENE = range(len(LABELS))
#: The label of each label on the reverse complement: the two strands of coding swap.
STRAND_SWAP = (INTERGENIC, CDS_MINUS, CDS_PLUS, INTRON, RNA_GENE)
#: The shortest gap between two parts of a feature that is an intron (yeast's shortest
#: spliceosomal intron is about 50 bases).
MIN_INTRON = 20

#: Feature types (GenBank and GFF3/Sequence Ontology) read as RNA genes.
RNA_TYPES = frozenset(
    {"tRNA", "rRNA", "ncRNA", "snRNA", "snoRNA", "tmRNA", "misc_RNA", "scRNA", "SRP_RNA",
     "RNase_P_RNA", "RNase_MRP_RNA", "telomerase_RNA", "ncRNA_gene", "tRNA_gene", "rRNA_gene"}
)  # fmt: skip


@dataclass(frozen=True)
class Feature:
    """One annotated feature of a sequence.

    Attributes:
        kind: ``"CDS"`` or ``"RNA"``.
        strand: ``1`` (+) or ``-1`` (-); ``0`` for an RNA gene of unknown strand (the label
            set gives RNA genes no strand, so predicted ones have none).
        parts: a CDS's exons, ``(start, stop)``, sorted, each at least :data:`MIN_INTRON` bases
            from the next; an RNA gene's span, one part.
        name: its id in the file it came from (or a made-up one).
    """

    kind: str
    strand: int
    parts: tuple[tuple[int, int], ...]
    name: str = ""

    @property
    def start(self) -> int:
        return self.parts[0][0]

    @property
    def stop(self) -> int:
        return self.parts[-1][1]

    def introns(self) -> list[tuple[int, int]]:
        """The gaps between consecutive parts."""
        return [(a[1], b[0]) for a, b in pairwise(self.parts)]

    def reverse_complement(self, length: int) -> Feature:
        """The same feature on the reverse complement of its ``length``-base sequence."""
        parts = tuple(sorted((length - stop, length - start) for start, stop in self.parts))
        return Feature(self.kind, -self.strand, parts, self.name)


@dataclass(frozen=True)
class AnnotatedSequence:
    """A sequence (a chromosome) with its features, from ``source`` (the file or files)."""

    id: str
    sequence: str
    features: tuple[Feature, ...]
    source: str = field(default="", compare=False)

    def labels(self) -> np.ndarray:
        """The label track ``[len(sequence)]`` (uint8 indices of :data:`LABELS`)."""
        return label_track(len(self.sequence), self.features)


def make_feature(
    kind: str, strand: int | None, parts: Iterable[tuple[int, int]], name: str, *,
    where: str, length: int,
) -> Feature:  # fmt: skip
    """A checked :class:`Feature`: its strand known, every part inside its ``length``-base
    sequence, parts not overlapping, short gaps merged. Errors start with ``where`` (the file,
    record or line, and the feature)."""
    if strand not in (1, -1) and not (kind == "RNA" and strand == 0):
        shown = {None: "none", 0: "none"}.get(strand, repr(strand))
        raise ValueError(f"{where}: unknown strand ({shown}); a {kind} needs + or -")
    ordered = sorted(parts)
    if not ordered:
        raise ValueError(f"{where}: no location")
    for start, stop in ordered:
        if start < 0 or stop > length or start >= stop:
            raise ValueError(
                f"{where}: bases {start + 1}..{stop} are outside its sequence (1..{length})"
            )
    if kind == "RNA":  # an RNA gene is its span (the RNA label covers its introns too)
        return Feature(kind, strand, ((ordered[0][0], max(stop for _, stop in ordered)),), name)
    merged = [ordered[0]]
    for start, stop in ordered[1:]:
        if start < merged[-1][1]:
            raise ValueError(
                f"{where}: its parts {merged[-1][0] + 1}..{merged[-1][1]} and {start + 1}..{stop}"
                " overlap"
            )
        if start - merged[-1][1] < MIN_INTRON:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return Feature(kind, strand, tuple(merged), name)


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def read_genbank(path: str | Path) -> list[AnnotatedSequence]:
    """Every record of an annotated GenBank file (optionally ``.gz``), with its CDS and RNA
    features. Errors name the file, the record and the feature."""
    out = []
    for record, parsed in iter_genbank(path):
        features = []
        for number, feature in enumerate(parsed.features, start=1):
            kind = "CDS" if feature.type == "CDS" else "RNA" if feature.type in RNA_TYPES else None
            if kind is None:
                continue
            where = f"{path}: record {record.id!r}, feature {number} ({feature.type})"
            if feature.location is None:
                raise ValueError(f"{where}: its location could not be read")
            parts = [(int(p.start), int(p.end)) for p in feature.location.parts]
            strands = {p.strand for p in feature.location.parts}
            strand = strands.pop() if len(strands) == 1 else None
            name = _first(feature.qualifiers, ("locus_tag", "gene", "product")) or f"f{number}"
            features.append(
                make_feature(kind, strand, parts, name, where=where, length=len(record.sequence))
            )
        out.append(AnnotatedSequence(record.id, record.sequence, tuple(features), str(path)))
    return out


def _first(qualifiers: dict[str, list[str]], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if qualifiers.get(key):
            return str(qualifiers[key][0])
    return None


def read_gff3(
    path: str | Path, lengths: dict[str, int], join_stop_codons: bool = False
) -> dict[str, list[Feature]]:
    """The CDS and RNA features of a GFF3 file (optionally ``.gz``) by sequence id, for the
    sequences of ``lengths`` (id -> bases). CDS lines that share a ``Parent`` (or, without one,
    an ``ID``) are the parts of one CDS, as GFF3 writes a spliced CDS; an RNA gene is its line
    (lines that share its ``ID``). ``join_stop_codons``: ``stop_codon`` lines are parts of the
    CDS of their ``Parent`` (AUGUSTUS and GTF-style files leave the stop codon out of the CDS,
    GenBank and SGD keep it in). Reading stops at a ``##FASTA`` section. Errors name the file
    and the line: a line without 9 columns, bad coordinates, an unknown strand, a sequence id
    that ``lengths`` lacks, a feature outside its sequence."""
    path = Path(path)
    check_file(path)
    compressed = split_suffix(path)[1]
    groups: dict[tuple[str, str, str], list[tuple[int, int, str, int]]] = {}
    with reading(path, compressed), open_text(path, compressed) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line.startswith("##FASTA"):
                break
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 9:
                raise ValueError(
                    f"{path}: line {number}: {len(fields)} tab-separated columns; a GFF3 feature "
                    "line has 9"
                )
            seqid, _, kind_text, start_text, end_text, _, strand, _, attributes = fields
            coding = kind_text == "CDS" or (join_stop_codons and kind_text == "stop_codon")
            kind = "CDS" if coding else "RNA" if kind_text in RNA_TYPES else None
            if kind is None:
                continue
            where = f"{path}: line {number} ({kind_text} on {unquote(seqid)!r})"
            if unquote(seqid) not in lengths:
                raise ValueError(
                    f"{where}: the sequence {unquote(seqid)!r} is not in the FASTA file (it has "
                    f"{_names(lengths)})"
                )
            if not (start_text.isdigit() and end_text.isdigit()):
                raise ValueError(
                    f"{where}: start {start_text!r} and end {end_text!r} must be whole numbers"
                )
            if strand not in ("+", "-") and not (kind == "RNA" and strand == "."):
                raise ValueError(f"{where}: unknown strand {strand!r}; a {kind_text} needs + or -")
            start, end = int(start_text), int(end_text)
            if not 1 <= start <= end:
                raise ValueError(f"{where}: start {start} and end {end}: need 1 <= start <= end")
            attrs = _attributes(attributes)
            order = ("Parent", "ID") if kind == "CDS" else ("ID", "Parent")
            key = attrs.get(order[0]) or attrs.get(order[1]) or f"line {number}"
            groups.setdefault((unquote(seqid), kind, key), []).append(
                (start - 1, end, strand, number)
            )
    found: dict[str, list[Feature]] = {}
    for (seqid, kind, key), parts in groups.items():
        lines = ", ".join(str(p[3]) for p in parts[:5]) + (", ..." if len(parts) > 5 else "")
        strands = {p[2] for p in parts}
        sign = {"+": 1, "-": -1, ".": 0}[strands.pop()] if len(strands) == 1 else None
        where = f"{path}: line{'s' if len(parts) > 1 else ''} {lines} ({kind} {key!r} on {seqid!r})"
        feature = make_feature(
            kind, sign, [(p[0], p[1]) for p in parts], key, where=where, length=lengths[seqid]
        )
        found.setdefault(seqid, []).append(feature)
    return found


def _attributes(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {unquote(k.strip()): unquote(v.strip()) for k, v in pairs}


def _names(lengths: dict[str, int]) -> str:
    names = [repr(n) for n in list(lengths)[:5]]
    return ", ".join(names) + (", ..." if len(lengths) > 5 else "")


def read_annotated(path: str | Path, gff3: str | Path | None = None) -> list[AnnotatedSequence]:
    """The annotated sequences of a GenBank file, or of a FASTA file with its GFF3 file.
    A FASTA record without features in the GFF3 is kept, all intergenic."""
    path = Path(path)
    if gff3 is None:
        if split_suffix(path)[0] not in GENBANK_SUFFIXES:
            raise ValueError(
                f"{path}: an annotated genome is a GenBank file (.gb, .gbk, .genbank), or a "
                "FASTA file with a GFF3 file beside it (gff3 = ...)"
            )
        return read_genbank(path)
    records = list(iter_sequences(path))
    by_id = read_gff3(gff3, {r.id: len(r.sequence) for r in records})
    source = f"{path} + {gff3}"
    return [
        AnnotatedSequence(r.id, r.sequence, tuple(by_id.get(r.id, [])), source) for r in records
    ]


# --------------------------------------------------------------------------------------------
# Label tracks
# --------------------------------------------------------------------------------------------


def _painted(length: int, features: Iterable[Feature]) -> dict[int, np.ndarray]:
    """A boolean mask ``[length]`` per label other than intergenic: the bases each label's
    features cover."""
    masks = {label: np.zeros(length, dtype=bool) for label in range(1, len(LABELS))}
    for f in features:
        if f.kind == "RNA":
            masks[RNA_GENE][f.start : f.stop] = True
            continue
        coding = masks[CDS_PLUS if f.strand == 1 else CDS_MINUS]
        for start, stop in f.parts:
            coding[start:stop] = True
        for start, stop in f.introns():
            masks[INTRON][start:stop] = True
    return masks


def label_track(length: int, features: Iterable[Feature]) -> np.ndarray:
    """The label of every base ``[length]`` (uint8), overlaps resolved by the module's rule."""
    labels = np.zeros(length, dtype=np.uint8)
    masks = _painted(length, features)
    for label in (INTRON, RNA_GENE, CDS_MINUS, CDS_PLUS):  # lowest first: the higher overwrite
        labels[masks[label]] = label
    return labels


def overlaps(length: int, features: Iterable[Feature]) -> dict[str, int]:
    """How many bases the overlap rule decided, by the pair of labels that met there."""
    masks = _painted(length, features)
    order = (CDS_PLUS, CDS_MINUS, RNA_GENE, INTRON)
    return {
        f"{LABELS[high]} over {LABELS[low]}": int((masks[high] & masks[low]).sum())
        for i, high in enumerate(order)
        for low in order[i + 1 :]
    }


def _runs(labels: np.ndarray, offset: int = 0) -> Iterator[tuple[int, int, int]]:
    """``(label, start, stop)`` of every run of equal labels (positions plus ``offset``)."""
    if labels.size == 0:
        return
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [labels.size]])
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        yield int(labels[start]), start + offset, stop + offset


def iter_runs(pieces: Iterable[np.ndarray]) -> Iterator[tuple[int, int, int]]:
    """The runs of :func:`_runs` over consecutive pieces of one label track, a run that
    crosses a piece's end given once (a track read piece by piece from disk)."""
    held: tuple[int, int, int] | None = None
    offset = 0
    for piece in pieces:
        for run in _runs(np.asarray(piece), offset):
            if held is not None and held[0] == run[0] and held[2] == run[1]:
                held = (held[0], held[1], run[2])
                continue
            if held is not None:
                yield held
            held = run
        offset += len(piece)
    if held is not None:
        yield held


def features_from_runs(
    runs: Iterable[tuple[int, int, int]], prefix: str = "pred"
) -> Iterator[Feature]:
    """The features that runs of labels (:func:`iter_runs`) show, in order of start, named
    ``<prefix><n>``: a CDS is a run of ``CDS+`` (or ``CDS-``) bases, joined to the next run of
    the same label across one run of ``intron`` bases; an RNA gene is a run of ``RNA`` bases.
    Read as they come: only the CDS being built is held."""
    parts: list[tuple[int, int]] = []
    coding: int | None = None  # the label of the CDS being built
    intron = False  # an intron run right after it, waiting for the next run
    count = 0

    def made(kind: str, strand: int, found: tuple[tuple[int, int], ...]) -> Feature:
        nonlocal count
        count += 1
        return Feature(kind, strand, found, f"{prefix}{count}")

    for label, start, stop in runs:
        if label in (CDS_PLUS, CDS_MINUS) and label == coding and intron:
            parts.append((start, stop))  # the CDS goes on across the intron
            intron = False
            continue
        if label == INTRON and coding is not None and not intron:
            intron = True
            continue
        if coding is not None:
            yield made("CDS", 1 if coding == CDS_PLUS else -1, tuple(parts))
        parts, coding, intron = [], None, False
        if label in (CDS_PLUS, CDS_MINUS):
            parts, coding = [(start, stop)], label
        elif label == RNA_GENE:
            yield made("RNA", 0, ((start, stop),))
    if coding is not None:
        yield made("CDS", 1 if coding == CDS_PLUS else -1, tuple(parts))


def features_from_labels(labels: np.ndarray, prefix: str = "pred") -> list[Feature]:
    """:func:`features_from_runs` of a whole label track ``[L]``: the inverse of
    :func:`label_track` on a track it made from features that do not overlap."""
    return list(features_from_runs(_runs(np.asarray(labels)), prefix))


# --------------------------------------------------------------------------------------------
# GFF3 out
# --------------------------------------------------------------------------------------------


def _phases(feature: Feature) -> list[int]:
    """The GFF3 phase of each part (in the order of ``parts``): the bases to skip from the
    part's 5' end to the first whole codon."""
    order = list(range(len(feature.parts)))
    if feature.strand == -1:
        order.reverse()
    phases = [0] * len(order)
    done = 0
    for i in order:
        phases[i] = (3 - done % 3) % 3
        done += feature.parts[i][1] - feature.parts[i][0]
    return phases


def write_gff3(
    handle: IO[str], sequences: Iterable[tuple[str, int, Iterable[Feature]]],
    source: str = "titans-sci", header: bool = True,
) -> None:  # fmt: skip
    """Write GFF3 for ``(sequence id, length, features)`` triples: a ``gene``, ``mRNA`` and
    ``CDS`` lines (one per part, sharing one ID) per CDS, an ``ncRNA_gene`` line per RNA gene,
    each sequence's features after its ``##sequence-region`` line (so that a genome browser
    knows its length), in the order given (an iterator is written as it comes, so a genome's
    genes never need to be held at once). ``header``: the ``##gff-version 3`` line first
    (``False`` to append more sequences to a file). Feature names must be unique in the file:
    they are its IDs."""
    if header:
        handle.write("##gff-version 3\n")
    for seqid, length, features in sequences:
        handle.write(f"##sequence-region {_escape(seqid)} 1 {length}\n")
        for n, f in enumerate(features, start=1):
            name = _escape(f.name or f"{seqid}_{n}")
            where = (_escape(seqid), source, {1: "+", -1: "-"}.get(f.strand, "."))
            if f.kind == "RNA":
                handle.write(_line(where, "ncRNA_gene", f.start, f.stop, ".", f"ID={name}"))
                continue
            handle.write(_line(where, "gene", f.start, f.stop, ".", f"ID={name}"))
            handle.write(_line(where, "mRNA", f.start, f.stop, ".", f"ID={name}.t;Parent={name}"))
            for (start, stop), phase in zip(f.parts, _phases(f), strict=True):
                attributes = f"ID={name}.cds;Parent={name}.t"
                handle.write(_line(where, "CDS", start, stop, str(phase), attributes))


def _line(
    where: tuple[str, str, str], kind: str, start: int, stop: int, phase: str, attributes: str
) -> str:
    """One GFF3 feature line; ``where`` is (sequence id, source, strand)."""
    seqid, source, strand = where
    columns = (seqid, source, kind, str(start + 1), str(stop), ".", strand, phase, attributes)
    return "\t".join(columns) + "\n"


def _escape(text: str) -> str:
    """``text`` as a GFF3 column or attribute value (tabs, newlines, ``;=&,%`` escaped)."""
    return quote(text, safe=" !\"#$'()*+-./:<>?@[\\]^_`{|}~")
