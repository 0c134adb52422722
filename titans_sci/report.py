"""Run reports: the plots a person would rather look at than read, tied together in report.md.

Every run directory gets ``report.md`` and PNG figures: learning curves of every training run,
and, for the first Titans model, a confusion matrix and ROC curve
(classification), a forecast against the truth with a 95% band (forecasting) or predicted
against true labels along a stretch of a chromosome (annotation), and the
memory's surprise along one test input. Matplotlib's object API is used (no pyplot, no global
backend state), so reports can be written from any thread or notebook. Every function takes
what it plots in memory; nothing is read back from the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sklearn.metrics import confusion_matrix, roc_curve

from titans_sci.files import save_with, write_text
from titans_sci.train import TrainResult


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    return save_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def learning_curves(runs: Mapping[str, TrainResult], path: Path) -> Path:
    """Training loss and dev score per epoch of every training run (one line per run, labelled
    by its key)."""
    figure = Figure(figsize=(10, 3.6))
    loss_axes, dev_axes = figure.subplots(1, 2)
    for label, result in runs.items():
        epochs = np.arange(1, len(result.train_losses) + 1)
        loss_axes.plot(epochs, result.train_losses, marker="o", label=label)
        dev_axes.plot(epochs, result.dev_scores, marker="o", label=label)
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="training loss")
    dev_axes.set(xlabel="epoch", ylabel="dev score (higher is better)", title="selection score")
    dev_axes.legend(fontsize=7)
    return _save(figure, path)


def confusion_and_roc(labels: np.ndarray, probabilities: np.ndarray, path: Path) -> Path:
    """Confusion matrix and (binary) ROC curve of test predictions ``[N, K]``."""
    figure = Figure(figsize=(9, 3.8))
    left, right = figure.subplots(1, 2)
    k = probabilities.shape[1]
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), labels=list(range(k)))
    left.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        left.text(j, i, str(count), ha="center", va="center")
    left.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    left.set_xticks(range(k))
    left.set_yticks(range(k))
    if k == 2 and len(np.unique(labels)) == 2:
        fpr, tpr, _ = roc_curve(labels, probabilities[:, 1])
        right.plot(fpr, tpr)
        right.plot([0, 1], [0, 1], linestyle="--", color="grey")
        right.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    else:
        right.axis("off")
    return _save(figure, path)


def forecast_band(
    history: np.ndarray, truth: np.ndarray, forecast: np.ndarray, spread: np.ndarray, path: Path
) -> Path:
    """One window: ``history [L]``, then ``truth`` and ``forecast`` ``[H]`` with a band of
    ``forecast +- spread``."""
    figure = Figure(figsize=(9, 3.6))
    axes = figure.subplots()
    past = np.arange(-len(history), 0)
    future = np.arange(len(truth))
    axes.plot(past, history, color="black", label="input")
    axes.plot(future, truth, color="black", linestyle="--", label="truth")
    axes.plot(future, forecast, color="tab:blue", label="forecast")
    axes.fill_between(future, forecast - spread, forecast + spread, alpha=0.25, label="95% band")
    axes.set(xlabel="step (0 = first forecast step)", ylabel="value (scaled)")
    axes.legend(fontsize=8)
    return _save(figure, path)


def surprise_trace(trace: np.ndarray, path: Path, title: str, ticks: Sequence[str] = ()) -> Path:
    """The memory's surprise ``[T, layers, heads]`` along an input: one line per layer (mean
    over heads), heads shaded."""
    trace = np.asarray(trace)
    figure = Figure(figsize=(10, 3.4))
    axes = figure.subplots()
    positions = np.arange(trace.shape[0])
    for layer in range(trace.shape[1]):
        heads = trace[:, layer]
        axes.fill_between(positions, heads.min(1), heads.max(1), alpha=0.2)
        axes.plot(positions, heads.mean(1), label=f"layer {layer + 1}")
    if ticks and len(ticks) <= 120:
        axes.set_xticks(positions, list(ticks), fontsize=6)
    axes.set(xlabel="position", ylabel="surprise ||grad||", title=title)
    axes.legend(fontsize=8)
    return _save(figure, path)


def label_tracks(
    tracks: Mapping[str, np.ndarray], names: Sequence[str], start: int, path: Path, title: str
) -> Path:
    """Per-base label tracks ``{row name: labels [L]}`` (indices of ``names``) one above the
    other along the same ``L`` bases, the first base numbered ``start`` (1-based)."""
    figure = Figure(figsize=(12, 1.1 + 0.45 * len(tracks)))
    axes = figure.subplots()
    image = np.stack([np.asarray(t) for t in tracks.values()])
    colours = ["#f2f2f2", "tab:blue", "tab:red", "tab:orange", "tab:green", "tab:purple"]
    cmap = ListedColormap(colours[: len(names)])
    end = start + image.shape[1] - 1
    extent = (start - 0.5, end + 0.5, len(tracks) - 0.5, -0.5)
    axes.imshow(image, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5,
                vmax=len(names) - 0.5, extent=extent)  # fmt: skip
    axes.set_yticks(range(len(tracks)), list(tracks))
    axes.set(xlabel="base", title=title)
    handles = [Patch(color=c, label=n) for c, n in zip(colours, names, strict=False)]
    axes.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.005, 0.5))
    return _save(figure, path)


def write_report(directory: Path, title: str, lines: Sequence[str], figures: dict[str, Path]):
    """``directory/report.md``: the title, the summary lines and every figure."""
    parts = [f"# {title}", "", "```", *lines, "```", ""]
    for caption, figure in figures.items():
        parts += [
            f"## {caption}",
            "",
            f"![{caption}]({figure.relative_to(directory).as_posix()})",
            "",
        ]
    return write_text(directory / "report.md", "\n".join(parts))
