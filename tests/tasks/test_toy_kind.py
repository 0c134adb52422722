"""A new kind of model and a new kind of task are each one module plus one registration line:
this module is both (a toy linear model on a toy regression task), registered here and run by
the one runner into a run folder, its model saved and loaded back by the model folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from torch import Tensor, nn

from titans_sci.cli import main
from titans_sci.config import Config
from titans_sci.modelfolder import MODEL_KINDS, ModelKind, load_module, register
from titans_sci.tasks import load_task, register_task_kind, run
from titans_sci.tasks.config import TASK_KINDS
from titans_sci.tasks.kind import TITANS, Unit
from titans_sci.train import TrainConfig


@dataclass(frozen=True)
class ToyModelConfig(Config):
    inputs: int = 3


class ToyModel(nn.Module):
    """``y = w . x + b``."""

    def __init__(self, config: ToyModelConfig) -> None:
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.inputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).squeeze(-1)


@dataclass(frozen=True)
class ToyData(Config):
    rows: int = 64
    max_eval: int = 0


@dataclass(frozen=True)
class ToyProtocol(Config):
    seeds: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class ToyBaselines(Config):
    mean: bool = True


@dataclass(frozen=True)
class ToyTask(Config):
    name: str
    kind: Literal["toy"] = "toy"
    format: int = 2
    data: ToyData = field(default_factory=ToyData)
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    protocol: ToyProtocol = field(default_factory=ToyProtocol)
    baselines: ToyBaselines = field(default_factory=ToyBaselines)


class Toy:
    """The toy's :class:`~titans_sci.tasks.kind.TaskKind`: a known linear map plus noise."""

    undefined: dict[str, str] = {}
    protocol = "train, select on dev MSE, test once"

    def __init__(self, task: ToyTask) -> None:
        self.task = task

    def data_files(self) -> dict[str, Path]:
        return {}

    def units(self) -> Iterator[Unit]:
        for seed in self.task.protocol.seeds:
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(3 * self.task.data.rows, self.task.model.inputs, generator=g)
            y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(len(x), generator=g)
            pairs = zip(x.chunk(3), y.chunk(3), strict=True)
            parts = dict(zip(("train", "dev", "test"), pairs, strict=True))
            yield Unit({"seed": seed}, seed, parts)

    def models(self, unit: Unit) -> dict[str, Callable[[], ToyModel]]:
        return {TITANS: lambda: ToyModel(self.task.model)}

    def batches(self, unit: Unit, model: ToyModel):
        x, y = unit.data["train"]
        return lambda epoch, generator: zip(x.split(16), y.split(16), strict=True)

    def loss(self, model: ToyModel, batch: tuple[Tensor, Tensor]) -> Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    def score_dev(self, model: ToyModel, unit: Unit) -> float:
        with torch.no_grad():
            return -float(self.loss(model, unit.data["dev"]))

    def evaluate(self, model: ToyModel, unit: Unit) -> tuple[dict[str, Any], Any]:
        with torch.no_grad():
            return {"mse": float(self.loss(model, unit.data["test"]))}, None

    def model_meta(self, unit: Unit) -> dict[str, Any]:
        return {"inputs": self.task.model.inputs}

    def baselines(self, unit: Unit) -> list[dict[str, Any]]:
        _, y = unit.data["test"]
        mse = float(((y - unit.data["train"][1].mean()) ** 2).mean())
        return [{**unit.labels, "model": "mean", "mse": mse}]

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {r["model"]: {"mse": r["mse"]} for r in rows}

    def format_summary(self, result: dict[str, Any]) -> str:
        return str(result["summary"])

    def figures(self, model: ToyModel, unit: Unit, predictions: Any, folder: Path) -> dict:
        return {}


@pytest.fixture
def registered():
    register(ModelKind("toy_linear", ToyModel, ToyModelConfig))  # the model kind's one line
    register_task_kind("toy", ToyTask, f"{__name__}:Toy")  # the task kind's one line
    yield
    del MODEL_KINDS["toy_linear"], TASK_KINDS["toy"]


def test_a_toy_model_and_task_kind_run_through_the_one_runner(registered, tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text('format = 2\nkind = "toy"\nname = "toy"\n[training]\nepochs = 30\nlr = 0.05\n')
    result = run(load_task(path), tmp_path / "runs")
    assert result["summary"][TITANS]["mse"] < 0.1 < result["summary"]["mean"]["mse"]
    folder = tmp_path / "runs" / "toy" / "checkpoints" / "seed1" / "titans" / "model"
    model, meta = load_module(folder)
    assert isinstance(model, ToyModel) and meta["inputs"] == 3
    assert (tmp_path / "runs" / "toy" / "results.json").exists()
    with pytest.raises(ValueError, match="registered already"):
        register_task_kind("toy", ToyTask, f"{__name__}:Toy")


def test_a_titans_model_that_could_not_be_saved_is_refused_before_it_trains(tmp_path):
    """A task kind whose model kind was never registered stops before its run folder is
    touched, not after hours of training at the save."""
    register_task_kind("toy", ToyTask, f"{__name__}:Toy")
    try:
        path = tmp_path / "toy.toml"
        path.write_text('format = 2\nkind = "toy"\nname = "toy"\n')
        with pytest.raises(TypeError, match="cannot save a ToyModel: not a registered model kind"):
            run(load_task(path), tmp_path / "runs")
        assert not (tmp_path / "runs").exists()
    finally:
        del TASK_KINDS["toy"]


def test_models_chooses_which_of_the_tasks_models_train(registered, tmp_path, capsys):
    """``run(models=...)`` trains only the models named (none: the baselines alone), records the
    choice in the run's fingerprint (a resume under another choice is refused) and refuses a
    name the task does not train, in one line from the CLI."""
    path = tmp_path / "toy.toml"
    path.write_text('format = 2\nkind = "toy"\nname = "toy"\n[training]\nepochs = 3\n')
    result = run(load_task(path), tmp_path / "runs", models=[])
    assert [r["model"] for r in result["runs"]] == ["mean"]
    assert not (tmp_path / "runs" / "toy" / "checkpoints" / "seed1" / TITANS).exists()
    with pytest.raises(ValueError, match="models"):  # the fingerprint names what changed
        run(load_task(path), tmp_path / "runs", resume=True, models=[TITANS])
    again = run(load_task(path), tmp_path / "runs", overwrite=True, models=[TITANS])
    assert [r["model"] for r in again["runs"]] == [TITANS, "mean"]
    with pytest.raises(ValueError, match=r"'cnn' is not one of this task's models \['titans'\]"):
        run(load_task(path), tmp_path / "other", models=["cnn"])
    assert not (tmp_path / "other").exists()
    code = main(["run", str(path), "--out", str(tmp_path / "cli"), "--models", "cnn", "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "'cnn' is not one of" in lines[0]
    assert main(["run", "--models", "cnn"]) == 2
    assert "name the task file" in capsys.readouterr().err
