"""What the benchmark scripts say about the machine they ran on (the suites' own line, from
``titans_sci.suites``). Benchmarks run with the project's venv (``make setup``), where the
package is installed; they never edit ``sys.path``."""

from __future__ import annotations

from titans_sci.suites import cpu_model, describe_machine

describe = describe_machine

__all__ = ["cpu_model", "describe"]
