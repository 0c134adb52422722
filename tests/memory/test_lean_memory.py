"""The training path of the memory equals the plain-autograd dual form it replaces.

``backend="torch"`` (the default on CPU) trains through :mod:`titans_sci.memory.lean` (an explicit
backward, for the l2 bias with decay, linear or MLP-2 memory, momentum or GD) or, for the other
memories, through the dual form recomputed per group of chunks; ``backend="autograd"`` is the
dual form under plain autograd, the reference. For every preset, both architectures and both
algorithms, with the learned initial state and with a given one, at lengths 1, 17, 63 and 100
and at whole numbers of chunks (16, 64: no padding, so the upstream gradient reaches the
backward as a transposed view), several chunk sizes: the reads, the final state (weights,
momentum and the pending tokens) and the gradients of q, k, v, every gate, the given initial
state and the learned initial memory agree in float64 to 1e-9 relative to each tensor's
largest entry (measured worst ~1e-12 in the well-conditioned regime of
``test_memory_equivalence``).
"""

from __future__ import annotations

import itertools
import weakref

import pytest
import torch

from memory_cases import PRESETS, assert_close, make_case, probe_loss
from titans_sci.memory import MemoryConfig, MemoryState, NeuralMemory, NonFiniteSurpriseError
from titans_sci.memory.lean import lean_supports
from titans_sci.memory.rule import MemoryRule

TOL = 1e-9
WELL_CONDITIONED = dict(theta_max=0.05, alpha_max=0.01, eps=1e-2)


def _given_state(memory: NeuralMemory, batch: int, seed: int) -> MemoryState:
    """A random start state (weights and momentum) that requires grad."""
    gen = torch.Generator().manual_seed(seed)
    weights = tuple(
        (w.detach().unsqueeze(0) + 0.1 * torch.randn(batch, *w.shape, generator=gen)).to(w.dtype)
        for w in memory.initial_weights
    )
    momentum = None
    if memory.config.uses_momentum:
        momentum = tuple(0.01 * torch.randn(w.shape, generator=gen, dtype=w.dtype) for w in weights)
    for x in (*weights, *(momentum or ())):
        x.requires_grad_()
    return MemoryState(weights, momentum)


def _run(case, backend: str, state: MemoryState | None):
    """Reads, state and gradients of a probe loss through ``NeuralMemory`` on ``backend``."""
    memory = case.memory
    memory.rule = MemoryRule.from_config(memory.config.replace(backend=backend))
    y, end = memory(case.q, case.k, case.v, **case.gates, state=state)
    parts = [*end.weights, *(end.momentum or ())]
    if end.pending is not None:
        parts += [end.pending.q, end.pending.k, end.pending.v]
    loss = probe_loss(y, MemoryState(end.weights, end.momentum)) + sum(
        (i + 1) * p.sum() for i, p in enumerate(parts)
    )
    leaves = case.inputs() + ([] if state is None else [*state.weights, *(state.momentum or ())])
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return y, end, grads


def _compare(case, state: MemoryState | None) -> None:
    y_ref, end_ref, g_ref = _run(case, "autograd", state)
    y, end, g = _run(case, "torch", state)
    assert_close("y", y, y_ref, TOL)
    for i, (w, w_ref) in enumerate(zip(end.weights, end_ref.weights, strict=True)):
        assert_close(f"state.weights[{i}]", w, w_ref, TOL)
    for i, (m, m_ref) in enumerate(zip(end.momentum or (), end_ref.momentum or (), strict=True)):
        assert_close(f"state.momentum[{i}]", m, m_ref, TOL)
    assert (end.pending is None) == (end_ref.pending is None)
    names = case.names() + (
        [] if state is None else [f"state[{i}]" for i in range(len(g) - len(case.names()))]
    )
    for name, a, b in zip(names, g, g_ref, strict=True):
        assert_close(f"grad {name}", a, b, TOL)


CASES = [
    (preset, architecture, algorithm)
    for preset, architecture, algorithm in itertools.product(
        PRESETS, ("linear", "mlp"), ("momentum", "gd")
    )
]


@pytest.mark.parametrize("given_state", [False, True], ids=["learned", "given"])
@pytest.mark.parametrize(
    ("length", "chunk_size"), [(1, 4), (16, 4), (17, 4), (63, 16), (64, 16), (100, 8)]
)
@pytest.mark.parametrize(("preset", "architecture", "algorithm"), CASES)
def test_training_path_equals_autograd(
    preset, architecture, algorithm, length, chunk_size, given_state
):
    case = make_case(
        preset,
        architecture,
        length,
        chunk_size,
        dtype=torch.float64,
        algorithm=algorithm,
        **WELL_CONDITIONED,
    )
    state = _given_state(case.memory, case.q.shape[0], seed=1) if given_state else None
    _compare(case, state)


@pytest.mark.parametrize("chunk_size", [1, 16, 64])
@pytest.mark.parametrize("architecture", ["linear", "mlp"])
def test_lean_path_at_other_chunks_and_over_several_groups(architecture: str, chunk_size: int):
    """Lengths past several 64-token groups (the backward's recomputation unit), chunk 1 (exact
    online learning) to 64, a batch larger than one block of the lean path."""
    case = make_case(
        "titans", architecture, 150, chunk_size, batch=3, dtype=torch.float64, **WELL_CONDITIONED
    )
    _compare(case, _given_state(case.memory, 3, seed=2))


def test_lean_covers_what_its_docs_say():
    def rule(**kw) -> MemoryRule:
        return MemoryRule.from_config(MemoryConfig.preset("titans", num_heads=1, **kw))

    assert lean_supports(rule()) and lean_supports(rule(architecture="linear"))
    assert lean_supports(rule(algorithm="gd"))
    assert not lean_supports(rule(depth=3))
    for preset in ("moneta", "yaad", "memora"):
        assert not lean_supports(MemoryRule.from_config(MemoryConfig.preset(preset)))


def _saved_bytes(memory: NeuralMemory, length: int) -> int:
    """Bytes autograd still holds for the backward after one training call of ``length``."""
    torch.manual_seed(0)
    b, h, d = 2, memory.config.num_heads, memory.config.head_dim
    q, k = (torch.nn.functional.normalize(torch.randn(b, length, h, d), dim=-1) for _ in "qk")
    v = torch.randn(b, length, h, d)
    gates = {n: torch.full((b, length, h), x) for n, x in (("theta", 0.1), ("eta", 0.9))}
    gates["alpha"] = torch.full((b, length, h), 0.01)
    gates["delta"] = torch.ones(b, length, h)
    for x in (q, k, v, *gates.values()):
        x.requires_grad_()
    if not memory.config.needs_delta:
        gates.pop("delta")
    if not memory.config.uses_momentum:
        gates.pop("eta")
    packed: list[weakref.ref] = []

    def pack(x):
        packed.append(weakref.ref(x))
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        y, _ = memory(q, k, v, **gates)
    storages = {}
    for ref in packed:
        if (x := ref()) is not None:
            storages[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
    del y
    return sum(storages.values())


@pytest.mark.parametrize("preset", ["titans", "yaad"])
def test_saved_activations_per_token_stay_small(preset: str):
    """The training path keeps q, k, v, gate matrices and group-start states: a fixed number of
    bytes per token (not growing with length), a few times the 3 x H x D floats of q, k, v;
    the autograd reference keeps many times more."""
    config = MemoryConfig.preset(preset, num_heads=4, head_dim=16, chunk_size=16)
    memory = NeuralMemory(config)
    per_token = [_saved_bytes(memory, length) / (2 * length) for length in (256, 1024)]
    qkv = 3 * 4 * 16 * 4  # bytes per token of q, k, v in float32
    assert per_token[1] <= 1.1 * per_token[0]
    assert per_token[1] <= 4 * qkv, per_token
    reference = NeuralMemory(config.replace(backend="autograd"))
    reference.load_state_dict(memory.state_dict())
    assert _saved_bytes(reference, 256) / 512 >= 3 * per_token[0]


def test_lean_path_reports_a_diverging_inner_loop_like_the_reference():
    """A non-finite surprise raises NonFiniteSurpriseError naming the same step, batch, head."""
    errors = {}
    for backend in ("torch", "autograd"):
        case = make_case("titans", "mlp", 40, 8, dtype=torch.float64)
        memory = case.memory
        memory.rule = MemoryRule.from_config(memory.config.replace(backend=backend))
        v = case.v.detach().clone()
        v[1, 21, 0, 3] = 1e308  # finite input whose error squared overflows
        with pytest.raises(NonFiniteSurpriseError) as info:
            memory(case.q, case.k, v, **case.gates)
        errors[backend] = (info.value.step, info.value.batch, info.value.head)
    assert errors["torch"] == errors["autograd"]
