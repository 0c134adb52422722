"""Classification metrics (scikit-learn): accuracy, MCC, F1 and AUROC."""

from __future__ import annotations

import numpy as np
from sklearn import metrics

#: Why a metric can be undefined (``None``).
UNDEFINED = {
    "auroc": "AUROC is undefined where the labels lack a class of the task (a test split of a "
    "single class, or one that misses a class)"
}


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray
) -> dict[str, float | None]:
    """Metrics of ``probabilities: [N, K]`` (rows sum to 1) against integer ``labels: [N]``.

    ``accuracy``; ``mcc`` (Matthews correlation); ``f1`` (binary F1 of class 1 when K = 2, else
    macro F1); ``auroc`` (of class 1 when K = 2, else one-vs-rest macro; ``None`` when only one
    class is present in ``labels``, or when a class of ``0..K-1`` is missing from them, where
    its one-vs-rest term is undefined). Every other value is a finite
    float: a label outside ``0..K-1`` or a probability that is NaN or inf is refused, naming
    its row (0-based).
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probabilities have shape {probabilities.shape}; expected [N={labels.shape[0]}, K]"
        )
    k = probabilities.shape[1]
    outside = np.flatnonzero((labels < 0) | (labels >= k))
    if outside.size:
        i = int(outside[0])
        raise ValueError(
            f"labels outside 0..{k - 1}: found {labels.min()}..{labels.max()} (row {i} has "
            f"label {labels[i]}; {outside.size} such rows)"
        )
    broken = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
    if broken.size:
        raise FloatingPointError(
            f"the probabilities of row {int(broken[0])} are not finite ({broken.size} such rows)"
        )
    predicted = probabilities.argmax(axis=1)
    binary = k == 2
    # MCC is 0 when labels and predictions hold a single class between them (sklearn's value,
    # without its warning); F1 is 0 where it is undefined.
    single = len(np.union1d(labels, predicted)) < 2
    average = "binary" if binary else "macro"
    result: dict[str, float | None] = {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "mcc": 0.0 if single else float(metrics.matthews_corrcoef(labels, predicted)),
        "f1": float(metrics.f1_score(labels, predicted, average=average, zero_division=0.0)),
    }
    if len(np.unique(labels)) < (2 if binary else k):
        result["auroc"] = None
    elif binary:
        result["auroc"] = float(metrics.roc_auc_score(labels, probabilities[:, 1]))
    else:
        result["auroc"] = float(
            metrics.roc_auc_score(labels, probabilities, multi_class="ovr", labels=list(range(k)))
        )
    for name, value in result.items():
        if value is not None and not np.isfinite(value):
            raise FloatingPointError(f"{name} is {value}, not a finite number")
    return result
