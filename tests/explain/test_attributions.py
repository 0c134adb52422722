"""Attributions on real promoters (GUE prom_core_tata) and real yeast sequence: ISM is the
brute-force loop over single mutations, batched (for a classifier and a genome annotator); a
linear model's gradients are its weights (both strands averaged, and one strand alone) and its
ISM their differences, and its integrated gradients each base's weight less the mean of the
four; integrated gradients add up to the score's change from the baseline (completeness), in
any batching; attributions of the reverse complement are the mirror image (an annotator's with
its strand labels swapped); explain writes a CSV row per base and a logo per record."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from titans_sci.data.annotation import CDS_MINUS, CDS_PLUS, read_genbank
from titans_sci.data.dna import read_sequences
from titans_sci.data.tokens import NucleotideTokenizer, reverse_complement_ids
from titans_sci.explain import (
    BASES,
    DNAModel,
    annotator_view,
    baseline_scores,
    classifier_view,
    gradient_x_input,
    gradients,
    integrated_gradients,
    ism_track,
    saturation_mutagenesis,
)
from titans_sci.explain.files import ATTRIBUTION_COLUMNS, explain_records
from titans_sci.layers.embedding import DNAEmbedding
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier
from titans_sci.models.genome_annotator import AnnotatorConfig, GenomeAnnotator

TOKENS = NucleotideTokenizer()
DATA = "datasets/gue/prom/prom_core_tata/test.csv.gz"


@pytest.fixture(scope="module")
def promoters():
    return read_sequences(DATA)[:4]


def classifier() -> DNAClassifier:
    torch.manual_seed(0)
    backbone = LMMConfig(dim=16, depth=1, bidirectional=True,
                         memory=MemoryConfig.preset("titans", num_heads=2, head_dim=8,
                                                    chunk_size=8))  # fmt: skip
    return DNAClassifier(ClassifierConfig(backbone=backbone, num_classes=3)).double().eval()


class LinearDNA(nn.Module):
    """``logits_k = sum_t W[t, base_t, k] + b_k``: the embedding is the one-hot of ACGT."""

    def __init__(self, length: int, classes: int = 2) -> None:
        super().__init__()
        self.embedding = DNAEmbedding(TOKENS.vocab_size, 4, TOKENS.pad_id)
        with torch.no_grad():
            self.embedding.tokens.weight.zero_()
            for j, base in enumerate(BASES):
                self.embedding.tokens.weight[TOKENS.encode(base)[0], j] = 1.0
        self.weight = nn.Parameter(torch.randn(length, 4, classes, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(classes, dtype=torch.float64))
        self.double()

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.embedding(ids)
        return torch.einsum("btj,tjk->bk", x, self.weight) + self.bias


def ids_of(sequence: str) -> Tensor:
    return torch.tensor(TOKENS.encode(sequence))


def annotator() -> GenomeAnnotator:
    torch.manual_seed(0)
    backbone = LMMConfig(dim=16, depth=1, memory=MemoryConfig(num_heads=2, head_dim=8,
                                                              chunk_size=4))  # fmt: skip
    config = AnnotatorConfig(backbone=backbone, patch=4, window=8, conv_kernel=3, stem_kernel=5,
                             refine_kernel=3)  # fmt: skip
    model = GenomeAnnotator(config).double().eval()
    with torch.no_grad():  # the memory's branch starts at zero; give it weight so it shows
        model.from_token.weight.normal_(std=0.1)
    return model


@pytest.fixture(scope="module")
def yeast() -> str:
    """103 bases of yeast chromosome I, where its first gene starts (odd: a partial patch)."""
    [record] = read_genbank("datasets/genomes/s_cerevisiae_s288c/chr01.gb.gz")
    return record.sequence[1800:1903]


def test_ism_is_the_brute_force_loop_over_single_mutations(promoters):
    model = classifier_view(classifier())
    for record in promoters[:1]:
        ids = ids_of(record.sequence)
        ism = saturation_mutagenesis(model, ids, batch_size=37)
        reference = model.score(ids[None])[0]
        for t in range(len(ids)):
            for j, base in enumerate(BASES):
                mutant = ids.clone()
                mutant[t] = TOKENS.encode(base)[0]
                expected = model.score(mutant[None])[0] - reference
                torch.testing.assert_close(ism[t, j], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("both", [True, False])
def test_a_linear_models_gradients_are_its_weights_and_its_ism_their_differences(promoters, both):
    record = promoters[0]
    ids = ids_of(record.sequence)
    torch.manual_seed(1)
    model = LinearDNA(len(ids))
    weight = model.weight.detach()
    if both:  # the reverse strand reads W at the mirrored position and complemented base
        weight = (weight + weight.flip(0).flip(1)) / 2
    expected = weight - weight.mean(dim=-1, keepdim=True)  # centred over the classes
    view = classifier_view(model, both=both)
    gradient = gradients(view, ids)
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-12)
    base = torch.tensor([BASES.index(b) for b in record.sequence.upper()])
    torch.testing.assert_close(gradient_x_input(gradient, ids, view.alphabet),
                               expected[torch.arange(len(ids)), base])  # fmt: skip
    ism = saturation_mutagenesis(view, ids)
    at_reference = expected[torch.arange(len(ids)), base][:, None]
    torch.testing.assert_close(ism, expected - at_reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(ism_track(ism, ids, view.alphabet),
                               -(ism.sum(dim=1) / 3))  # fmt: skip
    # the baseline is the one-hot's uniform mix: the base's weight less the mean of the four
    expected_ig = at_reference[:, 0] - expected.mean(dim=1)
    torch.testing.assert_close(integrated_gradients(view, ids, steps=3), expected_ig,
                               rtol=0, atol=1e-12)  # fmt: skip


def baseline_score(model: DNAModel, ids: Tensor) -> Tensor:
    """``s(baseline) [K]``: the score with every ``ACGT`` embedding replaced by the mean of
    the four (the baseline of integrated gradients), by a hook of the test's own."""
    table = model.embedding.weight.detach()
    alphabet = model.alphabet

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        bases = torch.isin(inputs[0], alphabet)[..., None]
        return torch.where(bases, table[alphabet].mean(dim=0), output)

    handle = model.embedding.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model.score(ids[None])[0]
    finally:
        handle.remove()


def test_integrated_gradients_add_up_to_the_change_from_the_baseline(yeast):
    """On the annotator, whose score is smooth along the path. (The tiny untrained
    classifiers' are not: their memories' random gates make the score jump along it, total
    variation ~100x its net change, and no midpoint rule converges there.)"""
    view = annotator_view(annotator())
    ids = view.encode(yeast)
    with torch.no_grad():
        change = view.score(ids[None])[0] - baseline_score(view, ids)  # [K]
    # the library's baseline is this test's own (a hook written here)
    torch.testing.assert_close(baseline_scores(view, ids), baseline_score(view, ids),
                               rtol=0, atol=1e-12)  # fmt: skip
    coarse = integrated_gradients(view, ids, steps=64, batch_size=64)
    fine = integrated_gradients(view, ids, steps=512, batch_size=100)  # 6 passes, one partial
    assert coarse.shape == (len(ids), len(change))
    # the midpoint rule's error falls as 1/steps^2: 8x the steps, ~64x closer
    coarse_gap = (coarse.sum(dim=0) - change).abs().max()
    fine_gap = (fine.sum(dim=0) - change).abs().max()
    assert fine_gap < 1e-4 * change.abs().max() and fine_gap < coarse_gap / 20
    # batching changes nothing
    torch.testing.assert_close(integrated_gradients(view, ids, steps=64, batch_size=7), coarse,
                               rtol=1e-9, atol=1e-12)  # fmt: skip


def test_attributions_of_the_reverse_complement_are_the_mirror_image(promoters):
    model = classifier_view(classifier())
    ids = ids_of(promoters[1].sequence)
    other = reverse_complement_ids(ids[None], TOKENS)[0]
    # position t, base j of the sequence is position T-1-t, base 3-j of its reverse complement
    torch.testing.assert_close(saturation_mutagenesis(model, other),
                               saturation_mutagenesis(model, ids).flip(0).flip(1),
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    torch.testing.assert_close(gradients(model, other), gradients(model, ids).flip(0).flip(1),
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    torch.testing.assert_close(integrated_gradients(model, other, steps=8),
                               integrated_gradients(model, ids, steps=8).flip(0),
                               rtol=1e-9, atol=1e-12)  # fmt: skip


def test_an_annotators_ism_is_the_brute_force_loop_and_its_strands_mirror(yeast):
    """The per-base annotator's score of a label is its mean centred logit over the bases;
    on the reverse complement, CDS+ and CDS- swap."""
    model = annotator_view(annotator())
    ids = model.encode(yeast)
    ism = saturation_mutagenesis(model, ids, batch_size=50)
    reference = model.score(ids[None])[0]
    for t in (0, 51, 102):
        for j in range(4):
            mutant = ids.clone()
            mutant[t] = j
            expected = model.score(mutant[None])[0] - reference
            torch.testing.assert_close(ism[t, j], expected, rtol=0, atol=1e-12)
    other = model.encode(yeast[::-1].translate(str.maketrans("ACGT", "TGCA")))
    swap = [0, CDS_MINUS, CDS_PLUS, 3, 4]
    mirrored = gradients(model, ids).flip(0).flip(1)[..., swap]
    torch.testing.assert_close(gradients(model, other), mirrored, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(saturation_mutagenesis(model, other),
                               ism.flip(0).flip(1)[..., swap], rtol=1e-8, atol=1e-12)  # fmt: skip


def test_explain_writes_a_row_per_base_and_a_logo_per_record(promoters, tmp_path):
    import csv

    model = classifier_view(classifier().float())
    path = explain_records(model, promoters[:2], tmp_path, 2, "class 2", progress=False)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ATTRIBUTION_COLUMNS
    assert len(rows) == sum(len(r.sequence) for r in promoters[:2])
    assert [r["position"] for r in rows[:3]] == ["1", "2", "3"]
    assert rows[0]["base"] == promoters[0].sequence[0].upper()
    logos = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(logos) == 2 and all((tmp_path / n).stat().st_size > 1000 for n in logos)
