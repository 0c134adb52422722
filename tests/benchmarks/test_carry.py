"""Carrying unfinished run folders between sessions (``benchmarks/carry.py``): a packed run
unpacked on a bare machine resumes to the numbers of the run it came from; finished runs are
not carried and their old archives go; the lock stays behind."""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from carry import pack, unfinished, unpack  # noqa: E402

from tiny_tasks import classification_task, gue_csv, write  # noqa: E402
from titans_sci.tasks import load_task, run  # noqa: E402
from titans_sci.tasks.run_folder import OUTPUTS  # noqa: E402


def test_a_carried_run_resumes_to_the_numbers_it_would_have_given(tmp_path):
    splits = {s: gue_csv(tmp_path, s, 40) for s in ("train", "dev", "test")}
    data = "\n".join(f'{s} = "{name}"' for s, name in splits.items())
    task = load_task(write(tmp_path / "t.toml", classification_task("carried", data)))
    runs = tmp_path / "runs"
    whole = run(task, runs)
    for name in OUTPUTS:  # the same folder as it stood before its test: an unfinished run
        (runs / "carried" / name).unlink()
    (runs / "other").mkdir()  # not a run: never carried
    store = tmp_path / "store"
    assert pack(runs, store) == (["carried"], [])
    with tarfile.open(store / "carried.tar.gz") as archive:
        names = archive.getnames()
    assert "carried/run.json" in names and not any(n.endswith(".lock") for n in names)

    bare = tmp_path / "bare"  # the next session's machine
    assert unpack(store, bare) == ["carried"]
    assert unpack(store, bare) == []  # a folder already there is left alone
    checkpoints = {c: c.stat().st_mtime_ns for c in bare.glob("carried/checkpoints/**/*.pt")}
    assert checkpoints
    again = run(task, bare, resume=True)  # its fingerprint accepted: nothing trains again
    assert again["runs"] == whole["runs"]
    assert {c: c.stat().st_mtime_ns for c in checkpoints} == checkpoints
    assert unfinished(bare) == []
    assert pack(bare, store) == ([], ["carried"])  # finished: its archive goes
    assert not list(store.iterdir())


def test_an_archive_with_files_outside_its_folder_is_refused(tmp_path):
    store, outside = tmp_path / "store", tmp_path / "x.txt"
    store.mkdir()
    outside.write_text("x")
    with tarfile.open(store / "evil.tar.gz", "w:gz") as archive:
        archive.add(outside, arcname="elsewhere/x.txt")
    with pytest.raises(ValueError, match="evil.tar.gz: holds files outside its folder evil/"):
        unpack(store, tmp_path / "runs")
    assert not (tmp_path / "runs" / "elsewhere").exists()
    shutil.rmtree(store)
    assert unpack(store, tmp_path / "runs") == []
