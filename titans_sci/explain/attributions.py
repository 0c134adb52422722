"""Which bases drive a DNA model's prediction: in-silico saturation mutagenesis (ISM) and
gradient x input, per base and class.

The score attributed, for class ``k`` of a classifier ``model(ids [B, T], mask) -> logits [B,
K]``, is its *centred logit averaged over both strands*::

    s_k(x) = mean over {x, reverse complement of x} of (logit_k - mean_j logit_j)

the quantity the classifier's strand-averaged prediction is made of, linear in the logits (so
a linear model's gradient is its weights) and free of softmax's arbitrary shift. For two
classes, ``s_1 - s_0`` is the log-odds averaged over strands. ``both=False`` scores the given
strand alone (for models that do not average strands).

- :func:`saturation_mutagenesis`: every base of a sequence changed to each other base
  (``3 T`` mutants, batched), ``ism [T, 4, K]`` = ``s(mutant) - s(sequence)`` (0 at the
  reference base). Its per-base track (:func:`ism_track`) is ``-mean`` over the three
  alternatives: how much the reference base adds to the score, as Basenji and Enformer read it.
- :func:`gradients`: ``d s_k / d onehot [T, 4, K]``, the input as a one-hot of ``ACGT``
  (the embedding is a lookup, so ``onehot @ E`` is exact); gradient x input is the gradient at
  the reference base (:func:`gradient_x_input`). The gradients are taken at the embedding's
  output with torch's autograd (a hook, one backward pass per class): a library such as
  captum would wrap the same two lines and adds a dependency.

Bases other than ``ACGT`` (``N``) are left as they are: their ISM row holds the four bases'
changes, their gradient x input is 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from titans_sci.data.tokens import NucleotideTokenizer, reverse_complement_ids

__all__ = [
    "BASES",
    "base_ids",
    "gradient_x_input",
    "gradients",
    "ism_track",
    "saturation_mutagenesis",
    "strand_scores",
]

#: The bases mutated and attributed, in the order of the last-but-one axis.
BASES = "ACGT"

Model = Callable[..., Tensor]


def base_ids() -> Tensor:
    """The token ids of ``A, C, G, T``: ``[4]``."""
    tokenizer = NucleotideTokenizer()
    return torch.tensor([tokenizer.encode(b)[0] for b in BASES])


def strand_scores(
    model: Model, ids: Tensor, mask: Tensor | None = None, both: bool = True
) -> Tensor:
    """``s [B, K]``: each class's centred logit, averaged over both strands of ``ids [B,
    T]`` (the given strand alone without ``both``)."""
    logits = model(ids, mask)
    if both:
        other = reverse_complement_ids(ids, NucleotideTokenizer(), mask)
        logits = (logits + model(other, mask)) / 2
    return logits - logits.mean(dim=-1, keepdim=True)


@torch.no_grad()
def saturation_mutagenesis(
    model: Model, ids: Tensor, batch_size: int = 512, both: bool = True
) -> Tensor:
    """``ism [T, 4, K]`` of one sequence ``ids [T]``: the score of each single-base mutant
    minus the sequence's (see the module docstring), the ``3 T`` mutants scored
    ``batch_size`` at a time; exactly 0 at each reference base."""
    if ids.dim() != 1:
        raise ValueError(f"ids has shape {tuple(ids.shape)}; expected one sequence [T]")
    bases = base_ids().to(ids.device)
    length = ids.shape[0]
    reference = strand_scores(model, ids[None], both=both)[0]  # [K]
    positions = torch.arange(length, device=ids.device).repeat_interleave(4)
    letters = bases.repeat(length)
    changed = letters != ids[positions]  # the mutants (not the reference base itself)
    positions, letters = positions[changed], letters[changed]
    ism = reference.new_zeros(length, 4, reference.shape[0])
    column = (letters[:, None] == bases).int().argmax(dim=1)
    for first in range(0, len(positions), batch_size):
        at, to = positions[first : first + batch_size], letters[first : first + batch_size]
        mutants = ids.repeat(len(at), 1)
        mutants[torch.arange(len(at)), at] = to
        scores = strand_scores(model, mutants, both=both) - reference
        ism[at, column[first : first + batch_size]] = scores
    return ism


def ism_track(ism: Tensor, ids: Tensor) -> Tensor:
    """The per-base ISM attribution ``[T, K]`` of ``ism [T, 4, K]`` for ``ids [T]``: minus the
    mean change over the three alternatives (over the four, at a base that is not ``ACGT``)."""
    alternative = ids[:, None] != base_ids().to(ids.device)  # [T, 4]
    count = alternative.sum(dim=1, keepdim=True)
    return -(ism * alternative[..., None]).sum(dim=1) / count


class _OneHotEmbedding:
    """Captures the embedding's output on each call as a leaf that requires grad, so the
    gradient of a score reaches it; restores the model on exit."""

    def __init__(self, tokens: nn.Embedding) -> None:
        self.tokens = tokens
        self.outputs: list[Tensor] = []
        self.handle: RemovableHandle | None = None

    def __enter__(self) -> list[Tensor]:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            leaf = output.detach().requires_grad_(True)
            self.outputs.append(leaf)
            return leaf

        self.handle = self.tokens.register_forward_hook(hook)
        return self.outputs

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        self.handle.remove()


def gradients(model: nn.Module, ids: Tensor, both: bool = True) -> Tensor:
    """``d s_k / d onehot [T, 4, K]`` of one sequence ``ids [T]``: the gradient of each
    class's score (see the module docstring) with respect to the one-hot of ``ACGT`` at each
    position. ``model`` embeds its ids with ``model.embedding.tokens`` (an ``nn.Embedding``:
    every DNA model here)."""
    if ids.dim() != 1:
        raise ValueError(f"ids has shape {tuple(ids.shape)}; expected one sequence [T]")
    tokens = model.embedding.tokens  # type: ignore[union-attr]
    assert isinstance(tokens, nn.Embedding)
    table = tokens.weight.detach()[base_ids().to(ids.device)]  # [4, D]: the bases' embeddings
    was_training = model.training
    model.eval()
    with torch.enable_grad(), _OneHotEmbedding(tokens) as outputs:
        scores = strand_scores(model, ids[None], both=both)[0]  # [K]
        per_class = []
        for k in range(scores.shape[0]):
            grads = torch.autograd.grad(scores[k], outputs, retain_graph=True)
            forward = grads[0][0] @ table.T  # [T, 4]
            if both:  # the reverse strand: position T-1-t, base complemented (ACGT -> TGCA)
                forward = forward + (grads[1][0] @ table.T).flip(0).flip(1)
            per_class.append(forward)
    model.train(was_training)
    return torch.stack(per_class, dim=-1)


def gradient_x_input(gradient: Tensor, ids: Tensor) -> Tensor:
    """Gradient x input ``[T, K]``: the gradient ``[T, 4, K]`` at each position's base (0
    where the base is not ``ACGT``)."""
    match = ids[:, None] == base_ids().to(ids.device)  # [T, 4]
    return (gradient * match[..., None]).sum(dim=1)
