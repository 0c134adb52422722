"""The three long-context tasks of ``bench_long_context.py``, as seeded generators.

Every generator takes ``(batch, length, generator)`` and returns ``ids [batch, length]`` (int64
token ids) and ``labels [batch]``; the answer is read at the last position. Each task also names
its vocabulary size and chance level.

* :class:`Passkey`: a needle in a haystack. Filler tokens hide ``KEY`` followed by a digit at a
  uniformly random depth; the sequence ends with ``QUERY``; the label is the digit (chance 0.1).
  ``filler="random"``: every filler token uniform; ``"repeated"``: the filler tokens in a fixed
  cycle from a random phase (the usual "the grass is green..." haystack).
* :class:`Facts`: BABILong-style single supporting fact. Facts ``ACTOR MOVED PLACE`` about 8 actors
  and 8 places are scattered through random filler; the sequence ends with ``WHERE ACTOR``; the
  label is the place of the last fact about the asked actor (chance 1/8). The other facts are
  distractors: other actors, and the asked actor's own earlier moves.
* :class:`DNAPair`: a long-range motif pair in real DNA. Two anchor motifs and two partner motifs
  (12-mers absent from the background) are planted in windows of the bundled human enhancer
  sequences read end to end: both anchors always occur, the partner ends the window and the
  *last* anchor before it sits ``distance`` bases earlier; the label is whether that anchor is
  the partner's own (chance 0.5). Presence alone says nothing (both anchors are always there),
  so a model must remember which anchor came last: a CNN or a window that does not reach back
  ``distance`` bases is at chance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from titans_sci.data.dna import read_sequences

REPO = Path(__file__).resolve().parents[1]
BACKGROUND = REPO / "datasets/genomic_benchmarks/human_enhancers_cohn/test.csv.gz"


@dataclass(frozen=True)
class Passkey:
    filler: str = "random"  # or "repeated"
    num_filler: int = 16

    @property
    def name(self) -> str:
        return f"passkey_{self.filler}"

    @property
    def vocab(self) -> int:
        return self.num_filler + 10 + 2

    @property
    def classes(self) -> int:
        return 10

    @property
    def chance(self) -> float:
        return 0.1

    def batch(self, batch: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        key, query = self.num_filler + 10, self.num_filler + 11
        if self.filler == "random":
            ids = torch.randint(0, self.num_filler, (batch, length), generator=gen)
        else:
            phase = torch.randint(0, self.num_filler, (batch, 1), generator=gen)
            ids = (phase + torch.arange(length)) % self.num_filler
        digits = torch.randint(0, 10, (batch,), generator=gen)
        depth = torch.randint(0, length - 3, (batch,), generator=gen)
        rows = torch.arange(batch)
        ids[rows, depth] = key
        ids[rows, depth + 1] = self.num_filler + digits
        ids[:, -1] = query
        return ids, digits


@dataclass(frozen=True)
class Facts:
    num_filler: int = 16
    actors: int = 8
    places: int = 8
    facts: int = 6

    name = "facts"

    @property
    def vocab(self) -> int:
        return self.num_filler + self.actors + self.places + 2

    @property
    def classes(self) -> int:
        return self.places

    @property
    def chance(self) -> float:
        return 1 / self.places

    def batch(self, batch: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        actor0 = self.num_filler
        place0 = actor0 + self.actors
        moved, where = place0 + self.places, place0 + self.places + 1
        room = length - 2  # the question takes the last two tokens
        if room < 3 * self.facts:
            raise ValueError(f"facts: length {length} leaves no room for {self.facts} facts")
        ids = torch.randint(0, self.num_filler, (batch, length), generator=gen)
        # Fact starts: sorted, at least 3 apart, uniform over the room (stars and bars).
        gaps = torch.rand(batch, self.facts + 1, generator=gen)
        free = room - 3 * self.facts
        slack = (gaps / gaps.sum(1, keepdim=True) * free).floor().long().cumsum(1)[:, :-1]
        starts = slack + 3 * torch.arange(self.facts)
        actors = torch.randint(0, self.actors, (batch, self.facts), generator=gen)
        places = torch.randint(0, self.places, (batch, self.facts), generator=gen)
        rows = torch.arange(batch)[:, None]
        ids[rows, starts] = actor0 + actors
        ids[rows, starts + 1] = moved
        ids[rows, starts + 2] = place0 + places
        # Ask about the actor of a uniformly chosen fact; the answer is that actor's last move.
        asked = actors[torch.arange(batch), torch.randint(0, self.facts, (batch,), generator=gen)]
        last = torch.where(actors == asked[:, None], torch.arange(self.facts), -1).amax(1)
        ids[:, -2] = where
        ids[:, -1] = actor0 + asked
        return ids, places[torch.arange(batch), last]


def background_bases(path: Path = BACKGROUND) -> str:
    """The sequences of a bundled DNA file end to end, as read (uppercase here)."""
    return "".join(record.sequence for record in read_sequences(path))


def base_ids(bases: str) -> Tensor:
    """Base ids ``[N]`` of ``bases`` (A, C, G, T = 0..3; any other letter is 4)."""
    table = torch.full((256,), 4, dtype=torch.uint8)
    for i, base in enumerate(b"ACGT"):
        table[base] = i
    return table[torch.frombuffer(bytearray(bases.encode()), dtype=torch.uint8).long()].long()


class DNAPair:
    """See the module docstring; ``distance=None`` draws it per sequence (training)."""

    name = "dna_pair"
    vocab = 5
    classes = 2
    chance = 0.5
    motif_length = 12

    def __init__(self, bases: str | None = None, seed: int = 2026) -> None:
        text = background_bases() if bases is None else bases
        self.background = base_ids(text)
        gen = torch.Generator().manual_seed(seed)
        motifs: list[Tensor] = []
        while len(motifs) < 4:  # anchors 0, 1; partners 0, 1; none occurs in the background
            motif = torch.randint(0, 4, (self.motif_length,), generator=gen)
            word = "".join("ACGT"[i] for i in motif.tolist())
            if word not in text and all(not torch.equal(motif, m) for m in motifs):
                motifs.append(motif)
        self.anchors, self.partners = motifs[:2], motifs[2:]

    def batch(
        self, batch: int, length: int, gen: torch.Generator, distance: int | None = None
    ) -> tuple[Tensor, Tensor]:
        m = self.motif_length
        if length > self.background.numel():
            raise ValueError(f"dna_pair: length {length} > {self.background.numel()} bases")
        starts = torch.randint(0, self.background.numel() - length + 1, (batch,), generator=gen)
        ids = torch.stack([self.background[s : s + length] for s in starts.tolist()])
        labels = torch.randint(0, 2, (batch,), generator=gen)
        last = torch.randint(0, 2, (batch,), generator=gen)
        partner = torch.where(labels == 1, last, 1 - last)
        for row in range(batch):
            partner_at = length - 1 - m  # the partner ends one base before the read position
            if distance is None:  # training: any distance that leaves room for the decoy
                d = int(torch.randint(m, partner_at - 2 * m + 1, (1,), generator=gen))
            else:
                d = distance
            anchor_at = partner_at - d
            if anchor_at < m:
                raise ValueError(f"dna_pair: distance {d} does not fit in length {length}")
            decoy_at = int(torch.randint(0, anchor_at - m + 1, (1,), generator=gen))
            ids[row, decoy_at : decoy_at + m] = self.anchors[1 - int(last[row])]
            ids[row, anchor_at : anchor_at + m] = self.anchors[int(last[row])]
            ids[row, partner_at : partner_at + m] = self.partners[int(partner[row])]
        return ids, labels
