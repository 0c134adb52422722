"""The embedding of DNA token ids (:mod:`titans_sci.data.tokens`), with an optional soft-mask
(lowercase) channel."""

from __future__ import annotations

from torch import Tensor, nn

from titans_sci.data.tokens import PAD_ID


class DNAEmbedding(nn.Module):
    """Token embedding with an optional soft-mask (lowercase) channel.

    The soft-mask channel is an ``nn.Embedding(2, dim, padding_idx=0)`` added to the token
    embedding: uppercase positions add zero, soft-masked positions add a learned vector. So
    ``soft_mask=None`` equals an all-False mask, and padding positions stay zero.
    """

    def __init__(
        self, vocab_size: int, dim: int, pad_id: int = PAD_ID, soft_mask_channel: bool = False
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.soft_mask = nn.Embedding(2, dim, padding_idx=0) if soft_mask_channel else None

    def forward(self, ids: Tensor, soft_mask: Tensor | None = None) -> Tensor:
        """Embed ``ids [B, T]`` (and ``soft_mask [B, T]`` bool, True = lowercase) to
        ``[B, T, dim]``."""
        out = self.tokens(ids)
        if soft_mask is not None:
            if self.soft_mask is None:
                raise ValueError("soft_mask given but DNAEmbedding has soft_mask_channel=False")
            if soft_mask.shape != ids.shape:
                raise ValueError(
                    f"soft_mask shape {tuple(soft_mask.shape)} != ids shape {tuple(ids.shape)}"
                )
            out = out + self.soft_mask(soft_mask.long())
        return out
