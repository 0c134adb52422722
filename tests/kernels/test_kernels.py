"""Triton kernels against the chunked PyTorch path (on the CPU through Triton's interpreter).

Linear memory (forward and backward): outputs, final state (weights and momentum) and the
gradients w.r.t. q, k, v, every gate and the initial weights and momentum, at odd lengths, every
supported chunk size, with and without an initial state. Tolerances are relative to each
tensor's largest entry: 2e-5 in fp32 (we measure ~3e-7: both accumulate in fp32 in a different
order); for bf16/fp16 inputs, against the PyTorch path on the same rounded values in fp32, 1e-2
(the kernels take TF32 products for half inputs on a GPU). MLP memory: outputs and final state
without autograd, 1e-4 in fp32; with autograd, every gradient too, 2e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memory_cases import assert_close, make_case
from titans_sci.memory import Gates, MemoryConfig, MemoryState, NeuralMemory, chunked

triton = pytest.importorskip("triton", reason="Triton is a dependency on Linux")
from titans_sci.kernels import supports, triton_chunked  # noqa: E402

FP32_TOL = 2e-5
HALF_TOL = 1e-2


def _heads_first(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2)


def _run_both(case, initial_state: bool, dtype: torch.dtype = torch.float32):
    memory = case.memory
    cfg = memory.config
    gates = Gates(
        theta=_heads_first(case.gates["theta"]),
        eta=_heads_first(case.gates["eta"]) if cfg.uses_momentum else None,
        alpha=_heads_first(case.gates["alpha"]),
        delta=None,
    )
    b, h, d = case.q.shape[0], cfg.num_heads, cfg.head_dim
    gen = torch.Generator().manual_seed(5)
    if initial_state:
        w0 = (0.3 * torch.randn(b, h, d, d, generator=gen)).requires_grad_()
        s0 = (0.1 * torch.randn(b, h, d, d, generator=gen)).requires_grad_()
    else:
        w0 = memory.initial_state(b).weights[0]
        s0 = torch.zeros(b, h, d, d, requires_grad=True)
    leaves = [case.q, case.k, case.v, *case.gates.values(), w0, s0]
    names = ["q", "k", "v", *case.gates, "w0", "s0"]
    results = {}
    for name, implementation in (("torch", chunked), ("triton", triton_chunked)):
        # Both see the same (possibly half-rounded) values; the kernel gets them in ``dtype``.
        qkv = [_heads_first(x).to(dtype) for x in (case.q, case.k, case.v)]
        if name == "torch":
            qkv = [x.float() for x in qkv]
        state = MemoryState((w0,), (s0,) if cfg.uses_momentum else None)
        y, state = implementation(memory.rule, *qkv, gates, state)
        weights = torch.linspace(-1, 1, y.numel()).view_as(y)
        loss = (y.float() * weights).sum() + state.weights[0].square().sum()
        if state.momentum is not None:
            loss = loss + 0.5 * state.momentum[0].square().sum()
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        results[name] = (y.float(), state, grads)
    return results, names


def _compare(results, names, tol: float) -> None:
    (y_ref, s_ref, g_ref), (y, s, g) = results["torch"], results["triton"]
    assert_close("y", y, y_ref, tol)
    assert_close("state.weights", s.weights[0], s_ref.weights[0], tol)
    if s_ref.momentum is not None:
        assert_close("state.momentum", s.momentum[0], s_ref.momentum[0], tol)
    for name, a, b in zip(names, g, g_ref, strict=True):
        assert_close(f"grad {name}", a, b, tol)


@pytest.mark.parametrize("initial_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("chunk_size", [16, 32, 64])
@pytest.mark.parametrize("length", [1, 63, 100])
@pytest.mark.parametrize("algorithm", ["momentum", "gd"])
def test_linear_kernel_matches_chunked(algorithm, length, chunk_size, initial_state):
    case = make_case(
        "titans", "linear", length, chunk_size, head_dim=16, algorithm=algorithm, alpha_max=0.05
    )
    results, names = _run_both(case, initial_state)
    _compare(results, names, FP32_TOL)


@pytest.mark.parametrize("head_dim", [24, 32, 64, 96, 128])
def test_linear_kernel_head_dims(head_dim: int):
    """Above 64 the value columns split into blocks of 64 (summed gradients over blocks); 24 and
    96 are no powers of two: masked columns (96: a second, partly masked block)."""
    case = make_case("titans", "linear", 37, 16, batch=1, heads=1, head_dim=head_dim)
    results, names = _run_both(case, initial_state=True)
    _compare(results, names, FP32_TOL)


@pytest.mark.parametrize("algorithm", ["momentum", "gd"])
@pytest.mark.parametrize(("chunk_size", "head_dim"), [(1, 16), (8, 20), (24, 16), (48, 40)])
def test_linear_kernel_odd_chunks_and_heads(chunk_size: int, head_dim: int, algorithm: str):
    """Chunks and head dims that are no powers of two run as masked rows and columns."""
    case = make_case(
        "titans", "linear", 53, chunk_size, head_dim=head_dim, algorithm=algorithm, alpha_max=0.05
    )
    results, names = _run_both(case, initial_state=True)
    _compare(results, names, FP32_TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_linear_kernel_half_inputs(dtype: torch.dtype):
    """Half-precision q, k, v; the state and all accumulation stay fp32."""
    case = make_case("titans", "linear", 40, 16, head_dim=16)
    results, names = _run_both(case, initial_state=False, dtype=dtype)
    _compare(results, names, HALF_TOL)
    assert results["triton"][1].weights[0].dtype == torch.float32


def test_module_dispatch_and_streaming_through_the_kernels():
    """``backend="triton"`` runs the kernels inside NeuralMemory, pieces and all."""
    case = make_case("titans", "linear", 45, 16, head_dim=16)
    cfg = case.memory.config
    outputs = {}
    for backend in ("torch", "triton"):
        memory = NeuralMemory(cfg.replace(backend=backend))
        memory.load_state_dict(case.memory.state_dict())
        state, ys = None, []
        for sl in (slice(0, 20), slice(20, 21), slice(21, 45)):
            gates = {n: x[:, sl] for n, x in case.gates.items()}
            y, state = memory(case.q[:, sl], case.k[:, sl], case.v[:, sl], **gates, state=state)
            ys.append(y)
        outputs[backend] = (torch.cat(ys, 1), state)
    assert_close("y", outputs["triton"][0], outputs["torch"][0], FP32_TOL)
    assert_close("state", outputs["triton"][1].weights[0], outputs["torch"][1].weights[0], FP32_TOL)


def test_the_shipped_task_files_memories_run_on_the_kernels():
    """On a GPU ``backend="auto"`` takes the kernels for every task file (chunk 4 included)."""
    from titans_sci.tasks import load_task

    files = sorted((Path(__file__).parents[2] / "tasks").glob("*.toml"))
    assert files
    for path in files:
        memory = load_task(path).model.backbone.memory
        assert supports(NeuralMemory(memory).rule), path.name


def test_supports_and_forced_backend_errors():
    assert supports(NeuralMemory(MemoryConfig.preset("titans", architecture="linear")).rule)
    assert supports(NeuralMemory(MemoryConfig.preset("titans")).rule)
    assert not supports(NeuralMemory(MemoryConfig.preset("titans", depth=3)).rule)
    assert supports(NeuralMemory(MemoryConfig.preset("titans", head_dim=48, chunk_size=24)).rule)
    assert not supports(NeuralMemory(MemoryConfig.preset("titans", head_dim=160)).rule)
    assert not supports(NeuralMemory(MemoryConfig.preset("titans", chunk_size=65)).rule)
    assert not supports(NeuralMemory(MemoryConfig.preset("yaad", architecture="linear")).rule)
    case = make_case("yaad", "linear", 8, 4, head_dim=16)
    memory = NeuralMemory(case.memory.config.replace(backend="triton"))
    with pytest.raises(ValueError, match="kernels do not cover this memory"):
        memory(case.q, case.k, case.v, **case.gates)


# -- the MLP memory's kernels -----------------------------------------------

MLP_TOL = 1e-4  # measured ~1e-5: the MLP's LayerNorm amplifies fp32 reordering a little


def _mlp_both(case, initial_state: bool, dtype: torch.dtype = torch.float32):
    memory = case.memory
    cfg = memory.config
    gates = Gates(
        theta=_heads_first(case.gates["theta"]).detach(),
        eta=_heads_first(case.gates["eta"]).detach() if cfg.uses_momentum else None,
        alpha=_heads_first(case.gates["alpha"]).detach(),
        delta=None,
    )
    b = case.q.shape[0]
    state = memory.initial_state(b)
    if initial_state:
        gen = torch.Generator().manual_seed(7)
        weights = tuple(w + 0.05 * torch.randn(w.shape, generator=gen) for w in state.weights)
        momentum = tuple(0.05 * torch.randn(w.shape, generator=gen) for w in weights)
        state = MemoryState(weights, momentum if cfg.uses_momentum else None)
    qkv = [_heads_first(x).detach().to(dtype) for x in (case.q, case.k, case.v)]
    with torch.no_grad():  # the reference sees the same rounded values in fp32
        reference = chunked(memory.rule, *(x.float() for x in qkv), gates, state)
        kernel = triton_chunked(memory.rule, *qkv, gates, state)
    return reference, kernel


def _compare_mlp(reference, kernel, tol: float) -> None:
    (y_ref, s_ref), (y, s) = reference, kernel
    assert_close("y", y.float(), y_ref, tol)
    for i, (a, b) in enumerate(zip(s.weights, s_ref.weights, strict=True)):
        assert_close(f"state.weights[{i}]", a, b, tol)
    for i, (a, b) in enumerate(zip(s.momentum or (), s_ref.momentum or (), strict=True)):
        assert_close(f"state.momentum[{i}]", a, b, tol)


@pytest.mark.parametrize("initial_state", [False, True], ids=["learned-state", "given-state"])
@pytest.mark.parametrize("chunk_size", [16, 32, 64])
@pytest.mark.parametrize("length", [1, 63, 100])
@pytest.mark.parametrize("algorithm", ["momentum", "gd"])
def test_mlp_forward_kernel_matches_chunked(algorithm, length, chunk_size, initial_state):
    case = make_case("titans", "mlp", length, chunk_size, head_dim=16, algorithm=algorithm)
    _compare_mlp(*_mlp_both(case, initial_state), MLP_TOL)


@pytest.mark.parametrize("head_dim", [32, 64])
def test_mlp_forward_kernel_head_dims(head_dim: int):
    """Hidden width 4 * head_dim streams through blocks of 64 hidden units."""
    case = make_case("titans", "mlp", 37, 16, batch=1, heads=1, head_dim=head_dim)
    _compare_mlp(*_mlp_both(case, initial_state=True), MLP_TOL)


@pytest.mark.parametrize("algorithm", ["momentum", "gd"])
@pytest.mark.parametrize(
    ("chunk_size", "head_dim", "expansion"), [(8, 16, 4), (24, 24, 4), (16, 40, 2), (5, 20, 1)]
)
def test_mlp_forward_kernel_odd_chunks_and_widths(chunk_size, head_dim, expansion, algorithm):
    """Chunks, head dims and hidden widths that are no powers of two run masked (hidden 96: a
    second, partly masked block of 64; hidden 20: one masked block)."""
    case = make_case(
        "titans", "mlp", 45, chunk_size, head_dim=head_dim, expansion=expansion, algorithm=algorithm
    )
    _compare_mlp(*_mlp_both(case, initial_state=True), MLP_TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mlp_forward_kernel_half_inputs(dtype: torch.dtype):
    case = make_case("titans", "mlp", 40, 16, head_dim=16)
    _compare_mlp(*_mlp_both(case, initial_state=False, dtype=dtype), HALF_TOL)


def _mlp_gradients(case, initial_state: bool):
    """Outputs, final state and gradients of a probe loss through both paths, with autograd."""
    memory = case.memory
    cfg = memory.config
    b = case.q.shape[0]
    gen = torch.Generator().manual_seed(11)
    start = memory.initial_state(b)
    weights = tuple(
        (w + 0.05 * torch.randn(w.shape, generator=gen) if initial_state else w.detach())
        .clone()
        .requires_grad_()
        for w in start.weights
    )
    momentum = tuple(
        (0.05 * torch.randn(w.shape, generator=gen) if initial_state else torch.zeros_like(w))
        .clone()
        .requires_grad_()
        for w in weights
    )
    leaves = [case.q, case.k, case.v, *case.gates.values(), *weights, *momentum]
    names = ["q", "k", "v", *case.gates, "w1", "w2", "s1", "s2"]
    gates = Gates(
        theta=_heads_first(case.gates["theta"]),
        eta=_heads_first(case.gates["eta"]) if cfg.uses_momentum else None,
        alpha=_heads_first(case.gates["alpha"]),
        delta=None,
    )
    results = {}
    for name, implementation in (("torch", chunked), ("triton", triton_chunked)):
        state = MemoryState(weights, momentum if cfg.uses_momentum else None)
        qkv = [_heads_first(x) for x in (case.q, case.k, case.v)]
        y, state = implementation(memory.rule, *qkv, gates, state)
        loss = (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum()
        for part in (state.weights, state.momentum or ()):
            loss = loss + sum(w.square().sum() for w in part)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        results[name] = (y, state, grads)
    return results, names


@pytest.mark.parametrize("initial_state", [False, True], ids=["learned-state", "given-state"])
@pytest.mark.parametrize("chunk_size", [16, 32])
@pytest.mark.parametrize("length", [1, 63])
@pytest.mark.parametrize("algorithm", ["momentum", "gd"])
def test_mlp_kernels_gradients_match_chunked(algorithm, length, chunk_size, initial_state):
    """Forward and backward kernels of the MLP memory: every gradient, 2e-4 in fp32 (measured
    ~3e-6; the backward recomputes each chunk, in a different order than autograd)."""
    case = make_case("titans", "mlp", length, chunk_size, batch=1, head_dim=16, algorithm=algorithm)
    results, names = _mlp_gradients(case, initial_state)
    (y_ref, s_ref, g_ref), (y, s, g) = results["torch"], results["triton"]
    assert_close("y", y, y_ref, MLP_TOL)
    for i, (a, b) in enumerate(zip(s.weights, s_ref.weights, strict=True)):
        assert_close(f"state.weights[{i}]", a, b, MLP_TOL)
    for name, a, b in zip(names, g, g_ref, strict=True):
        assert_close(f"grad {name}", a, b, 2e-4)


@pytest.mark.parametrize(
    ("head_dim", "chunk_size", "expansion", "algorithm"),
    [
        (32, 64, 4, "momentum"),
        (64, 16, 4, "momentum"),
        (128, 16, 4, "momentum"),
        (24, 24, 4, "momentum"),
        (40, 8, 2, "gd"),
        (20, 5, 1, "momentum"),
        (16, 4, 4, "momentum"),  # the forecasting task files' memory
    ],
)
def test_mlp_kernels_gradients_wider_heads(head_dim, chunk_size, expansion, algorithm):
    """Every gradient at wide heads and at no-power-of-two heads, hidden widths and chunks."""
    case = make_case(
        "titans", "mlp", 70, chunk_size, batch=1, heads=1, head_dim=head_dim,
        expansion=expansion, algorithm=algorithm,
    )  # fmt: skip
    results, names = _mlp_gradients(case, initial_state=True)
    for name, a, b in zip(names, results["triton"][2], results["torch"][2], strict=True):
        assert_close(f"grad {name}", a, b, 2e-4)
