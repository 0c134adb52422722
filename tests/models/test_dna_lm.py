"""The masked DNA language model: what gets masked, and handing its trunk to a classifier."""

from __future__ import annotations

import pytest
import torch

from titans_sci.api import init_from_pretrained, load, save_model
from titans_sci.data.dna import read_sequences
from titans_sci.data.tokens import MASK_ID, NucleotideTokenizer, pad_batch
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier
from titans_sci.models.dna_lm import BASE_IDS, DNALMConfig, DNAMaskedLM, mask_bases, masked_loss

BACKBONE = LMMConfig(
    dim=16,
    depth=1,
    bidirectional=True,
    memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=16),
)


def _real_batch(n: int = 32):
    records = read_sequences("datasets/gue/prom/prom_core_tata/test.csv.gz")[:n]
    tokenizer = NucleotideTokenizer()
    sequences = [r.sequence[: 40 + i] for i, r in enumerate(records)]  # ragged: padding
    sequences[0] = sequences[0][:10] + "NNNN" + sequences[0][14:]
    return pad_batch([tokenizer.encode(s) for s in sequences], tokenizer.pad_id)


def test_mask_bases_masks_only_real_acgt_at_the_rate_and_keeps_the_answers():
    ids, mask = _real_batch()
    inputs, targets = mask_bases(ids, mask, 0.15, torch.Generator().manual_seed(0))
    chosen = targets != -100
    assert (inputs[chosen] == MASK_ID).all()
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert mask[chosen].all()  # never padding
    assert torch.equal(torch.tensor(BASE_IDS)[targets[chosen]], ids[chosen])  # never N
    assert chosen.any(dim=1).all()  # at least one per sequence
    rate = chosen.sum() / mask.sum()
    assert 0.11 < float(rate) < 0.19
    again = mask_bases(ids, mask, 0.15, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    with pytest.raises(ValueError, match="mask_rate=1"):
        mask_bases(ids, mask, 1.0, torch.Generator())


def test_the_masked_loss_is_the_cross_entropy_of_the_chosen_bases():
    ids, mask = _real_batch(4)
    torch.manual_seed(0)
    model = DNAMaskedLM(DNALMConfig(BACKBONE))
    inputs, targets = mask_bases(ids, mask, 0.3, torch.Generator().manual_seed(1))
    logits = model(inputs, mask)
    assert logits.shape == (*ids.shape, 4)
    chosen = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[chosen], targets[chosen])
    torch.testing.assert_close(masked_loss(logits, targets), expected)


def test_a_pretrained_trunk_starts_a_classifier_and_the_head_stays_fresh(tmp_path):
    torch.manual_seed(0)
    lm = DNAMaskedLM(DNALMConfig(BACKBONE, stem_kernel=5))
    save_model(tmp_path / "lm", lm, {"pretraining": {"corpus": "test"}})
    torch.manual_seed(1)
    classifier = DNAClassifier(ClassifierConfig(BACKBONE, stem_kernel=5))
    head = {k: v.clone() for k, v in classifier.state_dict().items() if k.startswith("head.")}
    init_from_pretrained(classifier, tmp_path / "lm")
    lm_state = lm.state_dict()
    for key, value in classifier.state_dict().items():
        if key.startswith("head."):
            assert torch.equal(value, head[key])
        else:
            assert torch.equal(value, lm_state[key]), key
    ids, mask = _real_batch(4)
    features = classifier.backbone(classifier._features(ids, mask), mask)[0]
    torch.testing.assert_close(features, lm.backbone(lm._features(ids, mask), mask)[0])


def test_a_trunk_that_does_not_fit_is_refused_with_the_key(tmp_path):
    save_model(tmp_path / "lm", DNAMaskedLM(DNALMConfig(BACKBONE)), {})
    other = DNAClassifier(ClassifierConfig(BACKBONE, stem_kernel=5))
    differs = r"model.json: its trunk differs.*stem_kernel: 9 before, 5"
    with pytest.raises(ValueError, match=differs):
        init_from_pretrained(other, tmp_path / "lm")
    save_model(tmp_path / "clf", other, {})
    with pytest.raises(ValueError, match="not a pretrained DNA language model"):
        init_from_pretrained(other, tmp_path / "clf")
    with pytest.raises(ValueError, match="a pretrained DNA language model, not a predictor"):
        load(tmp_path / "lm")


def test_a_masked_model_needs_a_bidirectional_backbone():
    with pytest.raises(ValueError, match="bidirectional = true"):
        DNALMConfig(LMMConfig(dim=16, memory=BACKBONE.memory))
