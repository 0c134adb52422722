"""Variant effects: a classifier's score of the reference window around each variant of a VCF
against the same window carrying the alternative allele.

Conventions (those of VCF and of the tools that read it):

- **Positions** are 1-based in files (VCF ``POS``, the CSV written), 0-based in code.
- **The reference** is a FASTA read with indexed random access (pyfaidx; it writes the
  ``.fai`` index beside the FASTA if none is there, as ``samtools faidx`` does), so a
  chromosome is never read whole: each window is fetched on its own.
- **The VCF** is read by :func:`read_vcf`, a small reader of its eight fixed columns (plain or
  gzip/bgzip): the effects need ``CHROM``, ``POS``, ``ID``, ``REF`` and ``ALT`` only, and a
  line-by-line reader names the line of every problem, which pysam's and cyvcf2's errors do not
  (and neither is needed for anything else here). Several ALT alleles (``A,T``) give one row
  each.
- **Windows**: ``window`` bases with the variant's first base at offset ``window // 2``; the
  alternative window is the reference window with ``REF`` replaced by ``ALT`` and the right
  flank taken from the reference so it keeps ``window`` bases (an insertion pushes bases out on
  the right, a deletion pulls more in): indels are scored, not refused. Past a contig's ends the
  windows are filled with ``N``.
- **Refused in one line** (naming the file and line): a malformed line (fewer than 5 columns,
  a ``POS`` that is not a positive integer, a ``REF`` or ``ALT`` of other letters than
  ``ACGTN``: symbolic alleles such as ``<DEL>`` and ``*`` included), a ``CHROM`` the FASTA
  lacks, a variant past its contig's end, and a ``REF`` that does not match the reference
  there (naming the position and both alleles), as ``bcftools norm --check-ref e`` does.

The score of a window is the model's strand-averaged probability of class ``k``; each row has
``p_ref``, ``p_alt``, their difference and the log odds ratio ``logit(p_alt) - logit(p_ref)``
(probabilities clipped to ``[1e-7, 1 - 1e-7]`` so it is always finite).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Variant", "read_vcf", "Reference", "variant_windows"]

_ALLELE = set("ACGTN")


@dataclass(frozen=True)
class Variant:
    """One ALT allele of a VCF line: ``pos`` 1-based as in the file."""

    line: int
    chrom: str
    pos: int
    id: str
    ref: str
    alt: str


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":  # gzip or bgzip
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_vcf(path: str | Path) -> Iterator[Variant]:
    """The variants of a VCF file, one per ALT allele, in file order; a problem is refused
    in one line naming the file and line (see the module docstring)."""
    path = Path(path)
    with _open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            where = f"{path}: line {number}"
            if len(fields) < 5:
                raise ValueError(
                    f"{where}: {len(fields)} tab-separated column(s); a VCF line has at least "
                    "CHROM, POS, ID, REF and ALT"
                )
            chrom, pos_text, name, ref, alts = fields[:5]
            if not pos_text.isdigit() or int(pos_text) < 1:
                raise ValueError(f"{where}: POS {pos_text!r} is not a positive integer")
            ref = ref.upper()
            if not ref or set(ref) - _ALLELE:
                raise ValueError(f"{where}: REF {ref!r} is not a run of A, C, G, T, N")
            if alts == ".":
                raise ValueError(
                    f"{where}: ALT '.' (no alternative allele): nothing to score; keep the lines "
                    "with one (e.g. bcftools view --min-ac 1)"
                )
            for alt in alts.split(","):
                alt = alt.upper()
                if not alt or set(alt) - _ALLELE:
                    raise ValueError(
                        f"{where}: ALT {alt!r} is not a run of A, C, G, T, N (symbolic alleles "
                        "such as <DEL> and * are not scored)"
                    )
                yield Variant(number, chrom, int(pos_text), name, ref, alt)


class Reference:
    """A FASTA with indexed random access (pyfaidx): :meth:`fetch` reads one stretch of one
    contig, never the contig whole."""

    def __init__(self, path: str | Path) -> None:
        import pyfaidx

        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            self.fasta = pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True)
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat) as error:
            raise ValueError(f"{path}: cannot index this FASTA ({error})") from None

    def length(self, contig: str) -> int | None:
        """The contig's length, None if the FASTA has no such contig."""
        if contig not in self.fasta:
            return None
        return len(self.fasta[contig])

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Bases ``[start, end)`` (0-based) of ``contig``, ``N`` where the range leaves it."""
        length = self.length(contig)
        assert length is not None
        inside = str(self.fasta[contig][max(start, 0) : min(end, length)])
        return "N" * max(0, -start) + inside + "N" * max(0, end - max(length, start))

    def close(self) -> None:
        self.fasta.close()


def variant_windows(
    reference: Reference, variant: Variant, window: int, source: str
) -> tuple[str, str]:
    """The reference and alternative windows of ``variant`` (see the module docstring),
    after checking its contig, position and REF against ``reference``."""
    where = f"{source}: line {variant.line}"
    length = reference.length(variant.chrom)
    if length is None:
        raise ValueError(f"{where}: contig {variant.chrom!r} is not in {reference.path}")
    start = variant.pos - 1  # 0-based
    if start + len(variant.ref) > length:
        raise ValueError(
            f"{where}: {variant.chrom}:{variant.pos} (REF {variant.ref}) runs past the contig's "
            f"{length:,} bases"
        )
    found = reference.fetch(variant.chrom, start, start + len(variant.ref))
    if found != variant.ref:
        raise ValueError(
            f"{where}: REF {variant.ref!r} at {variant.chrom}:{variant.pos} does not match the "
            f"reference {found!r}"
        )
    left = start - window // 2
    extra = max(0, len(variant.ref) - len(variant.alt))  # a deletion pulls bases in
    stretch = reference.fetch(variant.chrom, left, left + window + extra)
    offset = window // 2
    ref_window = stretch[:window]
    alt_window = (stretch[:offset] + variant.alt + stretch[offset + len(variant.ref) :])[:window]
    return ref_window, alt_window


def log_odds(p: float) -> float:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[1e-7, 1 - 1e-7]``."""
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))
