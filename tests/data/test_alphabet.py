"""One DNA alphabet (issue 36, items 5 and 6): RNA's ``U`` is ``T`` and case is soft-masking
for every reader, model, baseline and check alike, so a sequence written with ``U`` or in lower
case is the same sequence to the tokenizer, the k-mer baseline and the pretraining corpus'
held-out check."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from titans_sci.data.dna import BASE_CODE, canonical
from titans_sci.data.pretraining import HeldOut, kmers
from titans_sci.data.registry import load_manifest
from titans_sci.data.tokens import NucleotideTokenizer
from titans_sci.models.baselines import KmerLogisticRegression, kmer_features

DNA = st.text(alphabet="ACGTN", min_size=1, max_size=80)


def as_rna(sequence: str, lower: list[bool]) -> str:
    """``sequence`` with ``T`` written ``U`` and the chosen positions in lower case."""
    text = sequence.replace("T", "U")
    lower = lower + [False] * len(text)
    return "".join(c.lower() if low else c for c, low in zip(text, lower, strict=False))


@settings(max_examples=60, deadline=None)
@given(sequence=DNA, lower=st.lists(st.booleans(), max_size=80))
def test_u_and_case_are_read_alike_everywhere(sequence, lower):
    rna = as_rna(sequence, lower)
    assert canonical(rna) == sequence
    tokenizer = NucleotideTokenizer()
    assert tokenizer.encode(rna) == tokenizer.encode(sequence)
    assert (BASE_CODE[np.frombuffer(rna.encode(), np.uint8)]
            == BASE_CODE[np.frombuffer(sequence.encode(), np.uint8)]).all()  # fmt: skip
    np.testing.assert_array_equal(kmer_features([rna], 3), kmer_features([sequence], 3))
    for k in (4, 32):
        ours, theirs = kmers([rna], k), kmers([sequence], k)
        np.testing.assert_array_equal(ours[0], theirs[0])


def test_bundled_test_sequences_written_with_u_are_all_held_out():
    """Item 5: 40 bundled prom_core_tata test sequences, written with ``U``, are each caught by
    the held-out check of the same sequences written with ``T`` (and the other way round)."""
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["test"].file).head(40)
    dna = frame["sequence"].tolist()
    rna = [s.replace("T", "U") for s in dna]
    assert HeldOut.of(dna).touches(rna).all()
    assert HeldOut.of(rna).touches(dna).all()
    assert HeldOut.of([s[:20] for s in dna]).touches([s[:20] for s in rna]).all()  # short ones


def test_the_kmer_baseline_scores_u_and_t_alike():
    """Item 6: the k-mer baseline fitted on sequences with ``T`` scores the same sequences
    written with ``U`` exactly as it scores them with ``T``."""
    frame = pd.read_csv(load_manifest("gue/prom/prom_core_tata").splits["train"].file).head(200)
    model = KmerLogisticRegression(k=4).fit(frame["sequence"].tolist(), frame["label"].tolist())
    rna = [s.replace("T", "U") for s in frame["sequence"]]
    np.testing.assert_allclose(
        model.predict_proba(rna), model.predict_proba(frame["sequence"].tolist())
    )
