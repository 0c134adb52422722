"""The notebooks execute top to bottom on the current code (tiny budgets), so they never rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_three_walkthroughs_are_there():
    names = {p.stem for p in NOTEBOOKS}
    assert {"genomics_walkthrough", "forecasting_walkthrough", "memory_inspection"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch):
    # One thread per kernel: the suite already runs two test processes on two cores, and
    # oversubscribed OpenMP threads slow a kernel down many times over.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    outputs = [
        o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(
        o.get("output_type") in ("stream", "display_data", "execute_result") for o in outputs
    )
