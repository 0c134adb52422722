"""The attribution plot a biologist reads: each base's letter scaled by its attribution (up for
a base that supports the class, down for one that works against it), one panel per method,
drawn with logomaker (sequence-logo letters on a matplotlib axis) and written to PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from titans_sci.files import save_with

from .attributions import BASES

__all__ = ["attribution_logo"]


def attribution_logo(
    sequence: str, tracks: dict[str, np.ndarray], title: str, path: str | Path
) -> Path:
    """Write ``path`` (PNG): for each named track ``[T]`` of ``sequence``'s attributions, a
    panel of the sequence's letters, each scaled by its base's value (bases other than
    ``ACGT`` drawn as nothing)."""
    import logomaker

    length = len(sequence)
    width = min(max(6.0, length * 0.12), 40.0)
    figure = Figure(figsize=(width, 1.9 * len(tracks) + 0.4))
    axes = figure.subplots(len(tracks), 1, squeeze=False)[:, 0]
    upper = sequence.upper()
    for axis, (name, values) in zip(axes, tracks.items(), strict=True):
        matrix = pd.DataFrame(0.0, index=range(1, length + 1), columns=list(BASES))
        for position, base in enumerate(upper):
            if base in BASES:
                matrix.iloc[position, BASES.index(base)] = float(values[position])
        logomaker.Logo(matrix, ax=axis, color_scheme="classic", flip_below=False)
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.set_ylabel(name)
        axis.set_xlim(0.5, length + 0.5)
    axes[0].set_title(title)
    axes[-1].set_xlabel("position (1-based)")
    figure.tight_layout()
    return save_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
