"""Baselines run side by side with the Titans DNA classifier.

* :class:`KmerLogisticRegression`: strand-symmetric k-mer frequencies + scikit-learn
  ``StandardScaler`` -> ``LogisticRegression``; takes raw sequence strings.
* :class:`SmallCNN`: embedding -> stacked 1-D convolutions -> masked global max pool -> linear;
  same call as :class:`~titans_sci.models.dna_classifier.DNAClassifier`
  (``forward(ids, mask) -> logits``, ``predict_proba(ids, mask)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from titans_sci.data.dna import BASES, base_codes
from titans_sci.data.tokens import PAD_ID

__all__ = ["KmerLogisticRegression", "SmallCNN", "all_kmers", "kmer_features"]


def all_kmers(k: int) -> list[str]:
    """All ``4**k`` ACGT k-mers in lexicographic order (index = base-4 number, A=0 .. T=3)."""
    return ["".join(p) for p in product(BASES, repeat=k)]


def _rc_permutation(k: int) -> np.ndarray:
    """``perm[i]`` = index of the reverse complement of k-mer ``i``."""
    idx = np.arange(4**k)
    digits = (idx[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4  # [4^k, k], most significant first
    rc_digits = 3 - digits[:, ::-1]
    return rc_digits @ (4 ** np.arange(k - 1, -1, -1))


def kmer_features(sequences: Sequence[str], k: int) -> np.ndarray:
    """Strand-symmetric k-mer frequencies ``[N, 4**k]`` (float64).

    Counts overlapping k-mers of each sequence plus those of its reverse complement (case
    ignored, ``U`` read as ``T``; any k-mer holding another letter is skipped), then divides
    each row by its total (rows with no valid k-mer stay zero). A sequence and its reverse
    complement get identical rows.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_kmers = 4**k
    n = len(sequences)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    codes = base_codes("".join(sequences)).astype(np.int64)
    total = codes.size
    counts = np.zeros((n, n_kmers), dtype=np.float64)
    if total >= k:
        n_win = total - k + 1
        # Window start positions valid iff window lies in one sequence and holds only ACGT.
        seq_id = np.repeat(np.arange(n), lengths)
        ends = np.cumsum(lengths)
        valid = np.ones(n_win, dtype=bool)
        index = np.zeros(n_win, dtype=np.int64)
        for j in range(k):
            c = codes[j : j + n_win]
            valid &= c < 4
            index = index * 4 + np.where(c < 4, c, 0)
        starts = np.arange(n_win)
        valid &= starts + k <= ends[seq_id[:n_win]]
        flat = seq_id[:n_win][valid] * n_kmers + index[valid]
        counts = np.bincount(flat, minlength=n * n_kmers).reshape(n, n_kmers).astype(np.float64)
    counts = counts + counts[:, _rc_permutation(k)]
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


class KmerLogisticRegression:
    """k-mer frequency features (both strands) -> ``StandardScaler`` -> ``LogisticRegression``.

    Args:
        k: k-mer length (``4**k`` features).
        C: inverse L2 regularisation strength of the logistic regression.
        max_iter: solver iteration limit.
    """

    def __init__(self, k: int = 4, C: float = 1.0, max_iter: int = 1000) -> None:
        self.k = k
        self.C = C
        self.max_iter = max_iter
        self.pipeline = Pipeline(
            [
                ("scale", StandardScaler()),
                ("lr", LogisticRegression(C=C, max_iter=max_iter, random_state=0)),
            ]
        )

    def features(self, sequences: Sequence[str]) -> np.ndarray:
        """The ``[N, 4**k]`` feature matrix of ``sequences`` (see :func:`kmer_features`)."""
        return kmer_features(sequences, self.k)

    def fit(
        self, sequences: Sequence[str], labels: Sequence[int] | np.ndarray
    ) -> KmerLogisticRegression:
        """Fit on sequence strings and integer labels ``0..K-1``; returns ``self``."""
        self.pipeline.fit(self.features(sequences), np.asarray(labels))
        return self

    @property
    def classes_(self) -> np.ndarray:
        """Class labels seen in :meth:`fit`, in column order of :meth:`predict_proba`."""
        return self.pipeline.classes_

    def predict_proba(self, sequences: Sequence[str]) -> np.ndarray:
        """Class probabilities ``[N, K]``."""
        return self.pipeline.predict_proba(self.features(sequences))

    def predict(self, sequences: Sequence[str]) -> np.ndarray:
        """Most probable class label per sequence ``[N]``."""
        return self.pipeline.predict(self.features(sequences))


class SmallCNN(nn.Module):
    """``ids [B, T]`` (+ ``mask [B, T]``, True = real token) -> logits ``[B, num_classes]``.

    Embedding (``padding_idx`` = ``pad_id``) -> ``layers`` x [Conv1d (same padding) -> ReLU ->
    Dropout] -> global max pool over real positions only -> Linear. Padded positions are zeroed
    before every convolution and excluded from the pool, so their content never affects the
    logits.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        dim: int = 64,
        kernel_size: int = 9,
        layers: int = 2,
        dropout: float = 0.1,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2) for _ in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.bool)
        keep = mask[:, None, :].to(torch.float32)  # [B, 1, T]
        h = self.embedding(ids).transpose(1, 2) * keep  # [B, D, T]
        for conv in self.convs:
            h = self.dropout(torch.relu(conv(h))) * keep
        h = h.masked_fill(~mask[:, None, :], float("-inf")).amax(dim=-1)
        h = torch.nan_to_num(h, neginf=0.0)  # all-padding rows
        return self.out(h)

    @torch.no_grad()
    def predict_proba(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class probabilities ``[B, K]`` (softmax of the logits, no gradient)."""
        return torch.softmax(self(ids, mask), dim=-1)
