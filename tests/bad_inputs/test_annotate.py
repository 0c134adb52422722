"""``titans-sci annotate`` refuses bad input in one line naming the file, record and position,
and writes nothing: a non-IUPAC base, a truncated gzip, an output onto its input, a model that
is not an annotator; ``predict`` refuses an annotator by name."""

from __future__ import annotations

import gzip

import pytest
import torch

from refusal import refused
from titans_sci.memory import MemoryConfig
from titans_sci.modelfolder import save_model
from titans_sci.models.config import LMMConfig
from titans_sci.models.genome_annotator import AnnotatorConfig, GenomeAnnotator


@pytest.fixture(scope="module")
def annotator(tmp_path_factory):
    torch.manual_seed(0)
    memory = MemoryConfig(num_heads=2, head_dim=8, chunk_size=8)
    model = GenomeAnnotator(AnnotatorConfig(backbone=LMMConfig(dim=16, memory=memory)))
    folder = tmp_path_factory.mktemp("model") / "annotator"
    save_model(folder, model, {"labels": []})
    return folder


def test_a_bad_base_is_named_by_file_record_and_position(annotator, tmp_path, capsys):
    genome = tmp_path / "genome.fa"
    genome.write_text(">chrA\n" + "ACGT" * 500 + "\n>chrB\nACGTACGTXACGT\n")
    out = tmp_path / "out"
    out.mkdir()
    refused(capsys, ["annotate", str(annotator), str(genome), "-o", str(out / "genes.gff3")],
            "genome.fa", "'chrB'", "'X'", "position 9", watch=[out])  # fmt: skip


def test_a_truncated_genome_and_an_output_onto_the_input_are_refused(annotator, tmp_path, capsys):
    whole = gzip.compress((">chrA\n" + "ACGT" * 5000 + "\n").encode())
    genome = tmp_path / "cut.fa.gz"
    genome.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    out.mkdir()
    refused(capsys, ["annotate", str(annotator), str(genome), "-o", str(out / "genes.gff3")],
            "cut.fa.gz", watch=[out])  # fmt: skip
    refused(capsys, ["annotate", str(annotator), str(genome), "-o", str(genome)], "cut.fa.gz",
            watch=[tmp_path])  # fmt: skip


def test_predict_names_annotate_for_an_annotator(annotator, tmp_path, capsys):
    genome = tmp_path / "g.fa"
    genome.write_text(">a\nACGT\n")
    refused(capsys, ["predict", str(annotator), str(genome)], "genome annotator",
            "titans-sci annotate")  # fmt: skip
