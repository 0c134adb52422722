"""Probe (issue 38): does anything a forecaster learns at test time from its realised errors pay?

The table's test-time writes have not helped. This probe asks whether the data hold what such
writes could use: it trains the window-only model of ``bench_history.py`` at a row's setting,
then corrects its forecasts online with a ridge regression refitted every ``--every`` steps on
the errors it has already seen realised. At origin ``t`` the corrector is fitted on the origins
``q <= t0 - H`` (``t0``: the start of ``t``'s block), whose targets all lie before ``t0``: no
look-ahead, and no gradient step on the model. Its inputs at an origin: the last ``k`` steps
of the window normalised by the window's mean and standard deviation, that mean and a constant
(``k = 0``: the constant alone, an online bias correction); its target: the error on the
scaled data (the units the table's MSE is in), the channels pooled. The corrector's setting
(``k``, how many recent origins it fits on, its ridge penalty) is chosen per seed on validation
MSE; the probe prints the validation and test MSE of the model alone and with the chosen
corrector. A probe, not a table entrant: run by hand, its output quoted in the README.

    .venv/bin/python benchmarks/probe_history_online.py tasks/forecast_etth1.toml 96 336 0.1
"""

from __future__ import annotations

import itertools

import bench_history as bench
import numpy as np
import torch
from torch import Tensor

from titans_sci.models.forecaster import instance_norm
from titans_sci.models.history_forecaster import stream_forecasts, windows_before
from titans_sci.tasks.config import ForecastTask, load_task

#: The corrector's settings, chosen on validation: inputs ``k``, origins fitted on, penalty.
STEPS, RECENT, PENALTIES = (0, 8, 32), (500, 2000), (0.1, 1.0, 10.0, 100.0)


def normalised_windows(series: Tensor, origins: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """The ``window`` steps before each of ``origins`` of ``series [C, T]``, normalised as the
    model normalises its window (:func:`~titans_sci.models.forecaster.instance_norm`): ``([N, C,
    L], their means [N, C, 1])``."""
    windows = windows_before(series, origins, window).transpose(0, 1)  # [N, C, L]
    normalised, mean, _ = instance_norm(windows.flatten(0, 1))
    return normalised.unflatten(0, windows.shape[:2]), mean.unflatten(0, windows.shape[:2])


def features(normalised: Tensor, mean: Tensor, k: int) -> np.ndarray:
    """The corrector's inputs ``[N, C, D]`` from :func:`normalised_windows`: the last ``k``
    normalised steps, the window's mean and a 1."""
    parts = [torch.ones_like(mean)]
    if k:
        parts = [normalised[..., normalised.shape[-1] - k :], mean, *parts]
    return torch.cat(parts, dim=-1).numpy()


def corrections(
    inputs: np.ndarray, errors: np.ndarray, span: range, horizon: int, recent: int,
    penalty: float, every: int,
) -> np.ndarray:  # fmt: skip
    """The corrector's forecasts of the ``errors [N, C, H]`` (scaled data) at the origins
    ``span`` (indices into ``inputs [N, C, D]``): ``[len(span), C, H]``, the ridge refitted
    every ``every`` origins on the ``recent`` latest origins realised before its block (an
    origin ``H`` or more before the block's first)."""
    out = []
    dim = inputs.shape[-1]
    for begin in range(span.start, span.stop, every):
        block = slice(begin, min(begin + every, span.stop))
        last = begin - horizon  # the latest origin whose whole target lies before ``begin``
        if last < 0:
            raise ValueError(f"origin {begin} has no realised error before it")
        fit = slice(max(0, last - recent + 1), last + 1)
        x = inputs[fit].reshape(-1, dim)
        y = errors[fit].reshape(x.shape[0], -1)
        weights = np.linalg.solve(x.T @ x + penalty * len(x) * np.eye(dim), x.T @ y)
        out.append(inputs[block] @ weights)
    return np.concatenate(out)


def mse(errors: np.ndarray) -> float:
    return float(np.square(errors).mean())


def main() -> None:
    parser = bench.probe_parser(__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=24, help="origins per refit")
    args = parser.parse_args()
    task = load_task(args.task)
    assert isinstance(task, ForecastTask), f"{args.task}: not a forecasting task"
    setting = bench.Setting(False, args.window, args.dropout)
    rows: dict[str, list[dict]] = {"window only": [], "with the online corrector": []}
    for seed in args.seeds:
        run = bench.trained(task, args.horizon, setting, seed, 1)
        split, h = run.split, args.horizon
        origins = torch.arange(args.window, split.series.shape[1] - h + 1)
        run.model.eval()
        forecasts = torch.cat([f for _, f in stream_forecasts(run.model, split.series, origins)], 1)
        steps = origins[:, None] + torch.arange(h)
        errors = (split.series[:, steps] - forecasts).numpy().transpose(1, 0, 2)  # [N, C, H]
        first = args.window
        normalised, mean = normalised_windows(split.series, origins, args.window)
        spans = {name: range(int(o[0]) - first, int(o[-1]) - first + 1)
                 for name, o in (("val", split.val), ("test", split.test))}  # fmt: skip
        scores = {}
        for k in STEPS:
            inputs = features(normalised, mean, k)
            for recent, penalty in itertools.product(RECENT, PENALTIES):
                fixed = {name: corrections(inputs, errors, span, h, recent, penalty,
                                           args.every) for name, span in spans.items()}  # fmt: skip
                scores[k, recent, penalty] = {
                    name: (mse(errors[span.start : span.stop]),
                           mse(errors[span.start : span.stop] - fixed[name]))
                    for name, span in spans.items()
                }  # fmt: skip
        chosen = min(scores, key=lambda s: scores[s]["val"][1])
        (val_alone, val_fixed), (test_alone, test_fixed) = scores[chosen].values()
        print(f"seed {seed}: alone val {val_alone:.4f} test {test_alone:.4f}; corrector "
              f"k={chosen[0]} recent={chosen[1]} penalty={chosen[2]:g}: val {val_fixed:.4f} "
              f"test {test_fixed:.4f}", flush=True)  # fmt: skip
        rows["window only"].append({"val_mse": val_alone, "test_mse": test_alone})
        rows["with the online corrector"].append({"val_mse": val_fixed, "test_mse": test_fixed})
    print(f"{task.data.dataset}|{args.horizon}|L{args.window} d{args.dropout:g}, refit every "
          f"{args.every}, seeds {args.seeds}, mean +- std")  # fmt: skip
    bench.print_probe(rows)


if __name__ == "__main__":
    main()
