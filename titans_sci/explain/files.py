"""The file-level work behind ``titans-sci explain`` and ``titans-sci variants``: every record of
a sequence file attributed (a CSV and a PNG per record), and every variant of a VCF scored
(a CSV), each written whole or not at all, with progress bars."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from titans_sci.data.dna import SequenceRecord
from titans_sci.data.tokens import NucleotideTokenizer
from titans_sci.files import atomic_open
from titans_sci.models.dna_classifier import DNAClassifier

from .attributions import (
    BASES,
    DNAModel,
    gradient_x_input,
    gradients,
    integrated_gradients,
    ism_track,
    saturation_mutagenesis,
)
from .logo import attribution_logo
from .variants import Reference, Variant, log_odds, read_vcf, variant_windows

__all__ = ["ATTRIBUTION_COLUMNS", "EFFECT_COLUMNS", "explain_records", "score_variants"]

#: The attribution CSV's columns (one row per record and base).
ATTRIBUTION_COLUMNS = [
    "record", "position", "base", *(f"ism_{b}" for b in BASES), "ism",
    *(f"gradient_{b}" for b in BASES), "gradient_x_input", "integrated_gradients",
]  # fmt: skip
#: The variant-effect CSV's columns (one row per ALT allele).
EFFECT_COLUMNS = ["line", "chrom", "pos", "id", "ref", "alt", "p_ref", "p_alt", "diff",
                  "log_odds_ratio"]  # fmt: skip


def _file_name(record: str, taken: set[str]) -> str:
    """A PNG name for ``record``: its id with characters other than letters, digits and
    ``._-`` replaced, made unique among ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", record).lstrip(".") or "record"
    name, n = stem, 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name.lower())
    return f"{name}.png"


def explain_records(
    model: DNAModel,
    records: Sequence[SequenceRecord],
    folder: Path,
    target: int,
    label: str,
    batch_size: int = 512,
    progress: bool = True,
) -> Path:
    """ISM, gradient x input and integrated gradients of class ``target`` (named ``label`` in
    the plots) for every record: ``folder/attributions.csv`` (:data:`ATTRIBUTION_COLUMNS`,
    positions 1-based) and ``folder/<record>.png`` (the logo of the three tracks). Returns the
    CSV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    path = folder / "attributions.csv"
    with atomic_open(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(ATTRIBUTION_COLUMNS)
        for record in tqdm(records, desc="explain", unit="seq", disable=not progress):
            ids = model.encode(record.sequence)
            ism = saturation_mutagenesis(model, ids, batch_size)[..., target]  # [T, 4]
            track = ism_track(ism[..., None], ids, model.alphabet)[:, 0]
            grad = gradients(model, ids)[..., target]  # [T, 4]
            times_input = gradient_x_input(grad[..., None], ids, model.alphabet)[:, 0]
            integrated = integrated_gradients(model, ids)[:, target]
            columns = [ism, track[:, None], grad, times_input[:, None], integrated[:, None]]
            table = torch.cat(columns, 1).numpy()
            if not np.isfinite(table).all():
                raise FloatingPointError(
                    f"record {record.id}: the attributions are not finite; the model's weights "
                    "or this record break it"
                )
            upper = record.sequence.upper()
            for position, row in enumerate(table):
                writer.writerow([record.id, position + 1, upper[position],
                                 *(f"{v:.6g}" for v in row)])  # fmt: skip
            tracks = {"ISM": track.numpy(), "gradient x input": times_input.numpy(),
                      "integrated gradients": integrated.numpy()}  # fmt: skip
            title = f"{record.id}: attributions to {label}"
            attribution_logo(record.sequence, tracks, title, folder / _file_name(record.id, taken))
    return path


def score_variants(
    model: DNAClassifier,
    reference: str | Path,
    vcf: str | Path,
    output: Path,
    window: int,
    target: int,
    batch_size: int = 256,
    progress: bool = True,
) -> int:
    """Score every ALT allele of ``vcf`` against ``reference`` (see
    :mod:`~titans_sci.explain.variants`) in batches, writing :data:`EFFECT_COLUMNS` to the
    CSV ``output`` (complete or not at all). Memory holds one batch of windows, whatever the
    chromosomes' and the VCF's lengths. Returns the rows written."""
    tokenizer = NucleotideTokenizer()
    fasta = Reference(reference)
    written = 0
    try:
        with atomic_open(output) as handle:
            writer = csv.writer(handle)
            writer.writerow(EFFECT_COLUMNS)
            batch: list[tuple[Variant, str, str]] = []

            def flush() -> None:
                windows = [w for _, ref, alt in batch for w in (ref, alt)]
                ids = torch.tensor([tokenizer.encode(w) for w in windows])
                p = model.predict_proba(ids)[:, target].double().numpy()
                broken = np.flatnonzero(~np.isfinite(p))
                if broken.size:
                    variant = batch[int(broken[0]) // 2][0]
                    raise FloatingPointError(
                        f"{vcf}: line {variant.line}: the model's probability is not finite; "
                        "its weights or this window break it"
                    )
                for (variant, _, _), p_ref, p_alt in zip(batch, p[0::2], p[1::2], strict=True):
                    writer.writerow([
                        variant.line, variant.chrom, variant.pos, variant.id, variant.ref,
                        variant.alt, f"{p_ref:.6g}", f"{p_alt:.6g}", f"{p_alt - p_ref:.6g}",
                        f"{log_odds(p_alt) - log_odds(p_ref):.6g}",
                    ])  # fmt: skip
                batch.clear()

            variants = read_vcf(vcf)
            for variant in tqdm(variants, desc="variants", unit="variant", disable=not progress):
                batch.append((variant, *variant_windows(fasta, variant, window, str(vcf))))
                written += 1
                if len(batch) == batch_size:
                    flush()
            if batch:
                flush()
    finally:
        fasta.close()
    return written
