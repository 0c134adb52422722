"""The gates of a chunk unrolled into matrices: the maths the PyTorch paths and the kernels share.

Only tensors in and out, no import from the rest of :mod:`titans_sci.memory` or from the Triton
kernels (:mod:`titans_sci.kernels`), so both sides import it without an import circle. The
equations are in :mod:`titans_sci.memory.chunk`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ChunkGates", "chunk_gates", "decay_matrix", "padded_chunk_gates"]


def decay_matrix(a: Tensor) -> Tensor:
    """``P[..., t, i] = prod_{i < j <= t} a[..., j]`` for ``i <= t``, zero above the diagonal.

    ``a: [..., n] -> [..., n, n]``; an exact cumulative product (no logarithms), so factors equal
    to zero are handled.
    """
    n = a.shape[-1]
    strictly_lower = torch.ones(n, n, dtype=torch.bool, device=a.device).tril(-1)
    factors = torch.where(strictly_lower, a.unsqueeze(-1), torch.ones_like(a).unsqueeze(-1))
    return torch.cumprod(factors, dim=-2).tril()


@dataclass(frozen=True)
class ChunkGates:
    """The gates of a chunk of ``n`` tokens, unrolled (see :mod:`titans_sci.memory.chunk`).

    ``decay = P`` and ``coeff = G``: ``[..., n, n]``; ``beta``: ``[..., n]``. With momentum also
    ``carry = Q: [..., n, n]``, ``mom = m: [..., n]`` and ``f: [..., n]``; else ``None``.
    """

    decay: Tensor
    beta: Tensor
    coeff: Tensor
    carry: Tensor | None = None
    mom: Tensor | None = None
    f: Tensor | None = None

    def momentum_rows(self) -> tuple[Tensor, Tensor, Tensor]:
        """``Q, m, f`` (``carry, mom, f``) of gates unrolled with momentum (``eta`` given)."""
        if self.carry is None or self.mom is None or self.f is None:
            raise ValueError("these chunk gates were unrolled without momentum (eta None)")
        return self.carry, self.mom, self.f


def chunk_gates(theta: Tensor, alpha: Tensor, eta: Tensor | None) -> ChunkGates:
    """``P, beta, G`` (and ``Q, m, f`` when ``eta`` is given) from gates ``[..., n]``."""
    keep = 1 - alpha
    decay = decay_matrix(keep)
    beta = torch.cumprod(keep, dim=-1)
    theta_cols = theta.unsqueeze(-2)
    if eta is None:
        return ChunkGates(decay, beta, decay * theta_cols)
    carry = decay_matrix(eta)
    mom = torch.cumprod(eta, dim=-1)
    f = (decay @ mom.unsqueeze(-1)).squeeze(-1)
    return ChunkGates(decay, beta, (decay @ carry) * theta_cols, carry, mom, f)


def padded_chunk_gates(
    theta: Tensor, alpha: Tensor, eta: Tensor | None, chunk: int, length: int
) -> tuple[Tensor, ...]:
    """``G, f, beta`` per chunk and the end-of-chunk rows, for gates ``[B, H, length]`` (``eta``
    ``None`` for plain GD) padded to whole chunks: ``G: [B, H, N, C, C]``; ``f, beta, g_end,
    c_end: [B, H, N, C]``; ``f_end, beta_end, m_end: [B, H, N]`` (``c_end`` is ``theta`` times the
    carry row ``Q[n-1, :]``).

    Padded tokens get theta 0, eta 1 and alpha 0; the end rows are taken at each chunk's last
    real token, so padding changes nothing."""
    pad = -length % chunk
    eta = torch.zeros_like(theta) if eta is None else eta  # gd: no momentum
    theta, alpha = F.pad(theta, (0, pad)), F.pad(alpha, (0, pad))
    eta = F.pad(eta, (0, pad), value=1.0)
    b, h, t = theta.shape
    n = t // chunk
    theta, alpha, eta = (x.reshape(b, h, n, chunk) for x in (theta, alpha, eta))
    unrolled = chunk_gates(theta, alpha, eta)
    G, beta = unrolled.coeff, unrolled.beta
    carry, mom, f = unrolled.momentum_rows()
    ends = torch.full((n,), chunk - 1, dtype=torch.long, device=theta.device)
    ends[-1] = (length - 1) % chunk
    chunks = torch.arange(n, device=theta.device)

    def at_ends(x: Tensor) -> Tensor:
        return x[:, :, chunks, ends]

    c_end = at_ends(carry) * theta
    return G, f, beta, at_ends(G), c_end, at_ends(f), at_ends(beta), at_ends(mom)
