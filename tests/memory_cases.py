"""Inputs and comparisons shared by the memory tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from titans_sci.memory import Gates, MemoryConfig, MemoryState, NeuralMemory, chunked, recurrent

PRESETS = ("titans", "moneta", "yaad", "memora")
ARCHITECTURES = ("linear", "mlp")
GATES = ("theta", "eta", "alpha", "delta")


@dataclass
class Case:
    memory: NeuralMemory
    q: Tensor
    k: Tensor
    v: Tensor
    gates: dict[str, Tensor]

    def inputs(self) -> list[Tensor]:
        return [self.q, self.k, self.v, *self.gates.values(), *self.memory.parameters()]

    def names(self) -> list[str]:
        params = [f"initial_weights[{i}]" for i, _ in enumerate(self.memory.parameters())]
        return ["q", "k", "v", *self.gates, *params]


def make_case(
    preset: str = "titans",
    architecture: str = "mlp",
    length: int = 16,
    chunk_size: int = 4,
    *,
    batch: int = 2,
    heads: int = 2,
    head_dim: int = 8,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    theta_max: float = 0.5,
    alpha_max: float = 0.1,
    channel_wise: bool = False,
    **overrides: object,
) -> Case:
    """A memory and random inputs: l2-normalised q and k, gates in their usual ranges; with
    ``channel_wise``, also channel-wise step sizes ``[B, T, H, D]`` in [0, 2)."""
    gen = torch.Generator().manual_seed(seed)
    cfg = MemoryConfig.preset(
        preset,
        num_heads=heads,
        head_dim=head_dim,
        chunk_size=chunk_size,
        architecture=architecture,
        **overrides,
    )
    torch.manual_seed(seed)
    memory = NeuralMemory(cfg).to(dtype)
    shape = (batch, length, heads, head_dim)

    def rand(*size: int) -> Tensor:
        return torch.rand(*size, generator=gen, dtype=dtype)

    def randn(*size: int) -> Tensor:
        return torch.randn(*size, generator=gen, dtype=dtype)

    q = F.normalize(randn(*shape), dim=-1)
    k = F.normalize(randn(*shape), dim=-1)
    v = randn(*shape)
    gate_shape = shape[:3]
    gates = {
        "theta": theta_max * (0.1 + 0.9 * rand(*gate_shape)),
        "eta": 0.2 + 0.7 * rand(*gate_shape),
        "alpha": alpha_max * rand(*gate_shape),
        "delta": 0.5 + 2.0 * rand(*gate_shape),
    }
    if channel_wise:
        gates["channel"] = 2.0 * rand(*shape)
    for x in (q, k, v, *gates.values()):
        x.requires_grad_()
    return Case(memory, q, k, v, gates)


def run(case: Case, impl: str) -> tuple[Tensor, MemoryState]:
    """One implementation called directly on the case (state: after the last token)."""
    memory = case.memory
    cfg = memory.config

    def heads_first(x: Tensor) -> Tensor:
        return x.transpose(1, 2)

    gates = Gates(
        theta=heads_first(case.gates["theta"]),
        eta=heads_first(case.gates["eta"]) if cfg.uses_momentum else None,
        alpha=heads_first(case.gates["alpha"]),
        delta=heads_first(case.gates["delta"]) if cfg.needs_delta else None,
        channel=heads_first(case.gates["channel"]) if "channel" in case.gates else None,
    )
    state = memory.initial_state(case.q.shape[0], case.q.dtype)
    implementation = {"chunked": chunked, "recurrent": recurrent}[impl]
    qkv = (heads_first(x) for x in (case.q, case.k, case.v))
    y, state = implementation(memory.rule, *qkv, gates, state)
    return heads_first(y), state


def probe_loss(y: Tensor, state: MemoryState) -> Tensor:
    """A scalar that depends on every output and every state entry with distinct weights."""
    weights = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    loss = (y * weights).sum()
    for part in (state.weights, state.momentum or ()):
        for i, w in enumerate(part):
            loss = loss + (i + 1) * (w * w.detach().sign()).mean()
    return loss


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """``max |a - e| / max |e|`` (``max |a - e|`` when ``e`` is all zeros)."""
    actual, expected = actual.detach(), expected.detach()
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual - expected).abs().max() / scale)


def assert_close(name: str, actual: Tensor | None, expected: Tensor | None, tol: float) -> None:
    assert (actual is None) == (expected is None), f"{name}: one gradient is None"
    if actual is None:
        return
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    err = relative_error(actual, expected)
    assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"
