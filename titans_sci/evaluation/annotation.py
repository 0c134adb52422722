"""Genome-annotation metrics, as gene-finder papers report them.

- Base level (:func:`confusion`, :func:`base_scores`): per label of
  :data:`~titans_sci.data.annotation.LABELS`, precision, recall, F1 and MCC of that label
  against the rest, from a confusion matrix that adds up over chromosomes.
- Feature level (:func:`feature_scores`), on CDS: ``exon`` (a predicted coding part counts when
  a true one has the same strand, first and last base) and ``cds`` (a predicted CDS counts
  when a true one has the same strand, first and last base: "exact start and end"), each with
  precision, recall and F1.

A score whose denominator is zero (no base predicted as a label, say) is ``None``, never NaN;
:data:`UNDEFINED` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from titans_sci.data.annotation import LABELS, Feature

UNDEFINED = {
    "precision": "no base (or feature) was predicted with the label",
    "recall": "no base (or feature) has the label in the annotation",
    "f1": "precision and recall are both zero or undefined",
    "mcc": "the label (or its absence) covers every base of the truth or of the prediction",
}


def confusion(truth: np.ndarray, predicted: np.ndarray, k: int = len(LABELS)) -> np.ndarray:
    """Counts ``[k, k]`` of (true label, predicted label) over the bases of ``truth`` and
    ``predicted`` (``[L]`` each, integer labels in ``0..k-1``)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth has shape {truth.shape} but predicted {predicted.shape}")
    for name, values in (("truth", truth), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= k):
            raise ValueError(f"{name} holds labels outside 0..{k - 1}")
    flat = truth.astype(np.int64) * k + predicted.astype(np.int64)
    return np.bincount(flat, minlength=k * k).reshape(k, k)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0:
        return None
    return 2 * precision * recall / (precision + recall)


def base_scores(matrix: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Per label (by name): ``precision``, ``recall``, ``f1`` and ``mcc`` (one against the
    rest) of a :func:`confusion` matrix; plus ``"all"``: ``accuracy`` and the multiclass
    ``mcc`` (Gorodkin's R_K)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    n = matrix.sum()
    out: dict[str, dict[str, float | None]] = {}
    for label, name in enumerate(LABELS[: matrix.shape[0]]):
        tp = matrix[label, label]
        fp = matrix[:, label].sum() - tp
        fn = matrix[label, :].sum() - tp
        tn = n - tp - fp - fn
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out[name] = {
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "mcc": _ratio(tp * tn - fp * fn, den),
        }
    t, p, c = matrix.sum(axis=1), matrix.sum(axis=0), np.trace(matrix)
    den = np.sqrt((n * n - (p * p).sum()) * (n * n - (t * t).sum()))
    out["all"] = {"accuracy": _ratio(c, n), "mcc": _ratio(c * n - (t * p).sum(), den)}
    return out


def _prf(true: set, predicted: set) -> dict[str, float | None]:
    hits = len(true & predicted)
    precision, recall = _ratio(hits, len(predicted)), _ratio(hits, len(true))
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "true": len(true),
        "predicted": len(predicted),
    }


def feature_scores(
    truth: Mapping[str, Iterable[Feature]], predicted: Mapping[str, Iterable[Feature]]
) -> dict[str, dict[str, float | None]]:
    """``exon`` and ``cds`` precision, recall and F1 (and the counts ``true`` and
    ``predicted``) of the CDS of ``predicted`` against those of ``truth``, both by sequence
    id. RNA genes are not scored here (their bases are, by :func:`base_scores`)."""
    exons: tuple[set, set] = (set(), set())
    cds: tuple[set, set] = (set(), set())
    for side, features_by_id in enumerate((truth, predicted)):
        for seqid, features in features_by_id.items():
            for f in features:
                if f.kind != "CDS":
                    continue
                cds[side].add((seqid, f.strand, f.start, f.stop))
                exons[side].update((seqid, f.strand, a, b) for a, b in f.parts)
    return {"exon": _prf(*exons), "cds": _prf(*cds)}


#: The labels' names in result keys (``cds_plus_f1``, ...), in the order of ``LABELS``.
LABEL_KEYS = ("intergenic", "cds_plus", "cds_minus", "intron", "rna")


def annotation_metrics(
    matrix: np.ndarray,
    truth: Mapping[str, Iterable[Feature]],
    predicted: Mapping[str, Iterable[Feature]],
) -> dict[str, float | None]:
    """One flat row of every score: ``cds_precision``, ``cds_recall`` and ``cds_f1`` (coding
    bases on the right strand: CDS+ and CDS- counted together), ``accuracy`` and ``mcc`` over
    every label, ``<label>_<precision|recall|f1|mcc>`` per label (:data:`LABEL_KEYS`),
    ``exon_*`` and ``cds_exact_*`` (:func:`feature_scores`)."""
    matrix = np.asarray(matrix)
    coding = [LABELS.index("CDS+"), LABELS.index("CDS-")]
    tp = float(sum(matrix[c, c] for c in coding))
    precision = _ratio(tp, float(matrix[:, coding].sum()))
    recall = _ratio(tp, float(matrix[coding, :].sum()))
    base = base_scores(matrix)
    row: dict[str, float | None] = {
        "cds_precision": precision,
        "cds_recall": recall,
        "cds_f1": _f1(precision, recall),
        "accuracy": base["all"]["accuracy"],
        "mcc": base["all"]["mcc"],
    }
    for key, name in zip(LABEL_KEYS, LABELS, strict=True):
        row.update({f"{key}_{metric}": value for metric, value in base[name].items()})
    for level, scores in feature_scores(truth, predicted).items():
        prefix = "exon" if level == "exon" else "cds_exact"
        row.update({f"{prefix}_{m}": scores[m] for m in ("precision", "recall", "f1")})
    return row
