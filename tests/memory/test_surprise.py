"""The memory's surprise: the gradient norm that drives each write, per token and head."""

from __future__ import annotations

import pytest
import torch

from titans_sci.memory import MemoryConfig, NeuralMemory, recording_surprise
from titans_sci.models import LMMConfig, MACConfig, MAGConfig, MALConfig, build_backbone

#: The backbones' memory here: 4 heads of 32, chunks of 16.
SMALL = MemoryConfig.preset("titans", num_heads=4, head_dim=32, chunk_size=16)


def _gates(b: int, t: int, h: int, theta: float = 0.5):
    full = torch.full((b, t, h), 1.0, dtype=torch.float64)
    return {"theta": theta * full, "eta": 0.0 * full, "alpha": 0.0 * full, "delta": full}


def test_linear_memory_surprise_has_the_closed_form():
    """Linear memory, l2 bias, chunk size 1: the first token's gradient is k^T (k W - v), whose
    Frobenius norm is ||k|| ||k W - v||; later tokens use the weights after earlier writes."""
    torch.manual_seed(0)
    config = MemoryConfig.preset(
        "titans", num_heads=2, head_dim=4, chunk_size=1, architecture="linear"
    )
    memory = NeuralMemory(config).double()
    q, k, v = (torch.randn(1, 3, 2, 4, dtype=torch.float64) for _ in range(3))
    surprise = memory.surprise(q, k, v, **_gates(1, 3, 2))
    assert surprise.shape == (1, 3, 2)
    w = memory.initial_weights[0].detach()  # [H, D, D]
    for t in range(3):
        error = torch.einsum("hd,hde->he", k[0, t], w) - v[0, t]
        expected = k[0, t].norm(dim=-1) * error.norm(dim=-1)
        torch.testing.assert_close(surprise[0, t], expected)
        w = w - 0.5 * torch.einsum("hd,he->hde", k[0, t], error)  # plain GD step, theta 0.5


def test_surprise_falls_as_a_repeated_pair_is_learned():
    """The same key/value pair written again and again: each write leaves less to learn."""
    torch.manual_seed(0)
    config = MemoryConfig.preset("titans", num_heads=1, head_dim=8, chunk_size=1)
    memory = NeuralMemory(config).double()
    k = torch.nn.functional.normalize(torch.randn(1, 1, 1, 8, dtype=torch.float64), dim=-1)
    v = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    k, v = k.expand(1, 12, 1, 8), v.expand(1, 12, 1, 8)
    surprise = memory.surprise(k, k, v, **_gates(1, 12, 1, theta=0.3))[0, :, 0]
    assert (surprise.diff() < 0).all(), surprise
    assert surprise[-1] < 0.2 * surprise[0]


@pytest.mark.parametrize(
    "config",
    [
        LMMConfig(memory=SMALL, dim=16, depth=2),
        MAGConfig(memory=SMALL, dim=16, depth=2, window=4),
        MALConfig(memory=SMALL, dim=16, depth=1, window=4),
        MACConfig(memory=SMALL, dim=16, depth=2, segment_len=16),
    ],
    ids=["lmm", "mag", "mal", "mac"],
)
def test_backbone_surprise_is_per_token_layer_and_head_and_causal(config):
    memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
    torch.manual_seed(0)
    model = build_backbone(type(config)(**{**config.__dict__, "memory": memory})).double()
    x = torch.randn(2, 37, 16, dtype=torch.float64)
    surprise = model.surprise(x)
    assert surprise.shape == (2, 37, config.depth, 2)
    assert torch.isfinite(surprise).all() and (surprise > 0).all()
    changed = x.clone()
    changed[:, 30:] += 1.0
    torch.testing.assert_close(model.surprise(changed)[:, :28], surprise[:, :28])
    assert not torch.allclose(model.surprise(changed)[:, 30:], surprise[:, 30:])


@pytest.mark.parametrize(
    "preset, architecture, chunk",
    [
        ("titans", "mlp", 4),
        ("titans", "linear", 5),
        ("moneta", "mlp", 4),
        ("yaad", "mlp", 3),
        ("memora", "mlp", 4),
    ],
)
def test_chunked_surprise_equals_the_token_by_token_reference(preset, architecture, chunk):
    """The chunked path's surprise, from the rank-1 factors ``||u|| ||d||`` of each layer,
    equals autograd's gradient norm in the recurrent reference, at an odd length."""
    torch.manual_seed(0)
    config = MemoryConfig.preset(
        preset, num_heads=2, head_dim=8, chunk_size=chunk, architecture=architecture
    )
    memory = NeuralMemory(config).double()
    q, k, v = (torch.randn(2, 19, 2, 8, dtype=torch.float64) for _ in range(3))
    gates = _gates(2, 19, 2, theta=0.2)
    gates["eta"] = gates["eta"] + 0.8
    gates["alpha"] = gates["alpha"] + 0.05
    fast = memory.surprise(q, k, v, **gates)
    slow = memory.surprise(q, k, v, **gates, impl="recurrent")
    assert fast.shape == (2, 19, 2)
    torch.testing.assert_close(fast, slow)


def test_surprise_streams_across_pending_tokens():
    """Surprise of a stream fed in pieces that end mid-chunk equals that of one call."""
    torch.manual_seed(0)
    config = MemoryConfig.preset("titans", num_heads=1, head_dim=4, chunk_size=4)
    memory = NeuralMemory(config).double()
    q = torch.randn(1, 15, 1, 4, dtype=torch.float64)
    whole = memory.surprise(q, q, q, **_gates(1, 15, 1))
    _, state = memory(q[:, :6], q[:, :6], q[:, :6], **_gates(1, 6, 1))
    rest = memory.surprise(q[:, 6:], q[:, 6:], q[:, 6:], **_gates(1, 9, 1), state=state)
    torch.testing.assert_close(rest, whole[:, 6:])


@pytest.mark.parametrize(
    "config",
    [
        LMMConfig(memory=SMALL, dim=16, depth=2),
        LMMConfig(memory=SMALL, dim=16, depth=2, bidirectional=True),
        MAGConfig(memory=SMALL, dim=16, depth=2, window=4),
        MALConfig(memory=SMALL, dim=16, depth=1, window=4),
        MACConfig(memory=SMALL, dim=16, depth=2, segment_len=16),
    ],
    ids=["lmm", "lmm-bidirectional", "mag", "mal", "mac"],
)
def test_backbone_surprise_streams_with_carried_state(config):
    """Pieces of odd lengths, the state carried between them: the same surprise as one call
    (the forward pass of a bidirectional backbone streams too)."""
    memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
    torch.manual_seed(0)
    model = build_backbone(type(config)(**{**config.__dict__, "memory": memory})).double()
    x = torch.randn(2, 41, 16, dtype=torch.float64)
    whole = model.surprise(x)
    pieces, state, start = [], None, 0
    for length in (7, 1, 13, 20):
        trace, state = model.surprise_and_state(x[:, start : start + length], state=state)
        pieces.append(trace)
        start += length
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole)


def test_surprise_recordings_nest_and_leave_forward_unchanged():
    """A memory's own ``surprise`` inside a backbone-wide recording gives the same numbers and
    leaves the outer recording in place; recording does not change the outputs (beyond
    rounding: a recorded call runs the dual form, which computes the surprise, where a plain
    call runs the lean path)."""
    memory_config = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
    torch.manual_seed(0)
    model = build_backbone(LMMConfig(dim=16, depth=1, memory=memory_config)).double()
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    plain, _ = model(x)
    memory = model.blocks[0].memory.memory
    q, k, v = (torch.randn(1, 10, 2, 8, dtype=torch.float64) for _ in range(3))
    with recording_surprise(model) as sinks:
        recorded, _ = model(x)
        inner = memory.surprise(q, k, v, **_gates(1, 10, 2))
        model(x)
    torch.testing.assert_close(recorded, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inner, memory.surprise(q, k, v, **_gates(1, 10, 2)))
    assert len(sinks[memory]) == 2 and memory.surprise_sink is None
