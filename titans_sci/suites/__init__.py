"""Benchmark suites a user runs with one command (``titans-sci bench genomics``), and what
they share with the scripts of ``benchmarks/``: a results store several processes can fill
(:mod:`.store`) and a line naming the machine (:func:`describe_machine`)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine(threads: int) -> str:
    """``"<CPU>, <n> cores, <threads> torch thread(s), torch <version>"``."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {threads} torch thread(s), "
        f"torch {torch.__version__}"
    )
