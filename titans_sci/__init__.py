"""titans-sci: Titans/MIRAS neural long-term memory for genomics and time series.

Subpackages: ``memory`` (MIRAS core), ``layers``, ``models``, ``kernels`` (Triton),
``data`` (DNA and time-series adapters), ``heads``, ``evaluation``; ``load`` opens a trained
model (see :mod:`titans_sci.api`).
"""

from pathlib import Path

from titans_sci.version import __version__

__all__ = ["__version__", "load"]


def load(path: str | Path):
    """A trained model saved by titans-sci (a folder with ``model.safetensors`` and
    ``model.json``): a ``SequenceClassifier``, a ``Forecaster`` or a
    ``WholeHistoryForecaster`` (a ``Forecaster`` that streams the whole series) with
    ``predict`` and ``surprise`` (see :mod:`titans_sci.api`)."""
    from titans_sci.api import load as load_model

    return load_model(path)
