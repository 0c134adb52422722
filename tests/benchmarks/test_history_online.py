"""The online-corrector probe's corrector: it learns what its realised errors hold, and a
block's correction reads no error whose target is not wholly before the block."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from probe_history_online import corrections, features, normalised_windows  # noqa: E402

HORIZON, EVERY = 3, 4


def windowed(series: np.ndarray, origins: np.ndarray, window: int, k: int) -> np.ndarray:
    """The corrector's inputs at ``origins`` of ``series``, as the probe computes them."""
    series_, origins_ = torch.from_numpy(series), torch.from_numpy(origins)
    normalised, mean = normalised_windows(series_, origins_, window)
    return features(normalised, mean, k)


def test_a_steady_bias_is_learned_and_removed():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(2, 80)).astype(np.float32)
    origins = np.arange(8, 70)
    inputs = windowed(series, origins, window=8, k=0)
    bias = np.array([0.5, -1.0, 2.0])  # [H], every channel alike
    errors = np.broadcast_to(bias, (len(origins), 2, HORIZON))
    fixed = corrections(inputs, errors, range(20, 60), HORIZON, 50, 1e-9, EVERY)
    np.testing.assert_allclose(errors[20:60] - fixed, 0.0, atol=1e-6)


def test_no_correction_reads_an_error_not_realised_before_its_block():
    rng = np.random.default_rng(1)
    series = rng.normal(size=(3, 120)).astype(np.float32)
    origins = np.arange(16, 110)
    inputs = windowed(series, origins, window=16, k=4)
    errors = rng.normal(size=(len(origins), 3, HORIZON))
    span = range(40, 80)
    before = corrections(inputs, errors, span, HORIZON, 30, 0.1, EVERY)
    for begin in range(span.start, span.stop, EVERY):
        later = errors.copy()
        later[begin - HORIZON + 1 :] += 10.0  # targets reaching into the block or after it
        after = corrections(inputs, later, span, HORIZON, 30, 0.1, EVERY)
        done = begin - span.start + EVERY
        np.testing.assert_allclose(after[:done], before[:done])
        realised = errors.copy()
        realised[begin - HORIZON] += 10.0  # the latest error realised before the block
        moved = corrections(inputs, realised, span, HORIZON, 30, 0.1, EVERY)
        assert not np.allclose(moved[begin - span.start : done], before[begin - span.start : done])


def test_the_inputs_read_only_steps_before_their_origin():
    rng = np.random.default_rng(2)
    series = rng.normal(size=(2, 60))
    origins = np.arange(10, 50)
    inputs = windowed(series, origins, window=10, k=5)
    changed = series.copy()
    changed[:, 30:] += 5.0
    moved = windowed(changed, origins, window=10, k=5)
    early = origins <= 30
    np.testing.assert_array_equal(moved[early], inputs[early])
    assert not np.allclose(moved[~early], inputs[~early])
