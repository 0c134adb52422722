"""One task system: a task file is a config tree (:mod:`.config`), one runner runs it
(:mod:`.runner`) into a run folder that can be trusted (:mod:`.run_folder`); each task kind
(:mod:`.classification`, :mod:`.forecasting`, :mod:`.pretraining`) supplies only what is its
own, through the interface of :mod:`.kind`, registered next to its config
(:func:`~titans_sci.tasks.config.register_task_kind`).

    from titans_sci.tasks import load_task, run
    result = run(load_task("tasks/gue_prom_core_tata.toml"), out="runs")
"""

from .config import (
    ClassificationTask,
    ForecastTask,
    PretrainTask,
    load_task,
    parse_task,
    register_task_kind,
)
from .runner import kind_of, run, without_baselines

__all__ = [
    "ClassificationTask",
    "ForecastTask",
    "PretrainTask",
    "kind_of",
    "load_task",
    "parse_task",
    "register_task_kind",
    "run",
    "without_baselines",
]
