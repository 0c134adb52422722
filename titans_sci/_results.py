"""Writing a task's run directory: ``config.json`` first (the task as resolved, defaults
included), ``results.json`` and ``runs.csv`` last, each replaced atomically; a directory without
``results.json`` is an unfinished run. Under torchrun only process 0 writes."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from titans_sci.distributed import is_main


def write_results(directory: Path, result: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """``directory/results.json`` (the whole ``result``) and ``directory/runs.csv`` (one row
    per run, columns in order of first appearance). Each file is written to a temporary name
    and renamed, so a reader never sees half a file."""
    if not is_main():
        return
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(directory / "results.json")
    columns = list(dict.fromkeys(k for r in runs for k in r))
    with open(directory / "runs.csv.tmp", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(runs)
    (directory / "runs.csv.tmp").replace(directory / "runs.csv")


def write_config(directory: Path, task: Any) -> None:
    """``directory/config.json``: the task dataclass with every default filled in."""
    if not is_main():
        return
    directory.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(task)
    tmp = directory / "config.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(directory / "config.json")
