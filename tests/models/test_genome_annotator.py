"""The genome annotator: both strands, streaming, reach and reverse-complement equivariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from titans_sci.data.annotation import STRAND_SWAP
from titans_sci.memory import MemoryConfig
from titans_sci.models.config import LMMConfig
from titans_sci.models.genome_annotator import (
    AnnotatorConfig,
    GenomeAnnotator,
    reverse_complement_codes,
    stream_logits,
)

MIXERS = ("memory", "attention", "conv")


def _model(mixer: str, seed: int = 0) -> GenomeAnnotator:
    torch.manual_seed(seed)
    memory = MemoryConfig(num_heads=2, head_dim=8, chunk_size=4)
    backbone = LMMConfig(dim=16, depth=2, memory=memory)
    config = AnnotatorConfig(mixer=mixer, backbone=backbone, patch=4, window=8, conv_kernel=3,
                             stem_kernel=5, refine_kernel=3)  # fmt: skip
    return GenomeAnnotator(config)


def _codes(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5, length).astype(np.uint8)


def _tensor(codes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(codes.astype(np.int64))[None]


@pytest.mark.parametrize("mixer", MIXERS)
def test_the_reverse_complement_gets_the_reversed_annotation_with_strands_swapped(mixer):
    model = _model(mixer).eval()
    codes = _tensor(_codes(301))
    with torch.no_grad():
        logits = model(codes)
        other = model(reverse_complement_codes(codes))
    swapped = other.flip(1)[..., list(STRAND_SWAP)]
    torch.testing.assert_close(swapped, logits, rtol=0, atol=1e-5)
    assert not torch.allclose(logits[..., 1], logits[..., 2])  # the strands are told apart


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("length", [1, 37, 203])
def test_pieces_with_the_state_carried_give_one_pass_outputs_states_and_gradients(mixer, length):
    model = _model(mixer).double()  # float64: the two orders of summation agree to 1e-10
    codes = _tensor(_codes(length, seed=length))
    whole, whole_state = model.branch(codes)
    cuts = [0, *(c for c in (8, 24, 100) if c < length), length]
    pieces, state = [], None
    for a, b in zip(cuts, cuts[1:], strict=False):
        out, state = model.branch(codes[:, a:b], state)
        pieces.append(out)
    streamed = torch.cat(pieces, dim=1)
    torch.testing.assert_close(streamed, whole, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(state.stem, whole_state.stem)
    torch.testing.assert_close(state.refine, whole_state.refine, rtol=1e-9, atol=1e-10)
    assert state.bases == whole_state.bases == length
    weights = torch.randn_like(whole)
    grads = [torch.autograd.grad((o * weights).sum(), list(model.parameters()), allow_unused=True)
             for o in (whole, streamed)]  # fmt: skip
    for one, other in zip(*grads, strict=True):
        if one is None:
            assert other is None
            continue
        torch.testing.assert_close(other, one, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("mixer", MIXERS)
def test_stream_logits_equal_the_model_on_a_whole_chromosome(mixer):
    model = _model(mixer).eval()
    codes = _codes(1001)
    with torch.no_grad():
        expected = model(_tensor(codes))[0].numpy()
    np.testing.assert_allclose(stream_logits(model, codes, piece=64), expected, atol=2e-5)


def test_only_the_memory_reads_past_the_reach_of_the_others():
    """A base changed far before the last patch changes the memory's reading of it and not
    the attention's or the CNN's (their reach is fixed), and resetting the memory every 64
    bases stops it too."""
    codes = _codes(600)
    changed = codes.copy()
    changed[10] = (changed[10] + 1) % 4
    for mixer in MIXERS:
        model = _model(mixer).eval()
        reach = model.config.reach()
        with torch.no_grad():
            a, _ = model.branch(_tensor(codes))
            b, _ = model.branch(_tensor(changed))
        far = 11 + (reach or 0)
        moved = (a[0, far:] - b[0, far:]).abs().max().item()
        if mixer == "memory":
            assert reach is None and moved > 1e-4
            # reset every 64 bases, base 10 reaches no base past 64 (the reverse reading
            # reads it after them)
            reset_a = stream_logits(model, codes, piece=64, reset_every=64)
            reset_b = stream_logits(model, changed, piece=64, reset_every=64)
            assert np.abs(reset_a[64:] - reset_b[64:]).max() == 0
            assert np.abs(reset_a[:64] - reset_b[:64]).max() > 1e-4
        else:
            assert reach is not None and far < 600 and moved < 1e-6, (mixer, reach, moved)


def test_a_piece_that_is_not_whole_patches_must_be_the_last():
    model = _model("memory")
    _, state = model.branch(_tensor(_codes(6)))
    with pytest.raises(ValueError, match="the stream already ended"):
        model.branch(_tensor(_codes(4)), state)
    with pytest.raises(ValueError, match="piece=6; expected a positive multiple of the patch, 4"):
        stream_logits(model, _codes(20), piece=6)


def test_the_state_does_not_grow_with_the_length_read():
    model = _model("memory").eval()

    def size(state) -> int:
        """Elements of every tensor in a nested state (dataclasses, lists, tuples)."""
        if isinstance(state, torch.Tensor):
            return state.numel()
        if isinstance(state, (list, tuple)):
            return sum(size(s) for s in state)
        if hasattr(state, "__dict__"):
            return sum(size(v) for v in vars(state).values())
        return 0

    with torch.no_grad():
        _, short = model.branch(_tensor(_codes(64)))
        _, long = model.branch(_tensor(_codes(4096)))
    assert size(short) == size(long) > 0


def test_the_local_stage_trains_all_but_the_memory_which_adds_nothing_until_its_stage():
    from titans_sci.layers import memory_writes

    model = _model("memory").eval()
    (local_name, local), (memory_name, everything) = model.stages()
    assert (local_name, memory_name) == ("local", "memory")
    assert len(everything) == len(list(model.parameters())) > len(local)
    memory = {id(p) for p in model.mixer.long.parameters()} - {id(p) for p in local}
    assert memory and all(id(p) not in memory for p in local)
    codes = _tensor(_codes(300))
    with torch.no_grad():
        writing = model(codes)
        with memory_writes(model, False):
            silent = model(codes)
    torch.testing.assert_close(writing, silent, rtol=0, atol=0)  # the output maps are zero
    assert [name for name, _ in _model("conv").stages()] == [""]


def test_a_silent_memory_is_skipped_with_the_same_outputs_and_gradients():
    """In the local stage (the memory layers' output maps zero and frozen) the memory is not
    run; outputs and every gradient equal those of running it."""
    model = _model("memory").double()
    local = model.stages()[0][1]
    codes = _tensor(_codes(203))
    weights = torch.randn(1, 203, 5, dtype=torch.float64)
    results = []
    for frozen in (False, True):
        for p in model.parameters():
            p.requires_grad_(not frozen or any(p is q for q in local))
        assert model.mixer.long.silent == frozen
        out = model(codes)
        grads = torch.autograd.grad((out * weights).sum(), local)
        results.append((out, grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=1e-12)
    for silent, full in zip(results[1][1], results[0][1], strict=True):
        torch.testing.assert_close(silent, full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mixer", MIXERS)
def test_a_kept_state_owns_its_tensors_not_the_pieces_activations(mixer):
    """A detached state holds copies, not slices that keep a whole piece's activations alive
    (a full-genome refresh kept 17 GB that way before)."""
    model = _model(mixer).eval()
    with torch.no_grad():
        _, state = model.branch(_tensor(_codes(4096)))
    kept = state.detach()

    def tensors(value):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from tensors(item)
        elif hasattr(value, "__dict__"):
            for item in vars(value).values():
                yield from tensors(item)

    for tensor in tensors(kept):
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    sliced = sum(t.untyped_storage().nbytes() for t in tensors(state))
    assert sum(t.untyped_storage().nbytes() for t in tensors(kept)) < sliced / 10
