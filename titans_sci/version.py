"""What code this is: the package version, and a checksum of its sources that a resumed run
and a saved GluonTS predictor are checked against."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

__version__ = "0.1.0"


@cache
def code_version() -> dict[str, str]:
    """The package version and a SHA-256 over its Python sources (the Triton kernels' folder
    included, wherever the build maps it from): a resumed run must be of the same code."""
    package = Path(__file__).resolve().parent
    roots = [package]
    kernels = importlib.util.find_spec("titans_sci.kernels")  # found, not imported
    for place in (kernels.submodule_search_locations or []) if kernels else []:
        if not Path(place).resolve().is_relative_to(package):
            roots.append(Path(place).resolve())
    digest = hashlib.sha256()
    for root in roots:
        for file in sorted(root.rglob("*.py")):
            digest.update(f"{root.name}/{file.relative_to(root).as_posix()}".encode())
            digest.update(file.read_bytes())
    return {"version": __version__, "source_sha256": digest.hexdigest()}
