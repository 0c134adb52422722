"""Gene-structure decoding: the label track that is a valid gene structure and that the
annotator's per-base probabilities like best.

A per-base argmax cuts a gene wherever one base's label wavers, and its ends fall a few bases
from the start and stop codons, so almost no predicted CDS matches one of the annotation exactly
(measured on chromosome 9 with a trained annotator: 0 of 215). Gene finders decode instead: AUGUSTUS
with its own hidden Markov model, Tiberius (Gabriel et al. 2024) with an HMM layer over its
network. :func:`viterbi` does the same over the annotator's logits: a Viterbi pass through a
small hidden Markov model whose states carry each coding base's codon position, with the
network's log-probability of a state's label as its emission and no transition costs, so the
network's probabilities decide alone and the model only forbids what no gene does.

A CDS on the + strand, read left to right (the base codes of
:data:`~titans_sci.data.dna.BASE_CODE`), in this model:

- starts with ``ATG`` and ends with a stop codon (``TAA``, ``TAG``, ``TGA``), neither split by
  an intron, and has a length (introns left out) that is a multiple of 3;
- has no other stop codon in frame (a codon split by an intron is not checked: that would take
  a state per base held across the intron);
- has introns that start with ``GT`` and end with ``AG``.

A CDS on the - strand is the reverse complement of one: it reads, left to right, a reverse
stop codon (``TTA``, ``CTA``, ``TCA``) first and ``CAT`` last, and its introns ``CT ... AC``.
So the model maps to itself under the reverse complement with the two strands' labels swapped
(tested). Genes are apart: a CDS starts and ends beside an intergenic base, and an RNA gene lies
between intergenic bases too. The track may start and end in any state (a chromosome cut short).

The pass holds the scores of the 29 states; its back-pointers take a byte per state per base,
in an array the caller may give (a ``numpy.memmap`` keeps memory flat in the chromosome's
length). It runs compiled by numba, at about a second a megabase.
"""

from __future__ import annotations

import numba
import numpy as np

from titans_sci.data.annotation import CDS_MINUS, CDS_PLUS, INTERGENIC, INTRON, LABELS, RNA_GENE

# The conditions on the bases around position i under which a transition into i may be taken.
ALWAYS = 0
START_AT = 1  # ATG at i..i+2
STOP_BEFORE = 2  # a stop codon at i-3..i-1
NO_STOP_BEFORE = 3
DONOR_AT = 4  # GT at i..i+1
ACCEPTOR_BEFORE = 5  # AG at i-2..i-1
REVERSE_STOP_AT = 6  # TTA, CTA or TCA at i..i+2
CAT_BEFORE = 7  # CAT at i-3..i-1
NO_REVERSE_STOP_BEFORE = 8
REVERSE_DONOR_AT = 9  # CT at i..i+1
REVERSE_ACCEPTOR_BEFORE = 10  # AC at i-2..i-1
DONOR_AT_NO_STOP_BEFORE = 11  # an intron after a whole codon: GT at i..i+1, no stop before
REVERSE_DONOR_AT_NO_STOP_BEFORE = 12

#: The states, by name, with the label each emits. ``+0``, ``+1``, ``+2``: a coding base at that
#: position of its codon; ``s``: the codon was split by an intron; ``+start``: the first
#: codon's; ``+intron k``: the next coding base is at position k (``^``: the intron's first
#: base, so that the splice sites' two-base motifs lie inside the intron). On the - strand,
#: ``-stop`` is the leftmost codon's (the stop codon's reverse complement) and positions count
#: left to right, as the bases are read.
STATES: dict[str, int] = {
    "intergenic": INTERGENIC,
    "RNA": RNA_GENE,
    **{f"+{name}": CDS_PLUS for name in ("start0", "start1", "0", "1", "1s", "2", "2s")},
    **{f"+intron{k}{first}": INTRON for k in range(3) for first in ("^", "")},
    **{f"-{name}": CDS_MINUS for name in ("stop0", "stop1", "stop2", "0", "1", "1s", "2", "2s")},
    **{f"-intron{k}{first}": INTRON for k in range(3) for first in ("^", "")},
}


def _edges() -> list[tuple[str, str, int]]:
    """Every allowed transition ``(from, to, condition at the base entered)``."""
    edges = [
        ("intergenic", "intergenic", ALWAYS),
        ("intergenic", "RNA", ALWAYS),
        ("RNA", "RNA", ALWAYS),
        ("RNA", "intergenic", ALWAYS),
    ]
    coding = {"0": 0, "1": 1, "1s": 1, "2": 2, "2s": 2}  # each coding state's codon position
    after_intron = {0: "0", 1: "1s", 2: "2s"}
    for sign, donor, donor_after_codon, acceptor in (
        ("+", DONOR_AT, DONOR_AT_NO_STOP_BEFORE, ACCEPTOR_BEFORE),
        ("-", REVERSE_DONOR_AT, REVERSE_DONOR_AT_NO_STOP_BEFORE, REVERSE_ACCEPTOR_BEFORE),
    ):
        edges += [
            (f"{sign}0", f"{sign}1", ALWAYS),
            (f"{sign}1", f"{sign}2", ALWAYS),
            (f"{sign}1s", f"{sign}2s", ALWAYS),
            (f"{sign}2s", f"{sign}0", ALWAYS),
        ]
        for state, position in coding.items():
            # a whole codon just read is checked for a stop as when the next codon follows
            condition = donor_after_codon if state == "2" else donor
            edges.append((f"{sign}{state}", f"{sign}intron{(position + 1) % 3}^", condition))
        for k in range(3):
            edges.append((f"{sign}intron{k}^", f"{sign}intron{k}", ALWAYS))
            edges.append((f"{sign}intron{k}", f"{sign}intron{k}", ALWAYS))
            edges.append((f"{sign}intron{k}", f"{sign}{after_intron[k]}", acceptor))
    edges += [
        # + strand: ATG (unsplit), codons without a stop in frame, a stop codon (unsplit)
        ("intergenic", "+start0", START_AT),
        ("+start0", "+start1", ALWAYS),
        ("+start1", "+2", ALWAYS),
        ("+2", "+0", NO_STOP_BEFORE),
        ("+2", "intergenic", STOP_BEFORE),
        # - strand, left to right: a reverse stop codon (unsplit, then an intron may follow),
        # codons without a reverse stop in frame, CAT (unsplit)
        ("intergenic", "-stop0", REVERSE_STOP_AT),
        ("-stop0", "-stop1", ALWAYS),
        ("-stop1", "-stop2", ALWAYS),
        ("-stop2", "-0", ALWAYS),
        ("-stop2", "-intron0^", REVERSE_DONOR_AT),
        ("-2", "-0", NO_REVERSE_STOP_BEFORE),
        ("-2", "intergenic", CAT_BEFORE),
    ]
    return edges


EDGES = _edges()
_INDEX = {name: i for i, name in enumerate(STATES)}
_SOURCE = np.array([_INDEX[a] for a, _, _ in EDGES], dtype=np.int64)
_TARGET = np.array([_INDEX[b] for _, b, _ in EDGES], dtype=np.int64)
_CONDITION = np.array([c for _, _, c in EDGES], dtype=np.int64)
_LABEL = np.array(list(STATES.values()), dtype=np.int64)
assert len(STATES) < 256  # back-pointers are bytes


@numba.njit(cache=True)
def _codon(codes: np.ndarray, i: int, a: int, b: int, c: int) -> bool:
    """Whether bases ``i..i+2`` exist and are ``a b c``."""
    return (
        i >= 0 and i + 2 < len(codes) and codes[i] == a and codes[i + 1] == b and codes[i + 2] == c
    )


@numba.njit(cache=True)
def _pair(codes: np.ndarray, i: int, a: int, b: int) -> bool:
    return i >= 0 and i + 1 < len(codes) and codes[i] == a and codes[i + 1] == b


@numba.njit(cache=True)
def _stop(codes: np.ndarray, i: int) -> bool:
    """TAA, TAG or TGA at ``i..i+2`` (A 0, C 1, G 2, T 3)."""
    return _codon(codes, i, 3, 0, 0) or _codon(codes, i, 3, 0, 2) or _codon(codes, i, 3, 2, 0)


@numba.njit(cache=True)
def _reverse_stop(codes: np.ndarray, i: int) -> bool:
    """TTA, CTA or TCA at ``i..i+2``."""
    return _codon(codes, i, 3, 3, 0) or _codon(codes, i, 1, 3, 0) or _codon(codes, i, 3, 1, 0)


@numba.njit(cache=True)
def _holds(condition: int, codes: np.ndarray, i: int) -> bool:
    if condition == ALWAYS:
        return True
    if condition == START_AT:
        return _codon(codes, i, 0, 3, 2)
    if condition == STOP_BEFORE:
        return _stop(codes, i - 3)
    if condition == NO_STOP_BEFORE:
        return not _stop(codes, i - 3)
    if condition == DONOR_AT:
        return _pair(codes, i, 2, 3)
    if condition == ACCEPTOR_BEFORE:
        return _pair(codes, i - 2, 0, 2)
    if condition == REVERSE_STOP_AT:
        return _reverse_stop(codes, i)
    if condition == CAT_BEFORE:
        return _codon(codes, i - 3, 1, 0, 3)
    if condition == NO_REVERSE_STOP_BEFORE:
        return not _reverse_stop(codes, i - 3)
    if condition == REVERSE_DONOR_AT:
        return _pair(codes, i, 1, 3)
    if condition == REVERSE_ACCEPTOR_BEFORE:
        return _pair(codes, i - 2, 0, 1)
    if condition == DONOR_AT_NO_STOP_BEFORE:
        return _pair(codes, i, 2, 3) and not _stop(codes, i - 3)
    return _pair(codes, i, 1, 3) and not _reverse_stop(codes, i - 3)


@numba.njit(cache=True)
def _log_softmax(row: np.ndarray, out: np.ndarray) -> None:
    top = row[0]
    for k in range(1, len(row)):
        top = max(top, row[k])
    total = 0.0
    for k in range(len(row)):
        total += np.exp(row[k] - top)
    shift = top + np.log(total)
    for k in range(len(row)):
        out[k] = row[k] - shift


@numba.njit(cache=True)
def _viterbi(
    logits: np.ndarray, codes: np.ndarray, source: np.ndarray, target: np.ndarray,
    condition: np.ndarray, label: np.ndarray, back: np.ndarray, out: np.ndarray,
) -> float:  # fmt: skip
    length, states = len(codes), len(label)
    score = np.empty(states)
    best = np.empty(states)
    emit = np.empty(logits.shape[1])
    _log_softmax(logits[0], emit)
    for s in range(states):
        score[s] = emit[label[s]]
    for i in range(1, length):
        _log_softmax(logits[i], emit)
        best[:] = -np.inf
        for e in range(len(source)):
            if score[source[e]] > best[target[e]] and _holds(condition[e], codes, i):
                best[target[e]] = score[source[e]]
                back[i, target[e]] = source[e]
        for s in range(states):
            score[s] = best[s] + emit[label[s]]
    state = 0
    for s in range(1, states):
        if score[s] > score[state]:
            state = s
    total = score[state]
    for i in range(length - 1, -1, -1):
        out[i] = label[state]
        state = back[i, state]
    return total


def viterbi(
    logits: np.ndarray,
    codes: np.ndarray,
    back: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The label track ``[L]`` (uint8, :data:`~titans_sci.data.annotation.LABELS`) of the
    valid gene structure whose labels' log-probabilities add up highest, and that sum.

    ``logits``: ``[L, K]`` (any float; log-softmaxed here per base), ``K = len(LABELS)``;
    ``codes``: ``[L]`` base codes (uint8, A C G T N as 0..4); ``back``: ``[L, len(STATES)]``
    uint8 for the back-pointers (a new array if ``None``); ``out``: ``[L]`` uint8 for the
    labels. Each may be a ``numpy.memmap``."""
    length = len(codes)
    if logits.shape != (length, len(LABELS)):
        raise ValueError(f"logits have shape {logits.shape}; expected {(length, len(LABELS))}")
    back = np.zeros((length, len(STATES)), dtype=np.uint8) if back is None else back
    out = np.empty(length, dtype=np.uint8) if out is None else out
    if back.shape != (length, len(STATES)) or out.shape != (length,):
        raise ValueError(f"back or out is not of shape {(length, len(STATES))} or {(length,)}")
    if length == 0:
        return out, 0.0
    total = _viterbi(logits, np.asarray(codes, dtype=np.uint8), _SOURCE, _TARGET, _CONDITION,
                     _LABEL, back, out)  # fmt: skip
    return out, float(total)


def decode_labels(logits: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The labels ``[L]`` of :func:`viterbi`: a chromosome's genes read from its logits."""
    return viterbi(logits, codes)[0]
