"""Memory architectures as functions of explicit per-head weights.

Weights are a list of matrices ``W_l: [B, H, fan_in, fan_out]``; inputs ``x: [B, H, N, D]`` are row
vectors, so a layer is ``x @ W_l``. Every architecture is written once as :meth:`apply`, a forward
pass in which each linear layer is a callback. Plugging in ``x @ W_l`` gives the plain forward pass;
the chunked path plugs in the dual-form read of the per-token weights inside a chunk.

The surprise of a token is the gradient of the bias at the chunk-start weights. For every layer it
is a rank-1 matrix ``u^T d`` (layer input ``u``, gradient at the layer output ``d``);
:meth:`surprise_factors` returns these factors, computed by hand (checked against autograd by the
recurrent reference in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MemoryConfig

LayerFn = Callable[[int, Tensor], Tensor]
"""``layer(l, u) -> z``: the l-th linear map applied to layer input ``u: [B, H, N, fan_in]``."""


class MemoryArchitecture:
    """Base: the forward pass with a pluggable linear layer, and hand-written surprise factors."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config

    def apply(self, x: Tensor, layer: LayerFn) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, weights: Sequence[Tensor], x: Tensor) -> Tensor:
        """``M_W(x)``: ``x [B, H, N, D] -> [B, H, N, D]``, weights ``[B, H, fan_in, fan_out]``."""
        return self.apply(x, lambda i, u: u @ weights[i])

    def surprise_factors(
        self, weights: Sequence[Tensor], x: Tensor, out_grad: Callable[[Tensor], Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError


class LinearMemory(MemoryArchitecture):
    """``M(x) = x W``: a matrix memory, the delta-rule family."""

    def apply(self, x: Tensor, layer: LayerFn) -> Tensor:
        return layer(0, x)

    def surprise_factors(
        self, weights: Sequence[Tensor], x: Tensor, out_grad: Callable[[Tensor], Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Inputs ``[x]`` and output gradients ``[dl/dy]`` with ``y = x W``."""
        return [x], [out_grad(x @ weights[0])]


class MLPMemory(MemoryArchitecture):
    """``M(x) = x + LN(W_L s(... s(W_1 x)))``, GELU ``s``, LayerNorm without affine parameters."""

    def _norm(self, z: Tensor) -> Tensor:
        return F.layer_norm(z, z.shape[-1:], eps=self.config.ln_eps)

    def apply(self, x: Tensor, layer: LayerFn) -> Tensor:
        u = x
        last = self.config.depth - 1
        for i in range(last):
            u = F.gelu(layer(i, u))
        return x + self._norm(layer(last, u))

    def surprise_factors(
        self, weights: Sequence[Tensor], x: Tensor, out_grad: Callable[[Tensor], Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Layer inputs ``u_l`` and gradients ``d_l`` at layer outputs, so ``dl/dW_l = u_l^T d_l``.

        ``x: [B, H, N, D]``; ``out_grad(y)`` maps the memory output ``[B, H, N, D]`` to ``dl/dy``.
        """
        inputs: list[Tensor] = []
        pre_acts: list[Tensor] = []
        u = x
        last = self.config.depth - 1
        for i in range(last):
            inputs.append(u)
            z = u @ weights[i]
            pre_acts.append(z)
            u = F.gelu(z)
        inputs.append(u)
        o = u @ weights[last]
        # LayerNorm backward without affine: d_o = (g - mean(g) - n * mean(g * n)) / sigma.
        mean = o.mean(-1, keepdim=True)
        centred = o - mean
        inv_sigma = torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + self.config.ln_eps)
        normed = centred * inv_sigma
        g = out_grad(x + normed)
        d = (
            g - g.mean(-1, keepdim=True) - normed * (g * normed).mean(-1, keepdim=True)
        ) * inv_sigma
        deltas = [d]
        for i in range(last - 1, -1, -1):
            # aten's fused GELU backward: d * GELU'(z), itself differentiable.
            d = torch.ops.aten.gelu_backward(d @ weights[i + 1].transpose(-1, -2), pre_acts[i])
            deltas.append(d)
        deltas.reverse()
        return inputs, deltas


def build_architecture(config: MemoryConfig) -> MemoryArchitecture:
    return LinearMemory(config) if config.architecture == "linear" else MLPMemory(config)
