"""A JSON store of benchmark results that several processes can fill, and its rendered table
(``titans_sci.suites.store``)."""

from __future__ import annotations

from titans_sci.suites.store import save

__all__ = ["save"]
