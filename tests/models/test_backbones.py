"""Titans backbones: causality, streaming, padding, bidirectional use, configs and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

from titans_sci.layers.memory_layer import NeuralMemoryLayer
from titans_sci.memory import MemoryConfig, NonFiniteSurpriseError
from titans_sci.models import (
    MODELS,
    BackboneState,
    LMMConfig,
    MACConfig,
    MAGConfig,
    MALConfig,
    TitansLMM,
    TitansMAC,
    build_backbone,
)
from titans_sci.padding import reversal

DIM = 16
VARIANTS = ("lmm", "mac", "mag", "mal")
# The forms the long-context work added: MAC's first (residual) block, sparse gates with
# persistent tokens through the memory branch, and channel-wise step sizes.
FORMS = {
    "mac_residual": ("mac", {"form": "residual"}),
    "lmm_sparse": ("lmm", {"gates": "sparse", "memory_persistent": 3}),
    "mac_sparse": ("mac", {"gates": "sparse", "memory_persistent": 4}),
    "mag_sparse": ("mag", {"gates": "sparse", "memory_persistent": 3}),
    "lmm_channel": ("lmm", {"channel_gates": 2}),
    "mac_channel": ("mac", {"gates": "sparse", "channel_gates": 2}),
}
ALL_FORMS = VARIANTS + tuple(FORMS)


def make_config(variant: str, preset: str = "titans", **changes):
    variant, form = FORMS.get(variant, (variant, {}))
    changes = {**form, **changes}
    memory = MemoryConfig.preset(preset, num_heads=2, head_dim=8, chunk_size=4)
    common = dict(dim=DIM, depth=2, memory=memory)
    attention = dict(attention_heads=2, num_persistent=2)
    config = {
        "lmm": LMMConfig(**common),
        "mac": MACConfig(**common, **attention, segment_len=8),
        "mag": MAGConfig(**common, **attention, window=6),
        "mal": MALConfig(**common, **attention, window=6),
    }[variant]
    return type(config).from_dict({**config.to_dict(), **changes})


def make_model(variant: str, preset: str = "titans", **changes):
    torch.manual_seed(0)
    model = build_backbone(make_config(variant, preset, **changes)).double()
    for layer in model.modules():  # channel-wise steps start at 1: set them apart
        if isinstance(layer, NeuralMemoryLayer) and layer.to_channel is not None:
            nn.init.normal_(layer.to_channel[1].weight, std=0.5)
    return model


def embeddings(batch: int = 2, length: int = 29, seed: int = 1) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, DIM, generator=gen, dtype=torch.float64)


def stream(model, x: Tensor, sizes: list[int], mask: Tensor | None = None):
    outputs, state, start = [], None, 0
    for size in sizes:
        piece_mask = None if mask is None else mask[:, start : start + size]
        y, state = model(x[:, start : start + size], piece_mask, state)
        outputs.append(y)
        start += size
    return torch.cat(outputs, dim=1), state


@pytest.mark.parametrize("preset", ["titans", "yaad"])
@pytest.mark.parametrize("variant", ALL_FORMS)
def test_causal(variant: str, preset: str):
    """Changing inputs from position 17 on leaves every earlier output unchanged."""
    model = make_model(variant, preset)
    x = embeddings()
    changed = x.clone()
    changed[:, 17:] = torch.randn_like(changed[:, 17:])
    h, _ = model(x)
    h_changed, _ = model(changed)
    assert torch.equal(h[:, :17], h_changed[:, :17])
    assert not torch.allclose(h[:, 17:], h_changed[:, 17:])


@pytest.mark.parametrize("variant", ALL_FORMS)
def test_streaming_equals_one_call(variant: str):
    """Pieces of any lengths (MAC: mid-segment too) give one call's outputs."""
    model = make_model(variant)
    x = embeddings(length=37)
    whole, _ = model(x)
    for sizes in ([16, 21], [5, 1, 12, 19], [1] * 37):
        pieces, _ = stream(model, x, sizes)
        torch.testing.assert_close(pieces, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", ALL_FORMS)
def test_streaming_with_a_padding_mask(variant: str):
    model = make_model(variant)
    x = embeddings(length=30)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 25:] = False
    whole, _ = model(x, mask)
    pieces, _ = stream(model, x, [11, 3, 16], mask)
    torch.testing.assert_close(pieces, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", ALL_FORMS)
def test_streaming_state_does_not_grow(variant: str):
    model = make_model(variant)
    x = embeddings(batch=1, length=200)

    def numel(state: BackboneState) -> int:
        def size(obj) -> int:
            if isinstance(obj, Tensor):
                return obj.numel()
            if isinstance(obj, (list, tuple)):
                return sum(size(o) for o in obj)
            if hasattr(obj, "__dict__"):
                return sum(size(v) for v in vars(obj).values())
            return 0

        return size(state.blocks) + size(state.pending)

    sizes = []
    state = None
    with torch.no_grad():
        for start in range(0, 200, 10):
            _, state = model(x[:, start : start + 10], state=state)
            sizes.append(numel(state))
    assert max(sizes[5:]) <= max(sizes[:5]), sizes


@pytest.mark.parametrize("variant", ALL_FORMS)
def test_padding_content_is_ignored(variant: str):
    """Whatever the padded positions hold, real positions get the same outputs; with the
    padding at the start (left) or the end (right) of a sequence."""
    model = make_model(variant)
    x = embeddings(length=24)
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[0, :5] = False  # left padding
    mask[1, 19:] = False  # right padding
    other = torch.where(mask[..., None], x, 100 * torch.randn_like(x))
    h, _ = model(x, mask)
    h_other, _ = model(other, mask)
    torch.testing.assert_close(h[mask], h_other[mask], rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", ALL_FORMS)
def test_bidirectional(variant: str):
    """Same weights read both directions: reversing the input reverses the output, and the
    output at a position depends on later inputs; padding content is still ignored."""
    model = make_model(variant, bidirectional=True)
    x = embeddings(length=24)
    h, state = model(x)
    assert state is None
    reversed_h, _ = model(x.flip(1))
    torch.testing.assert_close(reversed_h.flip(1), h, rtol=1e-12, atol=1e-12)
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(model(changed)[0][:, 0], h[:, 0])
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[:, 20:] = False
    other = torch.where(mask[..., None], x, torch.randn_like(x))
    torch.testing.assert_close(model(x, mask)[0][mask], model(other, mask)[0][mask])


def test_reverse_order_mirrors_real_tokens_only():
    mask = torch.tensor([[True, True, True, False, False], [False, True, True, True, True]])
    order = reversal(mask, 5, mask.device)
    assert order.tolist() == [[2, 1, 0, 3, 4], [0, 4, 3, 2, 1]]
    torch.testing.assert_close(order.gather(1, order), torch.arange(5).expand(2, 5))
    assert reversal(None, 4, mask.device).tolist() == [[3, 2, 1, 0]]


@pytest.mark.parametrize("variant", ALL_FORMS)
def test_bidirectional_right_padding_equals_the_sequence_alone(variant: str):
    """Each sequence is reversed over its own real tokens, so right padding (as ``pad_batch``
    makes it) changes nothing: a sequence gets the same outputs in any batch."""
    model = make_model(variant, bidirectional=True)
    x = embeddings(length=24)
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[1, 17:] = False
    h, _ = model(x, mask)
    alone, _ = model(x[1:, :17])
    torch.testing.assert_close(h[1, :17], alone[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("preset", ["titans", "moneta", "yaad", "memora"])
@pytest.mark.parametrize("architecture", ["mlp", "linear"])
def test_any_memory_preset(preset: str, architecture: str):
    memory = MemoryConfig.preset(
        preset, num_heads=2, head_dim=8, chunk_size=4, architecture=architecture
    )
    model = build_backbone(MAGConfig(dim=DIM, depth=1, memory=memory, window=4))
    h, _ = model(embeddings(length=9).float())
    assert h.shape == (2, 9, DIM) and torch.isfinite(h).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_round_trip(variant: str):
    config = make_config(variant, "memora", depth=3)
    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config
    assert MODELS[variant].config_class is type(config)


def test_config_errors():
    with pytest.raises(ValueError, match=r"LMMConfig: unknown key 'window'"):
        LMMConfig.from_dict({"window": 3})
    with pytest.raises(ValueError, match="segment_len=10 must be a positive multiple"):
        make_config("mac", segment_len=10)
    with pytest.raises(ValueError, match="not divisible by attention_heads=3"):
        make_config("mag", attention_heads=3)
    with pytest.raises(ValueError, match="TitansMAC takes a MACConfig, got LMMConfig"):
        TitansMAC(make_config("lmm"))


def test_bad_inputs_are_named():
    model = make_model("mal")
    x = embeddings(length=8)
    with pytest.raises(ValueError, match=r"x has shape \(2, 8, 12\); expected embeddings"):
        model(x[..., :12])
    with pytest.raises(ValueError, match=r"mask is \(2, 7\) torch.bool; expected a bool"):
        model(x, torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask is \(2, 8\) torch.int64"):
        model(x, torch.ones(2, 8, dtype=torch.long))
    _, state = model(x)
    with pytest.raises(ValueError, match="state comes from another backbone config"):
        make_model("mal", window=5)(x, state=state)
    with pytest.raises(ValueError, match="state comes from another backbone config"):
        make_model("lmm")(x, state=state)
    with pytest.raises(ValueError, match="state is for batch size 2; x has batch size 1"):
        model(x[:1], state=state)
    with pytest.raises(ValueError, match="bidirectional backbone does not stream"):
        make_model("mal", bidirectional=True)(x, state=state)


def test_lmm_gradients_reach_every_parameter():
    model = make_model("lmm")
    h, _ = model(embeddings(length=12))
    h.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing
    assert isinstance(model, TitansLMM)


@pytest.mark.parametrize("variant", VARIANTS)
def test_divergence_names_block_and_step(variant: str):
    """A diverging memory is reported with its block and the step within this call."""
    linear = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4).replace(
        architecture="linear"  # an MLP memory's LayerNorm keeps its surprise bounded
    )
    # MAC: a segment of 4 chunks, so the overflow is met inside the first segment's writes.
    segment = {"segment_len": 16} if variant == "mac" else {}
    model = make_model(variant, max_step=1e30, memory=linear.to_dict(), **segment).float()
    with torch.no_grad():
        model.blocks[0].memory.to_gates.bias[: 2 * 2].fill_(30.0)  # theta = max_step
    x = embeddings(length=20).float()
    with pytest.raises(
        NonFiniteSurpriseError, match=r"in block 0 \(Titans\w+\) at step (\d+)"
    ) as info:
        model(x)
    assert 0 <= info.value.step < 20


def test_sparse_gates_write_nothing_and_forget_nothing():
    """Sparse gates reach exactly zero: tokens whose theta and alpha are 0 leave the memory's
    weights exactly as they were, however many there are; sigmoid gates never do."""
    from titans_sci.layers.memory_layer import sparse_gate

    assert sparse_gate(torch.tensor([-3.1, 0.0, 3.1])).tolist() == [0.0, 0.5, 1.0]
    memory = MemoryConfig.preset("titans", num_heads=2, head_dim=8, chunk_size=4)
    torch.manual_seed(0)
    for gates, unchanged in (("sparse", True), ("sigmoid", False)):
        layer = NeuralMemoryLayer(DIM, memory, gates=gates).double()
        with torch.no_grad():
            layer.to_gates.bias.view(4, 2)[[0, 2]] = -8.0  # theta and alpha off
        _, before = layer(embeddings(length=8))
        _, after = layer(embeddings(length=400, seed=5), state=before)
        same = all(
            torch.equal(a, b)
            for a, b in zip(before.memory.weights, after.memory.weights, strict=True)
        )
        assert same is unchanged, gates


def test_memory_persistent_tokens_are_learned_and_start_every_sequence():
    """Persistent tokens are read before the sequence: they change the outputs, get gradients,
    and a fresh stream starts from the state after them (so pieces still equal one call, which
    the streaming tests check for every form)."""
    plain, persistent = make_model("lmm"), make_model("lmm", memory_persistent=3)
    x = embeddings(length=12)
    assert not torch.allclose(plain(x)[0], persistent(x)[0])
    persistent(x)[0].square().sum().backward()
    for block in persistent.blocks:
        assert block.memory.persistent.grad is not None and block.memory.persistent.grad.any()
    with pytest.raises(ValueError, match="memory_persistent=3 must be a multiple of"):
        make_config("mac", memory_persistent=3)


def test_channel_gates_start_per_head_and_learn():
    """Channel-wise step sizes start at 1 on every channel (the per-head model exactly), and
    both low-rank projections get gradients once the up projection is nonzero."""
    torch.manual_seed(0)
    plain = build_backbone(make_config("lmm")).double()
    torch.manual_seed(0)
    channel = build_backbone(make_config("lmm", channel_gates=2)).double()
    channel.load_state_dict(plain.state_dict(), strict=False)  # the same weights elsewhere
    x = embeddings(length=12)
    torch.testing.assert_close(channel(x)[0], plain(x)[0], rtol=0, atol=1e-12)
    model = make_model("lmm", channel_gates=2)
    model(x)[0].square().sum().backward()
    for block in model.blocks:
        for projection in block.memory.to_channel:
            assert projection.weight.grad is not None and projection.weight.grad.any()
    with pytest.raises(ValueError, match="channel_gates=-1; expected an int >= 0"):
        make_config("lmm", channel_gates=-1)


def test_mac_paper_form_writes_the_attention_output():
    """In the paper's MAC block the memory is written with the attention output alone, so the
    two forms differ, and the paper's block does not add ``y`` to the residual stream: with the
    gate's output forced to zero the block is exactly its MLP of the input."""
    x = embeddings(length=16)
    paper, residual = make_model("mac"), make_model("mac", form="residual")
    assert not torch.allclose(paper(x)[0], residual(x)[0])
    block = paper.blocks[0]
    with torch.no_grad():
        block.gate.norm_y.weight.zero_()
    h, _ = block(x, None, None)
    torch.testing.assert_close(h, block.mlp(x), rtol=0, atol=1e-12)


def test_recording_gates_gives_each_memory_call_its_gates_in_the_graph():
    """One entry per memory layer call, the gates the layer computed (a penalty on them reaches
    the gate projections), and nothing recorded once the block is closed."""
    from titans_sci.memory import recording_gates

    model = make_model("lmm", channel_gates=2)
    x = embeddings(length=12)
    with recording_gates(model) as gates:
        model(x)
    assert len(gates) == 2  # depth 2
    assert {"theta", "eta", "alpha"} <= set(gates[0])
    assert gates[0]["theta"].shape == (2, 12, 2) and gates[0]["channel"].shape == (2, 12, 2, 8)
    torch.stack([g["theta"].mean() + g["alpha"].mean() for g in gates]).mean().backward()
    for block in model.blocks:
        assert block.memory.to_gates.bias.grad is not None and block.memory.to_gates.bias.grad.any()
    model(x)
    assert len(gates) == 2
