"""The chunked dual form equals the token-by-token recurrence with gradients frozen at chunk starts.

Every preset, both architectures, lengths 1, 63, 100 and 257 and chunk sizes 1, 16 and 64: outputs,
the final state (weights and momentum) and the gradients of a probe loss w.r.t. q, k, v, every gate
and the initial memory weights.

Why float64 for the full grid: a deep memory's inner loop is a non-linear dynamical system that can
amplify rounding differences exponentially over hundreds of per-token steps. We measured it: with
forget rates up to 0.1 the memory decays to tiny weights within 257 tokens, where the MLP's
LayerNorm (gain 1/sigma) and Moneta's normaliser (W = A / ||A||_4^2) blow rounding up from 1e-16 to
O(1), in float64 as in float32; Yaad's smooth sign with eps=1e-6 (slope 1000 at zero) does the same.
So the grid uses forget rates <= 0.01, steps <= 0.05 and eps=1e-2, a well-conditioned regime, where
both paths agree to 1e-8 relative to each tensor's largest entry in float64. Float32 is checked at
length 63: 1e-4 on outputs and states, 1e-3 on gradients (measured worst: ~1e-5 and ~1e-4).
Large steps and the default eps are checked over 37 tokens.
"""

from __future__ import annotations

import pytest
import torch

from memory_cases import ARCHITECTURES, PRESETS, assert_close, make_case, probe_loss, run

FLOAT64_TOL = 1e-8
FLOAT32_FORWARD_TOL = 1e-4
FLOAT32_GRAD_TOL = 1e-3
WELL_CONDITIONED = dict(theta_max=0.05, alpha_max=0.01, eps=1e-2)


def compare(case, tol_forward: float, tol_grad: float) -> None:
    results = {}
    for impl in ("recurrent", "chunked"):
        y, state = run(case, impl)
        grads = torch.autograd.grad(probe_loss(y, state), case.inputs(), allow_unused=True)
        results[impl] = (y, state, grads)
    (y_ref, s_ref, g_ref), (y, s, g) = results["recurrent"], results["chunked"]
    assert_close("y", y, y_ref, tol_forward)
    for i, (w, w_ref) in enumerate(zip(s.weights, s_ref.weights, strict=True)):
        assert_close(f"state.weights[{i}]", w, w_ref, tol_forward)
    assert (s.momentum is None) == (s_ref.momentum is None)
    for i, (m, m_ref) in enumerate(zip(s.momentum or (), s_ref.momentum or (), strict=True)):
        assert_close(f"state.momentum[{i}]", m, m_ref, tol_forward)
    for name, a, b in zip(case.names(), g, g_ref, strict=True):
        assert_close(f"grad {name}", a, b, tol_grad)


@pytest.mark.parametrize("chunk_size", [1, 16, 64])
@pytest.mark.parametrize("length", [1, 63, 100, 257])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("preset", PRESETS)
def test_chunked_equals_recurrent(preset: str, architecture: str, length: int, chunk_size: int):
    case = make_case(
        preset, architecture, length, chunk_size, dtype=torch.float64, **WELL_CONDITIONED
    )
    compare(case, FLOAT64_TOL, FLOAT64_TOL)


@pytest.mark.parametrize("chunk_size", [1, 16, 64])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("preset", PRESETS)
def test_chunked_equals_recurrent_float32(preset: str, architecture: str, chunk_size: int):
    case = make_case(preset, architecture, 63, chunk_size, dtype=torch.float32, **WELL_CONDITIONED)
    compare(case, FLOAT32_FORWARD_TOL, FLOAT32_GRAD_TOL)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_chunked_equals_recurrent_large_steps(architecture: str):
    """The paper's default eps and large steps, over a length the dynamics keep well-conditioned."""
    for preset in PRESETS:
        case = make_case(preset, architecture, 37, 8, dtype=torch.float64, theta_max=0.5)
        compare(case, FLOAT64_TOL, FLOAT64_TOL)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_elastic_net_retention(architecture: str):
    """The fourth retention (not in a preset) through both paths, with momentum."""
    case = make_case(
        "titans",
        architecture,
        41,
        8,
        dtype=torch.float64,
        retention="elastic",
        elastic_threshold=0.01,
    )
    compare(case, FLOAT64_TOL, FLOAT64_TOL)


@pytest.mark.parametrize("bias", ["lp", "huber", "value_robust"])
def test_every_bias_with_momentum(bias: str):
    """Biases are swappable: each with Titans' momentum and decay."""
    case = make_case("titans", "mlp", 29, 8, dtype=torch.float64, bias=bias, p=2.5)
    compare(case, FLOAT64_TOL, FLOAT64_TOL)


def test_deeper_mlp_memory():
    case = make_case("titans", "mlp", 23, 8, dtype=torch.float64, depth=3)
    compare(case, FLOAT64_TOL, FLOAT64_TOL)


@pytest.mark.parametrize("length", [255, 256, 300])
def test_largest_chunk_size(length: int):
    """Chunk size 256 (the largest allowed): one partial chunk, one exact chunk, and a tail."""
    case = make_case("titans", "mlp", length, 256, dtype=torch.float64, **WELL_CONDITIONED)
    compare(case, FLOAT64_TOL, FLOAT64_TOL)


@pytest.mark.parametrize("length", [63, 100])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("preset", PRESETS)
def test_channel_wise_steps(preset: str, architecture: str, length: int):
    """Channel-wise step sizes (a weight per value channel on the surprise) through both paths:
    outputs, states and every gradient, the channel weights' included."""
    case = make_case(
        preset,
        architecture,
        length,
        16,
        dtype=torch.float64,
        channel_wise=True,
        **WELL_CONDITIONED,
    )
    compare(case, FLOAT64_TOL, FLOAT64_TOL)
