"""The DNA classifier: strand-symmetric predictions, and learning a real GUE task."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from titans_sci.data.registry import load_manifest
from titans_sci.data.tokens import NucleotideTokenizer, pad_batch, reverse_complement_ids
from titans_sci.evaluation.metrics import classification_metrics
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier, random_strands

MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=16, chunk_size=16)


def _batch(sequences: list[str]):
    tok = NucleotideTokenizer()
    return pad_batch([tok.encode(s) for s in sequences], tok.pad_id)


def _split(name: str, split: str) -> pd.DataFrame:
    return pd.read_csv(load_manifest(name).splits[split].file)


def test_reverse_complement_averaging_is_strand_symmetric():
    """A sequence and its reverse complement get the same probabilities (bidirectional
    backbone, both strands averaged), with padding at the end of shorter sequences."""
    torch.manual_seed(0)
    model = DNAClassifier(
        ClassifierConfig(LMMConfig(dim=32, depth=2, memory=MEMORY, bidirectional=True))
    )
    model.eval()
    sequences = _split("gue/prom/prom_core_tata", "test")["sequence"].head(4).tolist()
    sequences[1] = sequences[1][:50]  # a shorter one, so the batch is padded
    ids, mask = _batch(sequences)
    rc_ids = reverse_complement_ids(ids, NucleotideTokenizer(), mask)
    probs, rc_probs = model.predict_proba(ids, mask), model.predict_proba(rc_ids, mask)
    torch.testing.assert_close(probs, rc_probs, rtol=1e-5, atol=1e-6)
    # Not trivially symmetric: one strand alone gives different logits.
    with torch.no_grad():
        assert not torch.allclose(model(ids, mask), model(rc_ids, mask))
    again = reverse_complement_ids(rc_ids, NucleotideTokenizer(), mask)
    torch.testing.assert_close(again, ids, rtol=0, atol=0)


def test_tiny_training_on_a_real_gue_task_beats_chance():
    """prom_core_tata (TATA core promoters, 70 bp, balanced classes, chance 0.5): a small
    bidirectional LMM trained for ~15 s (5 epochs over 1,024 training sequences, RC
    augmentation on) reaches test accuracy >= 0.62, a margin of 0.12 over chance (measured
    0.695 at this seed; lr 5e-3)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    train = _split("gue/prom/prom_core_tata", "train").sample(n=1024, random_state=0)
    test = _split("gue/prom/prom_core_tata", "test")
    model = DNAClassifier(
        ClassifierConfig(LMMConfig(dim=32, depth=1, memory=MEMORY, bidirectional=True))
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    ids, mask = _batch(train["sequence"].tolist())
    labels = torch.tensor(train["label"].to_numpy())
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(5):
            order = torch.randperm(len(labels), generator=gen)
            for batch in order.split(32):
                x = random_strands(ids[batch], mask[batch], gen)
                loss = torch.nn.functional.cross_entropy(model(x, mask[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        test_ids, test_mask = _batch(test["sequence"].tolist())
        probs = model.predict_proba(test_ids, test_mask).numpy()
    finally:
        torch.set_num_threads(threads)
    accuracy = classification_metrics(test["label"].to_numpy(), probs)["accuracy"]
    print(f"prom_core_tata test accuracy {accuracy:.3f} in {time.perf_counter() - start:.1f} s")
    assert accuracy >= 0.62
    assert np.isfinite(probs).all()


@pytest.mark.parametrize("name", ["gue/prom/prom_core_tata"])
def test_classifier_rejects_bad_ids(name: str):
    model = DNAClassifier(ClassifierConfig(LMMConfig(dim=32, depth=1, memory=MEMORY)))
    ids, mask = _batch(_split(name, "test")["sequence"].head(2).tolist())
    with pytest.raises(ValueError, match="mask is"):
        model(ids, mask[:, :-1])


@pytest.mark.parametrize("stem_kernel", [0, 9])
def test_padding_never_changes_a_prediction(stem_kernel: int):
    """With and without the convolutional stem: a right-padded sequence gets the logits it
    gets alone (so a prediction does not depend on the batch it is in), and with left padding
    the padded ids, whatever they are, never reach the logits."""
    torch.manual_seed(0)
    model = DNAClassifier(
        ClassifierConfig(
            LMMConfig(dim=32, depth=1, memory=MEMORY, bidirectional=True), stem_kernel=stem_kernel
        )
    ).eval()
    sequence = _split("gue/prom/prom_core_tata", "test")["sequence"].iloc[0][:40]
    ids, _ = _batch([sequence])
    pad = torch.randint(0, 5, (1, 7))  # real-base ids at padded positions: must be ignored
    right = torch.cat([ids, pad], 1)
    right_mask = torch.arange(47)[None] < 40
    torch.testing.assert_close(model(right, right_mask), model(ids), rtol=1e-4, atol=1e-5)
    left_mask = torch.arange(47)[None] >= 7
    left, other = torch.cat([pad, ids], 1), torch.cat([torch.randint(0, 5, (1, 7)), ids], 1)
    torch.testing.assert_close(model(left, left_mask), model(other, left_mask))


def test_classifier_rejects_a_bad_stem_or_pool():
    config = LMMConfig(dim=32, depth=1, memory=MEMORY)
    with pytest.raises(ValueError, match="stem_kernel=4"):
        ClassifierConfig(config, stem_kernel=4)
    with pytest.raises(ValueError, match="stem_kernel=-1"):
        ClassifierConfig(config, stem_kernel=-1)
    with pytest.raises(ValueError, match="pool = 'sum': Input should be 'max' or 'mean'"):
        ClassifierConfig.from_dict({"backbone": config.to_dict(), "pool": "sum"})
