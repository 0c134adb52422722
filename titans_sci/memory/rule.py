"""What both implementations share: the rule (architecture, bias, retention), gates, errors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .architectures import MemoryArchitecture, build_architecture
from .config import MemoryConfig
from .objectives import AttentionalBias, RetentionMap


class NonFiniteSurpriseError(FloatingPointError):
    """The inner loop diverged: a token's surprise (memory gradient) is not finite."""

    def __init__(self, step: int, batch: int, head: int, where: str = "") -> None:
        self.step, self.batch, self.head, self.where = step, batch, head, where
        place = f" in {where}" if where else ""
        super().__init__(
            f"non-finite surprise{place} at step {step} (batch {batch}, head {head}): the "
            "memory's inner loop diverged; lower the step size theta or raise the forget gate alpha"
        )

    def moved(self, steps: int = 0, where: str | None = None) -> NonFiniteSurpriseError:
        """The same error with the step shifted by ``steps`` and/or a new location."""
        return NonFiniteSurpriseError(
            self.step + steps, self.batch, self.head, self.where if where is None else where
        )


@dataclass(frozen=True)
class MemoryRule:
    """The update rule of one memory: a config and the pieces it selects."""

    config: MemoryConfig
    architecture: MemoryArchitecture
    bias: AttentionalBias
    retention: RetentionMap

    @classmethod
    def from_config(cls, config: MemoryConfig) -> MemoryRule:
        return cls(
            config, build_architecture(config), AttentionalBias(config), RetentionMap(config)
        )


@dataclass(frozen=True)
class Gates:
    """Per token, per head gates in the internal layout ``[B, H, T]``.

    ``theta``: step size; ``eta``: momentum (``None`` for plain GD); ``alpha``: forget rate;
    ``delta``: Huber threshold or value radius (``None`` for biases that do not use it);
    ``channel``: ``[B, H, T, D]`` channel-wise step sizes relative to ``theta``, a weight on
    each value channel of the surprise's output gradient (``None``: 1 for every channel).
    """

    theta: Tensor
    eta: Tensor | None
    alpha: Tensor
    delta: Tensor | None
    channel: Tensor | None = None

    def cat(self, later: Gates) -> Gates:
        """These gates followed by ``later`` along time."""

        def join(a: Tensor | None, b: Tensor | None, dim: int = -1) -> Tensor | None:
            return None if a is None or b is None else torch.cat([a, b], dim=dim)

        return Gates(
            torch.cat([self.theta, later.theta], dim=-1),
            join(self.eta, later.eta),
            torch.cat([self.alpha, later.alpha], dim=-1),
            join(self.delta, later.delta),
            join(self.channel, later.channel, dim=-2),  # [B, H, T, D]: time is dim -2
        )

    def split(self, sizes: list[int]) -> list[Gates]:
        """Consecutive pieces of ``sizes`` tokens (``torch.split`` along time)."""

        def cut(x: Tensor | None, dim: int = -1) -> list[Tensor | None]:
            return [None] * len(sizes) if x is None else list(x.split(sizes, dim=dim))

        parts = zip(
            self.theta.split(sizes, dim=-1),
            cut(self.eta),
            self.alpha.split(sizes, dim=-1),
            cut(self.delta),
            cut(self.channel, dim=-2),  # [B, H, T, D]: time is dim -2
            strict=True,
        )
        return [Gates(*gates) for gates in parts]

    def detach(self) -> Gates:
        """The same gates, cut from the autograd graph."""

        def cut(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.detach()

        return Gates(
            self.theta.detach(),
            cut(self.eta),
            self.alpha.detach(),
            cut(self.delta),
            cut(self.channel),
        )

    def weigh(self, grad: Tensor) -> Tensor:
        """The surprise's output gradient ``[B, H, n, D]`` weighed by the channel-wise step sizes
        (unchanged without them)."""
        return grad if self.channel is None else grad * self.channel


def raise_if_not_finite(bad: Tensor, offset: int = 0) -> None:
    """``bad: [B, H, N]`` marks tokens with a non-finite surprise; raise for the earliest one."""
    if bool(bad.any()):
        where = torch.nonzero(bad)
        b, h, t = (int(i) for i in where[where[:, 2].argmin()])
        raise NonFiniteSurpriseError(step=offset + t, batch=b, head=h)
