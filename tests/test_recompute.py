"""Recomputing the cheap pieces of a block in the backward changes no number, and keeps less."""

from __future__ import annotations

import weakref

import pytest
import torch

import titans_sci.recompute as recompute
from titans_sci.memory import MemoryConfig
from titans_sci.models import LMMConfig, MACConfig, MAGConfig, MALConfig, build_backbone

MEMORY = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
CONFIGS = [
    LMMConfig(dim=16, depth=2, memory=MEMORY, bidirectional=True),
    MAGConfig(dim=16, depth=1, memory=MEMORY, window=8),
    MALConfig(dim=16, depth=1, memory=MEMORY, window=8),
    MACConfig(dim=16, depth=1, memory=MEMORY, segment_len=8),
]


def _outputs_and_grads(model, x, mask):
    h, _ = model(x, mask)
    loss = (h * torch.linspace(-1, 1, h.numel(), dtype=h.dtype).view_as(h)).sum()
    grads = torch.autograd.grad(loss, [x, *model.parameters()])
    return h.detach(), grads


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_recomputation_gives_the_plain_backward(config, monkeypatch):
    torch.manual_seed(0)
    model = build_backbone(config).double()
    x = torch.randn(3, 21, 16, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 21, dtype=torch.bool)
    mask[1, 15:] = False
    h, grads = _outputs_and_grads(model, x, mask)
    monkeypatch.setattr(recompute, "checkpoint", lambda fn, *args, **_: fn(*args))
    h_plain, grads_plain = _outputs_and_grads(model, x, mask)
    torch.testing.assert_close(h, h_plain, rtol=0, atol=0)
    for g, g_plain in zip(grads, grads_plain, strict=True):
        torch.testing.assert_close(g, g_plain, rtol=1e-12, atol=1e-12)


def _kept_bytes(model, x) -> int:
    packed: list[weakref.ref] = []

    def pack(t):
        packed.append(weakref.ref(t))
        return t

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h, _ = model(x)
    storages = {}
    for ref in packed:
        if (t := ref()) is not None and t.untyped_storage().data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    del h
    return sum(storages.values())


def test_recomputation_keeps_less(monkeypatch):
    """With recomputation the backbone keeps at most half of what it keeps without."""
    torch.manual_seed(0)
    config = LMMConfig(
        dim=64, depth=2, memory=MemoryConfig.preset("titans", num_heads=4, head_dim=16)
    )
    model = build_backbone(config)
    x = torch.randn(2, 256, 64, requires_grad=True)
    lean = _kept_bytes(model, x)
    monkeypatch.setattr(recompute, "checkpoint", lambda fn, *args, **_: fn(*args))
    assert lean <= 0.5 * _kept_bytes(model, x)
