"""Exact online learning, gradcheck, streaming state, shape properties and bad input."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from memory_cases import (
    ARCHITECTURES,
    PRESETS,
    assert_close,
    make_case,
    relative_error,
    run,
)
from titans_sci.memory import MemoryConfig, MemoryState, NeuralMemory, NonFiniteSurpriseError

# -- exact online learning, written from the papers' per-token equations ------------------------


def _memory(cfg: MemoryConfig, weights: list[Tensor], x: Tensor) -> Tensor:
    if cfg.architecture == "linear":
        return x @ weights[0]
    h = x
    for w in weights[:-1]:
        h = F.gelu(h @ w)
    return x + F.layer_norm(h @ weights[-1], (x.shape[-1],), eps=cfg.ln_eps)


def _paper_loss(cfg: MemoryConfig, e: Tensor, delta: Tensor) -> Tensor:
    if cfg.bias == "l2":  # Titans eq. 12 (with 1/2)
        return 0.5 * (e**2).sum(-1)
    if cfg.bias == "lp":  # MIRAS eq. 10 with remark 5's smooth |.|
        return ((e**2 + cfg.eps) ** (cfg.p / 2)).sum(-1) / cfg.p
    if cfg.bias == "huber":  # MIRAS eq. 16
        small = torch.linalg.vector_norm(e, dim=-1) <= delta
        return torch.where(small, 0.5 * (e**2).sum(-1), delta * (e**2 + cfg.eps).sqrt().sum(-1))
    raise AssertionError(cfg.bias)


def _simplex_scale(cfg: MemoryConfig, w: Tensor) -> float:
    return cfg.simplex_scale if cfg.simplex_scale is not None else w.shape[-2] ** 0.5


def online_learning(case, steps: int) -> tuple[Tensor, list[Tensor]]:
    """Per token: gradient at the current memory, update, read the updated memory."""
    cfg = case.memory.config
    batch = case.q.shape[0]
    params = [p.detach().expand(batch, *p.shape) for p in case.memory.parameters()]
    # Memora's state is the simplex point itself; the others keep free parameters A (or W).
    state = (
        [_simplex_scale(cfg, p) * torch.softmax(p, -2) for p in params]
        if cfg.retention == "kl"
        else params
    )
    momentum = [torch.zeros_like(p) for p in params]
    g = {n: x.detach().transpose(1, 2) for n, x in case.gates.items()}
    q, k, v = (x.detach().transpose(1, 2) for x in (case.q, case.k, case.v))

    def weights_of(a: list[Tensor]) -> list[Tensor]:
        if cfg.retention == "lq":  # Moneta eq. 24: W = A / ||A||_q^(q-2)
            return [
                x / x.abs().pow(cfg.q).sum((-2, -1), keepdim=True) ** ((cfg.q - 2) / cfg.q)
                for x in a
            ]
        if cfg.retention == "elastic":  # FTRL elastic net: W = soft threshold of A
            return [x.sign() * (x.abs() - cfg.elastic_threshold).clamp_min(0) for x in a]
        return a

    outputs = []
    for t in range(steps):
        theta, eta, alpha, delta = (
            g[n][..., t, None, None] for n in ("theta", "eta", "alpha", "delta")
        )
        w = [x.clone().requires_grad_() for x in weights_of(state)]
        e = _memory(cfg, w, k[:, :, t : t + 1]) - v[:, :, t : t + 1]
        grads = torch.autograd.grad(_paper_loss(cfg, e, delta[..., 0]).sum(), w)
        if cfg.retention == "kl":  # Memora eq. 27 with the forget gate 1 - alpha
            state = [
                _simplex_scale(cfg, x) * torch.softmax((1 - alpha) * x.log() - theta * gr, -2)
                for x, gr in zip(state, grads, strict=True)
            ]
        elif cfg.algorithm == "momentum":  # Titans eqs. 13-14
            momentum = [eta * m - theta * gr for m, gr in zip(momentum, grads, strict=True)]
            state = [(1 - alpha) * x + m for x, m in zip(state, momentum, strict=True)]
        else:
            state = [(1 - alpha) * x - theta * gr for x, gr in zip(state, grads, strict=True)]
        outputs.append(_memory(cfg, weights_of(state), q[:, :, t : t + 1]))
    return torch.cat(outputs, 2).transpose(1, 2), weights_of(state)


ONLINE_CASES = [(p, a, {}) for p in PRESETS for a in ARCHITECTURES] + [
    ("titans", a, {"retention": "elastic", "elastic_threshold": 0.01}) for a in ARCHITECTURES
]


@pytest.mark.parametrize(("preset", "architecture", "overrides"), ONLINE_CASES)
def test_chunk_size_one_is_exact_online_learning(preset, architecture, overrides):
    case = make_case(preset, architecture, 24, 1, dtype=torch.float64, **overrides)
    y_online, w_online = online_learning(case, 24)
    with torch.no_grad():
        y, state = run(case, "chunked")
    assert_close("y", y, y_online, 1e-10)
    retention = case.memory.rule.retention
    for i, (x, w) in enumerate(zip(state.weights, w_online, strict=True)):
        assert_close(f"memory weights[{i}]", retention.weights(x), w, 1e-10)


def test_larger_chunks_differ_from_online_learning():
    """Chunking is an approximation: frozen gradients change the result (the test can fail)."""
    one = make_case("titans", "mlp", 32, 1, dtype=torch.float64)
    many = make_case("titans", "mlp", 32, 16, dtype=torch.float64)
    with torch.no_grad():
        assert relative_error(run(many, "chunked")[0], run(one, "chunked")[0]) > 1e-4


# -- gradcheck --------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("preset", PRESETS)
def test_gradcheck_chunked(preset: str, architecture: str):
    case = make_case(preset, architecture, 5, 2, batch=1, heads=1, head_dim=3, dtype=torch.float64)
    memory = case.memory
    weights = [p.detach().unsqueeze(0).clone().requires_grad_() for p in memory.parameters()]
    names = list(case.gates)

    def f(q, k, v, *rest):
        gates = dict(zip(names, rest[: len(names)], strict=True))
        w = rest[len(names) :]
        momentum = tuple(torch.zeros_like(x) for x in w) if memory.config.uses_momentum else None
        y, state = memory(q, k, v, **gates, state=MemoryState(tuple(w), momentum))
        return (y, *state.weights)

    inputs = (case.q, case.k, case.v, *case.gates.values(), *weights)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


# -- streaming ----------------------------------------------------------------------------------


def _pieces(case, sizes: list[int], impl: str = "chunked"):
    """Call the module on consecutive pieces of the case, carrying the state."""
    outputs, state, start = [], None, 0
    for size in sizes:
        sl = slice(start, start + size)
        gates = {n: x[:, sl] for n, x in case.gates.items()}
        y, state = case.memory(
            case.q[:, sl], case.k[:, sl], case.v[:, sl], **gates, state=state, impl=impl
        )
        outputs.append(y)
        start += size
    return torch.cat(outputs, 1), state


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("preset", PRESETS)
def test_state_over_two_halves_equals_whole(preset: str, architecture: str):
    case = make_case(preset, architecture, 53, 16, dtype=torch.float64)
    whole_y, whole_state = _pieces(case, [53])
    halves_y, halves_state = _pieces(case, [32, 21])  # split at a chunk boundary
    assert_close("y", halves_y, whole_y, 1e-12)
    for a, b in zip(halves_state.weights, whole_state.weights, strict=True):
        assert_close("state.weights", a, b, 1e-12)
    # Gradients flow through the carried state into the first piece's inputs.
    (grad,) = torch.autograd.grad(halves_y[:, 32:].square().sum(), case.k)
    assert grad[:, :32].abs().max() > 1e-6


@pytest.mark.parametrize("channel_wise", [False, True])
@pytest.mark.parametrize("impl", ["chunked", "recurrent"])
@pytest.mark.parametrize("preset", PRESETS)
def test_pieces_of_any_length_equal_one_call(preset: str, impl: str, channel_wise: bool):
    """Pieces that end mid-chunk: the state keeps the tokens since the last chunk boundary and
    the next call replays them, so every read and the final state equal one call's (with
    channel-wise step sizes too: the pending tokens keep theirs)."""
    case = make_case(preset, "mlp", 53, 16, dtype=torch.float64, channel_wise=channel_wise)
    whole_y, whole_state = _pieces(case, [53], impl)
    for sizes in ([37, 16], [5, 1, 1, 30, 16], [1] * 53):
        y, state = _pieces(case, sizes, impl)
        assert_close(f"y {sizes}", y, whole_y, 1e-12)
        for a, b in zip(state.weights, whole_state.weights, strict=True):
            assert_close(f"state.weights {sizes}", a, b, 1e-12)
        assert len(state.pending) == len(whole_state.pending) == 53 % 16
        assert_close("pending k", state.pending.k, whole_state.pending.k, 0.0)


def test_channel_wise_training_path_equals_recurrent():
    """Through the module while training (grouped recomputation over 3 groups, odd length):
    outputs and every gradient, the channel-wise step sizes' included, equal the recurrence."""
    case = make_case(
        "titans",
        "mlp",
        157,
        16,
        dtype=torch.float64,
        channel_wise=True,
        theta_max=0.05,
        alpha_max=0.01,
    )
    results = {}
    for impl in ("chunked", "recurrent"):
        y, state = _call(case, impl=impl)
        loss = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum()
        loss = loss + sum((w.square()).mean() for w in state.weights)
        results[impl] = (y, torch.autograd.grad(loss, case.inputs(), allow_unused=True))
    (y_ref, g_ref), (y, g) = results["recurrent"], results["chunked"]
    assert_close("y", y, y_ref, 1e-8)
    for name, a, b in zip(case.names(), g, g_ref, strict=True):
        assert_close(f"grad {name}", a, b, 1e-8)


def test_channel_wise_steps_of_one_are_the_per_head_steps():
    """Channel weights of 1 give the per-head memory exactly: the lean explicit backward
    (per-head steps) against the grouped autograd path (channel-wise), outputs and gradients."""
    case = make_case("titans", "mlp", 157, 16, dtype=torch.float64)
    ones = torch.ones_like(case.q, requires_grad=True)
    y_head, _ = _call(case)
    y_channel, _ = _call(case, channel=ones)
    assert_close("y", y_channel, y_head, 1e-10)
    probe = torch.linspace(-1, 1, y_head.numel(), dtype=y_head.dtype).view_as(y_head)
    g_head = torch.autograd.grad((y_head * probe).sum(), case.inputs(), allow_unused=True)
    g_channel = torch.autograd.grad((y_channel * probe).sum(), case.inputs(), allow_unused=True)
    for name, a, b in zip(case.names(), g_channel, g_head, strict=True):
        assert_close(f"grad {name}", a, b, 1e-10)


def test_a_channel_of_zero_is_never_written():
    """A value channel with step size 0 on every token: the last layer's column for that channel
    keeps its initial weights; the other columns move."""
    case = make_case("titans", "linear", 40, 8, alpha_max=0.0)
    channel = torch.ones_like(case.q)
    channel[..., 3] = 0.0
    with torch.no_grad():
        _, state = _call(case, channel=channel)
    start = case.memory.initial_state(2).weights[0]
    assert torch.equal(state.weights[0][..., 3], start[..., 3])
    assert (state.weights[0][..., 2] - start[..., 2]).abs().max() > 1e-3


def test_streaming_state_is_bounded():
    """Token by token over many chunks, the state never holds more than one chunk of tokens."""
    case = make_case("titans", "linear", 100, 8)
    state = None
    with torch.no_grad():
        for t in range(100):
            gates = {n: x[:, t : t + 1] for n, x in case.gates.items()}
            _, state = case.memory(
                case.q[:, t : t + 1],
                case.k[:, t : t + 1],
                case.v[:, t : t + 1],
                **gates,
                state=state,
            )
            assert state.pending is None or len(state.pending) < 8
            assert state.weights[0].shape == (2, 2, 8, 8)


# -- shapes (hypothesis) ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    preset=st.sampled_from(PRESETS),
    architecture=st.sampled_from(ARCHITECTURES),
    batch=st.integers(1, 3),
    length=st.integers(1, 40),
    heads=st.integers(1, 3),
    head_dim=st.integers(3, 6),
    chunk_size=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_chunked_equals_recurrent_any_shape(
    preset, architecture, batch, length, heads, head_dim, chunk_size, seed
):
    case = make_case(
        preset,
        architecture,
        length,
        chunk_size,
        batch=batch,
        heads=heads,
        head_dim=head_dim,
        dtype=torch.float64,
        seed=seed,
        expansion=2,
        # Shapes are the point here, so keep the inner loop well-conditioned (see
        # test_memory_equivalence): a LayerNorm over 2 features has gain 1/sigma -> infinity.
        theta_max=0.05,
        alpha_max=0.01,
        eps=1e-2,
    )
    (y_ref, s_ref), (y, s) = run(case, "recurrent"), run(case, "chunked")
    assert y.shape == (batch, length, heads, head_dim)
    assert_close("y", y, y_ref, 1e-8)
    for a, b in zip(s.weights, s_ref.weights, strict=True):
        assert_close("state", a, b, 1e-8)
    grads = torch.autograd.grad(y.square().sum(), [case.q, case.k, case.v])
    grads_ref = torch.autograd.grad(y_ref.square().sum(), [case.q, case.k, case.v])
    for name, a, b in zip("qkv", grads, grads_ref, strict=True):
        assert_close(f"grad {name}", a, b, 1e-8)


# -- bad input ----------------------------------------------------------------------------------


def _call(case, **changes):
    args = dict(q=case.q, k=case.k, v=case.v, **case.gates)
    args.update(changes)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    return case.memory(q, k, v, **args)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {"q": c.q[0]}, "q has shape"),
        (lambda c: {"k": c.k[:, :-1]}, "k has shape"),
        (lambda c: {"v": c.v.to(torch.int64)}, "v has dtype"),
        (lambda c: {"v": c.v.double()}, "v has shape .* and dtype"),
        (lambda c: {"q": torch.zeros(2, 8, 2, 5)}, r"q has shape .* D=8"),
        (
            lambda c: {"v": c.v.detach().clone().index_fill_(1, torch.tensor([3]), float("nan"))},
            "v has non-finite",
        ),
        (lambda c: {"theta": c.gates["theta"][:, :-1]}, "gate theta has shape"),
        (
            lambda c: {"alpha": c.gates["alpha"] + 1.5},
            r"gate alpha has values outside \[0.0, 1.0\]",
        ),
        (lambda c: {"eta": None}, "gate eta is required"),
        (lambda c: {"theta": -c.gates["theta"]}, "gate theta has values outside"),
        (lambda c: {"eta": c.gates["eta"].double()}, "gate eta must be a tensor of dtype"),
        (
            lambda c: {"alpha": c.gates["alpha"].detach().clone().fill_(float("inf"))},
            "gate alpha has non-finite",
        ),
        (lambda c: {"channel": c.gates["theta"]}, r"gate channel has shape .* \[B, T, H, D\]"),
        (lambda c: {"channel": -torch.ones_like(c.q)}, "gate channel has values outside"),
    ],
)
def test_bad_input_names_the_tensor(change, message):
    case = make_case("titans", "mlp", 8, 4)
    with pytest.raises(ValueError, match=message):
        _call(case, **change(case))


def test_missing_delta_for_huber_bias():
    case = make_case("yaad", "linear", 8, 4)
    with pytest.raises(ValueError, match=re.escape("gate delta is required (bias='huber')")):
        _call(case, delta=None)


def test_state_from_another_config_is_rejected():
    case = make_case("titans", "mlp", 8, 4)
    other = NeuralMemory(case.memory.config.replace(expansion=2)).initial_state(2)
    with pytest.raises(ValueError, match="state.weights has shapes"):
        _call(case, state=other)
    gd_state = NeuralMemory(case.memory.config.replace(algorithm="gd")).initial_state(2)
    with pytest.raises(ValueError, match="state.momentum is None"):
        _call(case, state=gd_state)


def test_bad_config_values():
    with pytest.raises(ValueError, match="unknown memory preset 'atlas'"):
        MemoryConfig.preset("atlas")
    with pytest.raises(ValueError, match="chunk_size=300"):
        MemoryConfig(chunk_size=300)
    with pytest.raises(ValueError, match="MemoryConfig.bias='l3'"):
        MemoryConfig(bias="l3")
    with pytest.raises(ValueError, match="depth >= 2"):
        MemoryConfig(depth=1)
    with pytest.raises(ValueError, match="MemoryConfig: unknown key 'colour'"):
        MemoryConfig.from_dict({"colour": "red"})
    assert MemoryConfig.from_dict(MemoryConfig.preset("memora").to_dict()) == MemoryConfig.preset(
        "memora"
    )


@pytest.mark.parametrize("impl", ["chunked", "recurrent"])
def test_diverging_inner_loop_names_the_step(impl: str):
    """A huge step size overflows the memory within a few tokens: an error, not NaN outputs."""
    case = make_case("titans", "linear", 12, 4)
    theta = torch.full_like(case.gates["theta"], 1e30)
    with pytest.raises(NonFiniteSurpriseError, match=r"non-finite surprise at step (\d+)") as info:
        _call(case, theta=theta, impl=impl)
    assert 1 <= info.value.step < 12


def test_divergence_step_is_the_same_in_both_paths():
    case = make_case("titans", "linear", 12, 4)
    theta = torch.full_like(case.gates["theta"], 1e30)
    steps = []
    for impl in ("chunked", "recurrent"):
        with pytest.raises(NonFiniteSurpriseError) as info:
            case.memory(case.q, case.k, case.v, **{**case.gates, "theta": theta}, impl=impl)
        steps.append((info.value.step, info.value.batch, info.value.head))
    assert steps[0] == steps[1]


def test_pending_tokens_from_another_config_are_rejected():
    case = make_case("titans", "linear", 13, 16)
    _, state = _call(case)
    assert len(state.pending) == 13
    smaller_chunks = NeuralMemory(case.memory.config.replace(chunk_size=8))
    with pytest.raises(ValueError, match=r"state.pending holds q/k/v of shapes .* n < 8"):
        smaller_chunks(case.q, case.k, case.v, **case.gates, state=state)
    gd = NeuralMemory(case.memory.config.replace(algorithm="gd"))
    gd_state = MemoryState(state.weights, None, state.pending)
    with pytest.raises(ValueError, match="state.pending gate eta does not fit"):
        gd(case.q, case.k, case.v, **case.gates, state=gd_state)


def test_a_stream_cannot_switch_channel_wise_steps():
    case = make_case("titans", "linear", 13, 16)
    _, state = _call(case)  # 13 pending tokens written with per-head steps only
    with pytest.raises(ValueError, match="written without channel-wise step sizes"):
        _call(case, channel=torch.ones_like(case.q), state=state)


def test_channel_wise_steps_refuse_the_kernels():
    case = make_case("titans", "mlp", 8, 4)
    memory = NeuralMemory(case.memory.config.replace(backend="triton"))
    with pytest.raises(ValueError, match="kernels take one step size per head"):
        memory(case.q, case.k, case.v, **case.gates, channel=torch.ones_like(case.q))
