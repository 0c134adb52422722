"""AUGUSTUS (Stanke et al.), the field's HMM gene finder, as a peer of the annotator: the
``augustus`` program (Debian package ``augustus``) run on whole chromosomes with a species'
parameters, its genes read back as :class:`~titans_sci.data.annotation.Feature` lists, scored
by the same code as every other model.

AUGUSTUS writes the stop codon apart from the CDS; GenBank's CDS holds it, so stop codons are
joined to their CDS (:func:`~titans_sci.data.annotation.read_gff3`, ``join_stop_codons``). It
predicts protein-coding genes only: no RNA gene.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from titans_sci.data.annotation import Feature, read_gff3

__all__ = ["augustus_version", "run_augustus"]


def _program() -> str:
    found = shutil.which("augustus")
    if found is None:
        raise ValueError(
            "AUGUSTUS is not installed (no 'augustus' program on PATH): apt-get install "
            "augustus, or set baselines.augustus = false"
        )
    return found


def augustus_version() -> str:
    """The installed AUGUSTUS' version line, e.g. ``AUGUSTUS (3.5.0)``."""
    done = subprocess.run([_program(), "--version"], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0].split(" is ")[0]


def run_augustus(
    sequences: Iterable[tuple[str, str]], species: str = "saccharomyces_cerevisiae_S288C"
) -> dict[str, list[Feature]]:
    """The genes AUGUSTUS predicts on both strands of each ``(id, sequence)``, by id."""
    program = _program()
    found: dict[str, list[Feature]] = {}
    with tempfile.TemporaryDirectory(prefix="augustus-") as folder:
        for index, (name, sequence) in enumerate(sequences):
            fasta, gff3 = Path(folder) / f"{index}.fa", Path(folder) / f"{index}.gff3"
            fasta.write_text(f">{name}\n{sequence}\n")
            command = [program, f"--species={species}", "--gff3=on", "--strand=both",
                       f"--outfile={gff3}", str(fasta)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                detail = " ".join(done.stderr.split())[-300:]
                raise ValueError(f"AUGUSTUS failed on {name!r} (exit {done.returncode}): {detail}")
            genes = read_gff3(gff3, {name: len(sequence)}, join_stop_codons=True)
            found[name] = genes.get(name, [])
    return found
