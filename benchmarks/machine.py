"""What the benchmark scripts say about the machine they ran on (the suites' own line, from
``titans_sci.suites``; the repository is put on the path first, so a script run from a bare
checkout finds the package)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans_sci.suites import cpu_model, describe_machine  # noqa: E402

describe = describe_machine

__all__ = ["cpu_model", "describe"]
