"""A JSON store of benchmark results that several processes can fill, and its rendered table
(``titans_sci.suites.store``; the repository is put on the path first)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans_sci.suites.store import save  # noqa: E402

__all__ = ["save"]
