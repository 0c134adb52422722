"""titans-sci: Titans/MIRAS neural long-term memory for genomics and time series.

Subpackages: ``memory`` (MIRAS core), ``layers``, ``models``, ``kernels`` (Triton),
``data`` (DNA and time-series adapters), ``heads``, ``evaluation``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
