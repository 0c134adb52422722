"""The bundled pretrained DNA language model: kept apart from every evaluation split, and it
starts the classifier of the genomics task files."""

from __future__ import annotations

import json

import torch

from titans_sci.api import init_from_pretrained, load_module
from titans_sci.data.pretraining import bundled_splits
from titans_sci.models.dna_classifier import DNAClassifier
from titans_sci.models.dna_lm import DNAMaskedLM
from titans_sci.resources import tasks_dir
from titans_sci.tasks import load_task, run

BUNDLED = tasks_dir() / "pretrained" / "dna_lm"


def test_the_bundled_model_was_pretrained_with_every_evaluation_split_held_out():
    meta = json.loads((BUNDLED / "model.json").read_text())["meta"]["pretraining"]
    assert meta["held_out"] == [name for name, _ in bundled_splits(held_out=True)]
    assert meta["sources"] == [name for name, _ in bundled_splits(held_out=False)]
    assert all(source.endswith("/train") for source in meta["sources"])


def test_the_bundled_model_starts_the_genomics_task_files_classifier(tmp_path):
    task = load_task(
        "tasks/gue_prom_core_tata.toml",
        {
            "training.init": str(BUNDLED),
            "training.epochs": 1,
            "data.max_train": 64,
            "data.max_eval": 32,
            "protocol.seeds": [1],
            "baselines.kmer_lr": False,
            "baselines.cnn": False,
        },
    )
    lm, _ = load_module(BUNDLED)
    assert isinstance(lm, DNAMaskedLM)
    classifier = init_from_pretrained(DNAClassifier(task.model), BUNDLED)
    pretrained = lm.state_dict()
    for key, value in classifier.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, pretrained[key]), key
    result = run(task, tmp_path)
    assert result["fingerprint"]["data"]["init"]["file"] == str(BUNDLED / "model.safetensors")
    assert 0 <= result["runs"][0]["accuracy"] <= 1
