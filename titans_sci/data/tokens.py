"""DNA as token ids: the single-nucleotide tokenizer (five special tokens, then ``A C G T N``),
the reverse complement of ids, and padding id lists into a batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from titans_sci.data.dna import validate_sequence
from titans_sci.padding import reversal

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
PAD_ID, CLS_ID, SEP_ID, MASK_ID, UNK_ID = range(len(SPECIAL_TOKENS))


def _as_id_list(ids: Sequence[int] | Tensor) -> list[int]:
    """Turn a 1-D tensor or a sequence of ints into a list of Python ints."""
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise ValueError(f"expected 1-D ids, got shape {tuple(ids.shape)}")
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


class NucleotideTokenizer:
    """One token per base: specials ``0..4``, then ``A=5, C=6, G=7, T=8, N=9``.

    ``U`` maps to ``T``; IUPAC ambiguity codes ``RYKMSWBDHV`` map to ``N``; lowercase
    (soft-masked) bases map to the id of their uppercase form. With ``keep_soft_mask=True``,
    :meth:`encode_with_mask` also reports which positions were lowercase.
    """

    BASES: tuple[str, ...] = ("A", "C", "G", "T", "N")

    def __init__(self, keep_soft_mask: bool = False) -> None:
        self.keep_soft_mask = keep_soft_mask
        self.tokens: tuple[str, ...] = SPECIAL_TOKENS + self.BASES
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        upper = {base: self.token_to_id[base] for base in self.BASES}
        upper["U"] = upper["T"]  # as BASE_CODE reads it
        upper.update(dict.fromkeys("RYKMSWBDHV", upper["N"]))
        self._char_to_id = {**upper, **{c.lower(): i for c, i in upper.items()}}

    @property
    def vocab_size(self) -> int:
        """Number of ids (specials + ``ACGTN``): 10."""
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        """Id of ``[PAD]``."""
        return PAD_ID

    def encode(self, seq: str) -> list[int]:
        """Map each base of ``seq`` to its id; length ``len(seq)``.

        Raises:
            ValueError: a character that is not an IUPAC nucleotide code (1-based position).
        """
        try:
            return [self._char_to_id[c] for c in seq]
        except KeyError:
            validate_sequence(seq, source="NucleotideTokenizer.encode", record="<input>")
            raise  # unreachable: validate_sequence raises for every unknown character

    def encode_with_mask(self, seq: str) -> tuple[list[int], list[bool]]:
        """Return ``(ids, soft_mask)``, both of length ``len(seq)``; True = lowercase base.

        Raises:
            ValueError: if the tokenizer was built with ``keep_soft_mask=False``.
        """
        if not self.keep_soft_mask:
            raise ValueError("encode_with_mask needs NucleotideTokenizer(keep_soft_mask=True)")
        return self.encode(seq), [c.islower() for c in seq]

    def decode(self, ids: Sequence[int] | Tensor, soft_mask: Sequence[bool] | None = None) -> str:
        """Map ids back to bases (uppercase, or lowercase where ``soft_mask`` is True).

        ``[PAD]``, ``[CLS]`` and ``[SEP]`` are skipped; ``[MASK]`` and ``[UNK]`` stand for an
        unknown base and decode to ``N``. Ambiguity codes and ``U`` do not survive a round trip
        (they decode to ``N`` and ``T``).
        """
        id_list = _as_id_list(ids)
        mask = [False] * len(id_list) if soft_mask is None else list(soft_mask)
        if len(mask) != len(id_list):
            raise ValueError(f"soft_mask has length {len(mask)}, ids have {len(id_list)}")
        out = []
        for i, lower in zip(id_list, mask, strict=True):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i in (PAD_ID, CLS_ID, SEP_ID):
                continue
            base = "N" if i in (MASK_ID, UNK_ID) else self.tokens[i]
            out.append(base.lower() if lower else base)
        return "".join(out)


def _complement_table(tokenizer: NucleotideTokenizer) -> Tensor:
    """Lookup ``[vocab_size]`` long: id -> id of its complement (specials and N unchanged)."""
    table = torch.arange(tokenizer.vocab_size)
    for a, b in (("A", "T"), ("C", "G")):
        ia, ib = tokenizer.token_to_id[a], tokenizer.token_to_id[b]
        table[ia], table[ib] = ib, ia
    return table


def reverse_complement_ids(
    ids: Tensor, tokenizer: NucleotideTokenizer, mask: Tensor | None = None
) -> Tensor:
    """Reverse complement single-nucleotide ids within the real (unpadded) part of each row.

    Args:
        ids: ``[B, T]`` long ids from a :class:`NucleotideTokenizer`.
        tokenizer: the tokenizer that produced ``ids``.
        mask: ``[B, T]`` bool, True = real token; ``None`` = every position is real. Only the
            real positions are reversed (in their own order), so left or right padding stays
            where it is.

    Returns:
        ``[B, T]`` long: A<->T, C<->G, N and special ids unchanged, real tokens reversed.
    """
    if not isinstance(tokenizer, NucleotideTokenizer):
        raise TypeError("reverse_complement_ids needs single-nucleotide ids (NucleotideTokenizer)")
    if ids.dim() != 2:
        raise ValueError(f"ids must be [B, T], got shape {tuple(ids.shape)}")
    if mask is None:
        mask = torch.ones_like(ids, dtype=torch.bool)
    if mask.shape != ids.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool of shape {tuple(ids.shape)}")
    complemented = _complement_table(tokenizer).to(ids.device)[ids]
    reversed_ids = complemented.gather(1, reversal(mask, ids.shape[1]))
    return torch.where(mask, reversed_ids, ids)


def pad_batch(
    id_lists: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[Tensor, Tensor]:
    """Pad id lists to a common length.

    Args:
        id_lists: ``B`` lists of ids (may differ in length).
        pad_id: id written into padding positions.
        side: ``"right"`` (pad after the tokens) or ``"left"`` (pad before).

    Returns:
        ``(ids, mask)``: ``[B, T]`` long and ``[B, T]`` bool (True = real token), with ``T``
        the longest length.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if len(id_lists) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    width = max(len(ids) for ids in id_lists)
    out = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.bool)
    for row, ids in enumerate(id_lists):
        n = len(ids)
        start = 0 if side == "right" else width - n
        out[row, start : start + n] = torch.as_tensor(list(ids), dtype=torch.long)
        mask[row, start : start + n] = True
    return out, mask
