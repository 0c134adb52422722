"""Which bases drive a DNA model's prediction: in-silico saturation mutagenesis (ISM),
gradient x input and integrated gradients, per base and class.

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
- :func:`integrated_gradients`: ``ig [T, K]``, the gradient averaged along the straight path
  from a baseline to the sequence, times the difference (Sundararajan et al. 2017). The
  baseline holds, at each ``ACGT`` position, the mean of the four bases' embeddings (the
  one-hot's uniform mix ``0.25``: no base preferred), so the attributions sum to ``s(x) -
  s(baseline)`` (completeness, up to the ``steps``-point midpoint rule) and a base whose four
  letters score alike carries none: the flaw of gradient x input on one-hot DNA, whose
  gradient keeps a part common to the four letters (Majdandzic et al. 2023).

Bases other than ``ACGT`` (``N``) are left as they are: their ISM row holds the four bases'
changes, their gradient x input is 0.

Every function takes a :class:`DNAModel`: how attributions see a model (its score, its
embedding, its encoding). :func:`classifier_view` is a DNA classifier's (the scores above);
:func:`annotator_view` is a per-base genome annotator's, whose score of label ``k`` is the mean
over the sequence's bases of its centred logit (the annotator reads both strands itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from titans_sci.data.dna import base_codes
from titans_sci.data.tokens import NucleotideTokenizer, reverse_complement_ids
from titans_sci.models.dna_classifier import DNAClassifier
from titans_sci.models.genome_annotator import GenomeAnnotator

__all__ = [
    "BASES",
    "DNAModel",
    "annotator_view",
    "base_ids",
    "baseline_scores",
    "classifier_view",
    "gradient_x_input",
    "gradients",
    "integrated_gradients",
    "ism_track",
    "saturation_mutagenesis",
    "strand_scores",
    "view_of",
]

#: The bases mutated and attributed, in the order of the last-but-one axis.
BASES = "ACGT"

Model = Callable[..., Tensor]


@dataclass(frozen=True)
class DNAModel:
    """A DNA model as attributions see it.

    Attributes:
        score: ``ids [B, T] -> [B, K]``, the quantity attributed, per class.
        embedding: the lookup that embeds ``ids`` (its output is where gradients are taken);
            called once per strand the score reads, the sequence first, then its reverse
            complement, each from position 0.
        alphabet: the ids of ``A, C, G, T`` (``[4]``).
        encode: a sequence's ids ``[T]``.
        strands: 2 where the score reads the reverse complement too, else 1.
        module: the model (put in eval mode while attributing).
    """

    score: Callable[[Tensor], Tensor]
    embedding: nn.Embedding
    alphabet: Tensor
    encode: Callable[[str], Tensor]
    strands: int
    module: nn.Module


def base_ids() -> Tensor:
    """The classifier's token ids of ``A, C, G, T``: ``[4]``."""
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


def classifier_view(model: nn.Module, both: bool = True) -> DNAModel:
    """A sequence classifier ``model(ids, mask) -> logits`` (embedding its ids with
    ``model.embedding.tokens``: every DNA classifier here) scored by :func:`strand_scores`."""
    tokenizer = NucleotideTokenizer()
    tokens = model.embedding.tokens  # type: ignore[union-attr]
    assert isinstance(tokens, nn.Embedding)
    return DNAModel(
        score=lambda ids: strand_scores(model, ids, both=both),
        embedding=tokens,
        alphabet=base_ids(),
        encode=lambda sequence: torch.tensor(tokenizer.encode(sequence)),
        strands=2 if both else 1,
        module=model,
    )


def annotator_view(model: GenomeAnnotator) -> DNAModel:
    """A per-base genome annotator: the score of label ``k`` is the mean over the bases of
    its centred logit (both readings, as the annotator combines them)."""

    def score(codes: Tensor) -> Tensor:
        logits = model(codes)  # [B, T, K]
        return (logits - logits.mean(dim=-1, keepdim=True)).mean(dim=1)

    return DNAModel(
        score=score,
        embedding=model.embedding,
        alphabet=torch.arange(4),
        encode=lambda sequence: torch.from_numpy(base_codes(sequence).astype(np.int64)),
        strands=2,
        module=model,
    )


def view_of(model: nn.Module) -> DNAModel:
    """The :class:`DNAModel` of a saved DNA model's network."""
    if isinstance(model, GenomeAnnotator):
        return annotator_view(model)
    if isinstance(model, DNAClassifier):
        return classifier_view(model)
    raise TypeError(f"a {type(model).__name__} is not a DNA model to attribute")


@torch.no_grad()
def saturation_mutagenesis(model: DNAModel, ids: Tensor, batch_size: int = 512) -> Tensor:
    """``ism [T, 4, K]`` of one sequence ``ids [T]``: the score of each single-base mutant
    minus the sequence's (see the module docstring), the ``3 T`` mutants scored
    ``batch_size`` at a time; exactly 0 at each reference base."""
    if ids.dim() != 1:
        raise ValueError(f"ids has shape {tuple(ids.shape)}; expected one sequence [T]")
    bases = model.alphabet.to(ids.device)
    length = ids.shape[0]
    was_training = model.module.training
    model.module.eval()
    reference = model.score(ids[None])[0]  # [K]
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
        ism[at, column[first : first + batch_size]] = model.score(mutants) - reference
    model.module.train(was_training)
    return ism


def ism_track(ism: Tensor, ids: Tensor, alphabet: Tensor) -> Tensor:
    """The per-base ISM attribution ``[T, K]`` of ``ism [T, 4, K]`` for ``ids [T]``: minus the
    mean change over the three alternatives (over the four, at a base that is not ``ACGT``)."""
    alternative = ids[:, None] != alphabet.to(ids.device)  # [T, 4]
    count = alternative.sum(dim=1, keepdim=True)
    return -(ism * alternative[..., None]).sum(dim=1) / count


class _CapturedEmbedding:
    """Captures the embedding's output on each call as a leaf that requires grad, so the
    gradient of a score reaches it; restores the model on exit.

    With ``alphas [B]``, each batch row's output at the ``alphabet`` ids is moved onto the
    straight path from the baseline (the mean of the four bases' embeddings) to itself:
    ``baseline + alpha (output - baseline)``; ``differences`` keeps each call's ``output -
    baseline`` (0 at other ids)."""

    def __init__(
        self, tokens: nn.Embedding, alphabet: Tensor, alphas: Tensor | None = None
    ) -> None:
        self.tokens, self.alphabet, self.alphas = tokens, alphabet, alphas
        self.outputs: list[Tensor] = []
        self.differences: list[Tensor] = []
        self.handle: RemovableHandle | None = None

    def __enter__(self) -> _CapturedEmbedding:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            if self.alphas is not None:
                bases = torch.isin(inputs[0], self.alphabet)[..., None]  # [B, T, 1]
                mean = self.tokens.weight[self.alphabet].mean(dim=0)  # [D]
                difference = torch.where(bases, output - mean, 0.0).detach()
                output = output - difference + self.alphas.view(-1, 1, 1) * difference
                self.differences.append(difference)
            leaf = output.detach().requires_grad_(True)
            self.outputs.append(leaf)
            return leaf

        self.handle = self.tokens.register_forward_hook(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        self.handle.remove()

    def check(self, strands: int) -> None:
        if len(self.outputs) != strands:
            raise RuntimeError(f"the score embedded {len(self.outputs)} time(s); expected "
                               f"{strands} (one per strand)")  # fmt: skip


def gradients(model: DNAModel, ids: Tensor) -> Tensor:
    """``d s_k / d onehot [T, 4, K]`` of one sequence ``ids [T]``: the gradient of each
    class's score (see the module docstring) with respect to the one-hot of ``ACGT`` at each
    position, through both strands where the score reads both."""
    if ids.dim() != 1:
        raise ValueError(f"ids has shape {tuple(ids.shape)}; expected one sequence [T]")
    length = ids.shape[0]
    table = model.embedding.weight.detach()[model.alphabet.to(ids.device)]  # [4, D]
    was_training = model.module.training
    model.module.eval()
    alphabet = model.alphabet.to(ids.device)
    with torch.enable_grad(), _CapturedEmbedding(model.embedding, alphabet) as captured:
        scores = model.score(ids[None])[0]  # [K]
        captured.check(model.strands)
        per_class = []
        for k in range(scores.shape[0]):
            grads = torch.autograd.grad(scores[k], captured.outputs, retain_graph=True)
            forward = grads[0][0, :length] @ table.T  # [T, 4]
            if model.strands == 2:  # the reverse strand: position T-1-t, base complemented
                forward = forward + (grads[1][0, :length] @ table.T).flip(0).flip(1)
            per_class.append(forward)
    model.module.train(was_training)
    return torch.stack(per_class, dim=-1)


def gradient_x_input(gradient: Tensor, ids: Tensor, alphabet: Tensor) -> Tensor:
    """Gradient x input ``[T, K]``: the gradient ``[T, 4, K]`` at each position's base (0
    where the base is not ``ACGT``)."""
    match = ids[:, None] == alphabet.to(ids.device)  # [T, 4]
    return (gradient * match[..., None]).sum(dim=1)


def integrated_gradients(
    model: DNAModel, ids: Tensor, steps: int = 32, batch_size: int = 32
) -> Tensor:
    """``ig [T, K]`` of one sequence ``ids [T]``: each position's integrated gradients of each
    class's score from the baseline of the module docstring (the mean base embedding at every
    ``ACGT`` position; other ids as they are, so they carry 0), by the midpoint rule at
    ``steps`` points of the path, ``batch_size`` points a forward pass. Both strands where the
    score reads both, the reverse strand's position ``T-1-t`` credited to ``t``."""
    if ids.dim() != 1:
        raise ValueError(f"ids has shape {tuple(ids.shape)}; expected one sequence [T]")
    if steps < 1:
        raise ValueError(f"steps is {steps}; expected at least 1")
    length = ids.shape[0]
    alphas = (torch.arange(steps, device=ids.device, dtype=torch.float64) + 0.5) / steps
    alphabet = model.alphabet.to(ids.device)
    was_training = model.module.training
    model.module.eval()
    total: Tensor | None = None
    for first in range(0, steps, batch_size):
        chunk = alphas[first : first + batch_size].to(model.embedding.weight.dtype)
        with (
            torch.enable_grad(),
            _CapturedEmbedding(model.embedding, alphabet, chunk) as captured,
        ):
            scores = model.score(ids.repeat(len(chunk), 1))  # [n, K]
            captured.check(model.strands)
            per_class = []
            for k in range(scores.shape[1]):
                grads = torch.autograd.grad(scores[:, k].sum(), captured.outputs,
                                            retain_graph=True)  # fmt: skip
                strands = [
                    (grad * difference).sum(dim=(0, 2))[:length]  # [T]
                    for grad, difference in zip(grads, captured.differences, strict=True)
                ]
                if model.strands == 2:
                    strands[1] = strands[1].flip(0)
                per_class.append(torch.stack(strands).sum(dim=0))
        part = torch.stack(per_class, dim=-1).detach()  # [T, K]
        total = part if total is None else total + part
    model.module.train(was_training)
    assert total is not None
    return total / steps


@torch.no_grad()
def baseline_scores(model: DNAModel, ids: Tensor) -> Tensor:
    """``s(baseline) [K]``: the scores at :func:`integrated_gradients`' baseline of ``ids
    [T]`` (the start of its path), so that ``s(x) - s(baseline)`` is what they add up to."""
    alphabet = model.alphabet.to(ids.device)
    start = torch.zeros(1, dtype=model.embedding.weight.dtype, device=ids.device)
    was_training = model.module.training
    model.module.eval()
    with _CapturedEmbedding(model.embedding, alphabet, start):
        scores = model.score(ids[None])[0]
    model.module.train(was_training)
    return scores
