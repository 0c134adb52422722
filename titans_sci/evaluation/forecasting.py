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

#: (lookback, horizons) of the long-horizon protocol.
LONG_HORIZON = (96, (96, 192, 336, 720))
ILI_HORIZON = (36, (24, 36, 48, 60))


class PointErrors:
    """Running sums of squared and absolute errors: MSE and MAE over every point seen."""

    def __init__(self) -> None:
        self.squared = self.absolute = 0.0
        self.count = 0

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add a batch: ``prediction`` and ``target`` of the same shape (e.g. ``[B, H, C]``)."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction has shape {tuple(prediction.shape)}; target has {tuple(target.shape)}"
            )
        error = (prediction - target).double()
        self.squared += float(error.square().sum())
        self.absolute += float(error.abs().sum())
        self.count += error.numel()

    def result(self) -> dict[str, float]:
        if not self.count:
            raise ValueError("no points were evaluated")
        return {"mse": self.squared / self.count, "mae": self.absolute / self.count}


@torch.no_grad()
def evaluate_windows(
    predict: Callable[[Tensor], Tensor], windows: Dataset, batch_size: int = 256
) -> dict[str, float]:
    """MSE and MAE of ``predict(x [B, L, C]) -> [B, H, C]`` over every window of ``windows``
    (items ``(x [L, C], y [H, C])``), in order, the last partial batch included."""
    errors = PointErrors()
    for x, y in DataLoader(windows, batch_size=batch_size, shuffle=False, drop_last=False):
        errors.update(predict(x), y)
    return errors.result()


def last_value_forecast(x: Tensor, horizon: int) -> Tensor:
    """The naive forecast: the last observed value repeated, ``[B, L, C] -> [B, horizon, C]``."""
    return x[:, -1:].expand(-1, horizon, -1)
