"""Multi-query associative recall (MQAR): a synthetic task that a sequence model can solve only
by recalling, later in a sequence, what was bound earlier in it, and the small model that
learns it with any backbone. The backbone tests (``tests/models/test_backbone_learning.py``)
and ``benchmarks/bench_mac_forms.py`` train on it.

Each sequence binds ``NUM_PAIRS`` distinct keys to random values, ``k1 v1 k2 v2 ... kN vN``,
then asks ``NUM_QUERIES`` of those keys again; the output at each query position must name the
value bound to that key in the same sequence. Values are drawn afresh for every sequence, so
nothing can be memorised across sequences. Chance is ``1 / NUM_VALUES``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import build_backbone
from .config import BackboneConfig

NUM_KEYS = 8  # token ids 0 .. 7
NUM_VALUES = 8  # token ids 8 .. 15
VOCAB = NUM_KEYS + NUM_VALUES
NUM_PAIRS = 4
NUM_QUERIES = 8
SEQ_LEN = 2 * NUM_PAIRS + NUM_QUERIES  # 16
CHANCE = 1 / NUM_VALUES


def mqar_batch(batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``tokens [batch, SEQ_LEN]`` and ``targets [batch, NUM_QUERIES]``: the value bound to
    each query key, to be predicted at the query positions ``2 * NUM_PAIRS ...``."""
    keys = torch.argsort(torch.rand(batch, NUM_KEYS, generator=generator), dim=1)[:, :NUM_PAIRS]
    values = NUM_KEYS + torch.randint(NUM_VALUES, (batch, NUM_PAIRS), generator=generator)
    asked = torch.randint(NUM_PAIRS, (batch, NUM_QUERIES), generator=generator)
    pairs = torch.stack([keys, values], dim=-1).flatten(1)
    tokens = torch.cat([pairs, keys.gather(1, asked)], dim=1)
    return tokens, values.gather(1, asked)


class RecallModel(nn.Module):
    """Token embedding -> backbone -> logits ``[B, NUM_QUERIES, VOCAB]`` at the query
    positions."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, config.dim)
        self.backbone = build_backbone(config)
        self.head = nn.Linear(config.dim, VOCAB)

    def forward(self, tokens: Tensor) -> Tensor:
        h, _ = self.backbone(self.embed(tokens))
        return self.head(h[:, 2 * NUM_PAIRS :])


def recall_accuracy(
    model: RecallModel,
    steps: int,
    data_seed: int,
    batch: int = 32,
    lr: float = 1e-2,
    eval_batch: int = 256,
) -> float:
    """Train ``model`` for ``steps`` AdamW steps on fresh MQAR batches (drawn from
    ``data_seed``), then return its accuracy on ``eval_batch`` held-out sequences (a fixed
    seed, the same for every model)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    train = torch.Generator().manual_seed(data_seed)
    for _ in range(steps):
        tokens, targets = mqar_batch(batch, train)
        loss = F.cross_entropy(model(tokens).reshape(-1, VOCAB), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokens, targets = mqar_batch(eval_batch, torch.Generator().manual_seed(12345))
    with torch.no_grad():
        return (model(tokens).argmax(-1) == targets).float().mean().item()
