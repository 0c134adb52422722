"""Carry unfinished run folders from one working session to the next, through git.

A working session here lasts three hours and the next one may start on a bare machine: only
what is committed survives. Some benchmark parts train longer than a session (the annotation
benchmark's Titans part, the longest genomics pieces), and a run folder resumes exactly from
its last epoch checkpoint (``titans_sci.tasks.run_folder``), so the session that stops packs
every unfinished run folder into ``STORE/<folder>.tar.gz`` and commits it, and the next one
unpacks them before it starts its queue::

    python benchmarks/carry.py pack --runs /work/ann-runs --store benchmarks/carried/annotation
    python benchmarks/carry.py unpack --runs /work/ann-runs --store benchmarks/carried/annotation

An unfinished folder is one with ``run.json`` and no ``results.json``; its lock file stays
behind. ``pack`` also deletes the archive of a folder that has finished since, so the store
holds only what is still running. A resumed run checks its fingerprint (task, data checksums,
data paths and code version), so unpack into the same runs folder and run from a worktree at a
commit with the same ``titans_sci`` source, at the same path, or the run is refused rather than
mixed.
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

from titans_sci.files import save_with
from titans_sci.tasks.run_folder import LOCK, OUTPUTS, RUN_FILE

SUFFIX = ".tar.gz"


def unfinished(runs: Path) -> list[Path]:
    """The run folders under ``runs`` that hold a run (``run.json``) not finished (no
    ``results.json``), by name."""
    if not runs.is_dir():
        return []
    return sorted(
        f for f in runs.iterdir() if (f / RUN_FILE).is_file() and not (f / OUTPUTS[0]).exists()
    )


def pack(runs: Path, store: Path) -> tuple[list[str], list[str]]:
    """Archive every unfinished run folder of ``runs`` into ``store`` (replacing its older
    archive) and delete the archives of folders that have finished; returns ``(packed,
    dropped)`` folder names."""
    store.mkdir(parents=True, exist_ok=True)
    packed = []
    for folder in unfinished(runs):

        def write(path: Path, folder: Path = folder) -> None:
            with tarfile.open(path, "w:gz") as archive:
                archive.add(folder, arcname=folder.name, filter=_without_lock)

        save_with(store / f"{folder.name}{SUFFIX}", write)
        packed.append(folder.name)
    dropped = []
    for archive in sorted(store.glob(f"*{SUFFIX}")):
        name = archive.name.removesuffix(SUFFIX)
        if (runs / name / OUTPUTS[0]).exists():
            archive.unlink()
            dropped.append(name)
    return packed, dropped


def unpack(store: Path, runs: Path) -> list[str]:
    """Extract every archive of ``store`` into ``runs`` whose folder is not there yet; returns
    the folder names extracted."""
    runs.mkdir(parents=True, exist_ok=True)
    done = []
    for archive in sorted(store.glob(f"*{SUFFIX}")) if store.is_dir() else []:
        name = archive.name.removesuffix(SUFFIX)
        if (runs / name).exists():
            continue
        with tarfile.open(archive) as opened:
            if any(m.name != name and not m.name.startswith(f"{name}/") for m in opened):
                raise ValueError(f"{archive}: holds files outside its folder {name}/")
            opened.extractall(runs, filter="data")
        done.append(name)
    return done


def _without_lock(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(member.name).name == LOCK else member


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    if args.action == "pack":
        packed, dropped = pack(args.runs, args.store)
        print(f"packed {packed or 'nothing'}; dropped the finished {dropped or 'none'}")
    else:
        print(f"unpacked {unpack(args.store, args.runs) or 'nothing'}")


if __name__ == "__main__":
    main()
