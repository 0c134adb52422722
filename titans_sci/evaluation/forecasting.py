"""Forecast evaluation: MSE and MAE over every window of a split, and the last-value baseline.

The long-horizon protocol of the literature (Time-Series-Library): lookback 96 and horizons
96/192/336/720 (ILI: lookback 36, horizons 24/36/48/60); MSE and MAE over all predicted points
and channels on the scaled data; the test loader keeps its last partial batch (``drop_last``
silently dropped test windows in older code bases).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


def error_sums(prediction: Tensor, target: Tensor) -> Tensor:
    """``[3]`` float64: the sum of squared errors, the sum of absolute errors and the number of
    points of ``prediction`` against ``target`` (same shape, e.g. ``[B, H, C]``). Sums of
    batches add up to the sums of the whole split."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction has shape {tuple(prediction.shape)}; target has {tuple(target.shape)}"
        )
    error = (prediction - target).double()
    count = torch.tensor(float(error.numel()), dtype=torch.float64)
    return torch.stack([error.square().sum(), error.abs().sum(), count])


def point_errors(sums: Tensor) -> dict[str, float]:
    """MSE and MAE from :func:`error_sums` (of one batch, or added over many)."""
    squared, absolute, count = sums.tolist()
    if not count:
        raise ValueError("no points were evaluated")
    return {"mse": squared / count, "mae": absolute / count}


@torch.no_grad()
def evaluate_windows(
    predict: Callable[..., Tensor], windows: Dataset, batch_size: int = 256
) -> dict[str, float]:
    """MSE and MAE of ``predict(x [B, L, C], *covariates) -> [B, H, C]`` over every window of
    ``windows`` (items ``(x [L, C], y [H, C], *covariates)``), in order, the last partial batch
    included."""
    sums = torch.zeros(3, dtype=torch.float64)
    for x, y, *covariates in DataLoader(windows, batch_size=batch_size, drop_last=False):
        sums += error_sums(predict(x, *covariates), y)
    return point_errors(sums)


def last_value_forecast(x: Tensor, horizon: int) -> Tensor:
    """The naive forecast: the last observed value repeated, ``[B, L, C] -> [B, horizon, C]``."""
    return x[:, -1:].expand(-1, horizon, -1)
