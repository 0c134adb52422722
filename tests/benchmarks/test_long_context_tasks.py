"""The long-context benchmark's generators give the answers they document (known answers from
the generated sequences themselves; the DNA background is the bundled real data); its ramped
gate penalty grows as documented; a run's key names its step budget and its persistent
tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from long_context_tasks import DNAPair, Facts, Passkey  # noqa: E402


@pytest.mark.parametrize("filler", ["random", "repeated"])
def test_passkey_label_is_the_digit_after_the_key(filler: str):
    task = Passkey(filler)
    ids, labels = task.batch(64, 300, torch.Generator().manual_seed(0))
    key, query = task.num_filler + 10, task.num_filler + 11
    assert (ids[:, -1] == query).all() and ((ids == key).sum(1) == 1).all()
    after = ids[torch.arange(64), (ids == key).int().argmax(1) + 1]
    assert torch.equal(after - task.num_filler, labels)
    assert ((labels >= 0) & (labels < task.classes)).all()


def test_facts_label_is_the_asked_actors_last_place():
    task = Facts()
    ids, labels = task.batch(128, 400, torch.Generator().manual_seed(1))
    actor0, place0 = task.num_filler, task.num_filler + task.actors
    moved = place0 + task.places
    for row, label in zip(ids.tolist(), labels.tolist(), strict=True):
        facts = [(row[i - 1], row[i + 1]) for i, t in enumerate(row[:-2]) if t == moved]
        assert len(facts) == task.facts
        asked = row[-1]
        assert row[-2] == moved + 1 and actor0 <= asked < place0
        places = [place for actor, place in facts if actor == asked]
        assert places and places[-1] - place0 == label
    # Distractors are there: other actors' facts in every sequence, and answers vary.
    assert labels.unique().numel() == task.places


def test_dna_pair_plants_both_anchors_and_the_partner_at_the_distance():
    task = DNAPair()
    assert task.background.numel() > 3_000_000  # the bundled enhancer sequences end to end
    m, distance = task.motif_length, 1000
    length = distance + 3 * m + 64
    ids, labels = task.batch(32, length, torch.Generator().manual_seed(2), distance)

    def where(row: torch.Tensor, motif: torch.Tensor) -> list[int]:
        windows = row.unfold(0, m, 1)
        return (windows == motif).all(1).nonzero().flatten().tolist()

    for row, label in zip(ids, labels.tolist(), strict=True):
        anchors = [where(row, a) for a in task.anchors]
        partners = [where(row, p) for p in task.partners]
        assert all(len(found) == 1 for found in anchors), "both anchors, once each"
        partner = next(i for i, found in enumerate(partners) if found)
        assert partners[partner] == [length - 1 - m] and not partners[1 - partner]
        last = max((0, 1), key=lambda i: anchors[i][0])
        assert partners[partner][0] - anchors[last][0] == distance
        assert label == int(last == partner)
    assert 0 < labels.float().mean() < 1


def test_ramped_gate_penalty_grows_with_the_length_cap():
    from bench_long_context import build_parser, penalty_weight

    flags = ["--gate-penalty", "0.2", "--min-length", "32", "--train-length", "4096"]
    ramped = build_parser().parse_args([*flags, "--penalty-ramp"])
    weights = [penalty_weight(ramped, 32 * 2**k) for k in range(8)]
    assert weights[0] == 0.0 and weights[-1] == pytest.approx(0.2)
    assert all(a < b for a, b in zip(weights, weights[1:], strict=False))
    assert penalty_weight(ramped, 8192) == pytest.approx(0.2)  # never past its weight
    fixed = build_parser().parse_args(flags)
    assert {penalty_weight(fixed, 32 * 2**k) for k in range(8)} == {0.2}


def test_runs_of_another_step_budget_are_another_row():
    from bench_long_context import build_parser, key

    short, long = (build_parser().parse_args(["--steps", n]) for n in ("700", "4000"))
    assert key(short) != key(long)
    assert key(short).split("|")[0] == key(long).split("|")[0]  # the same task


def test_persistent_tokens_reach_the_memory_and_name_the_row():
    from bench_long_context import build_parser, key, titans_body

    plain, persistent = (
        build_parser().parse_args(["--dim", "16", *flags]) for flags in ([], ["--persistent", "16"])
    )

    def count(body: torch.nn.Module) -> int:
        return sum(p.numel() for p in body.parameters())

    assert count(titans_body(persistent)) - count(titans_body(plain)) == 2 * 16 * 16  # 2 layers
    assert key(plain) != key(persistent) and "16 persistent tokens" in key(persistent)
