"""A pretraining task end to end on the user's own FASTA file, and a classification task that
starts from its saved model."""

from __future__ import annotations

import json
import re

import pytest

from tests.tiny_tasks import classification_task
from titans_sci.data.dna import read_sequences, reverse_complement
from titans_sci.tasks import load_task, run

PRETRAIN = """format = 2
kind = "pretraining"
name = "pretrain_tiny"
[data]
bundled = false
files = ["genome.fa"]
window = 128
held_out = 0.05
[model]
stem_kernel = 9
[model.backbone]
dim = 16
depth = 1
bidirectional = true
memory = { preset = "titans", num_heads = 2, head_dim = 8, chunk_size = 16 }
[training]
epochs = 2
steps_per_epoch = 3
batch_size = 8
"""


@pytest.fixture
def genome(tmp_path):
    """A FASTA 'genome' of real mouse training sequences, with one test sequence (reverse
    complemented) inside: the windows that hold it never reach pretraining."""
    train = [r.sequence for r in read_sequences("datasets/gue/mouse/3/train.csv.gz")[:150]]
    test = read_sequences("datasets/gue/mouse/3/test.csv.gz")[0].sequence
    text = "".join(train[:75]) + reverse_complement(test) + "".join(train[75:])
    path = tmp_path / "genome.fa"
    path.write_text(">chr1\n" + "\n".join(text[i : i + 70] for i in range(0, len(text), 70)))
    (tmp_path / "pretrain.toml").write_text(PRETRAIN)
    return path, test


def test_pretraining_on_a_fasta_file_then_fine_tuning_from_it(genome, tmp_path):
    path, test = genome
    task = load_task(tmp_path / "pretrain.toml")
    assert task.data.files == (str(path),)
    result = run(task, tmp_path / "runs")
    protocol = result["protocol"]
    assert "dropped for sharing a 32-mer" in protocol
    stats = result["summary"]["titans"]
    assert 0 < stats["masked_loss"]["mean"] < 2 and 0 < stats["masked_accuracy"]["mean"] < 1
    model = tmp_path / "runs" / "pretrain_tiny" / "checkpoints" / "seed1" / "titans" / "model"
    meta = json.loads((model / "model.json").read_text())
    assert meta["kind"] == "dna_lm"
    assert "gue/mouse/3/test" in meta["meta"]["pretraining"]["held_out"]
    corpus = meta["meta"]["pretraining"]["corpus"]
    dropped = int(re.search(r"(\d+) dropped", corpus).group(1))
    assert dropped >= 1  # at least the window with the test sequence in it

    body = 'dataset = "gue/mouse/3"\nmax_train = 64\nmax_eval = 32'
    extra = f'init = "{model}"\n[protocol]\nseeds = [1]\n[baselines]\nkmer_lr = false\n'
    text = classification_task("from_pretrained", body, extra)  # extra: in [training]
    (tmp_path / "fine.toml").write_text(text)
    fine = load_task(tmp_path / "fine.toml")
    assert fine.training.init == str(model)
    result = run(fine, tmp_path / "runs")
    assert result["runs"][0]["model"] == "titans"
    # the fingerprint holds the pretrained weights' checksum: a changed checkpoint is noticed
    assert "init" in result["fingerprint"]["data"]
