"""One task system: a task file is a config tree (:mod:`.config`), one runner runs it
(:mod:`.runner`) into a run folder that can be trusted (:mod:`.run_folder`); each task kind
(:mod:`.classification`, :mod:`.forecasting`) supplies only what is its own.

    from titans_sci.tasks import load_task, run
    result = run(load_task("tasks/gue_prom_core_tata.toml"), out="runs")
"""

from .config import ClassificationTask, ForecastTask, Task, load_task, parse_task
from .runner import kind_of, run, run_file, without_baselines

__all__ = [
    "ClassificationTask",
    "ForecastTask",
    "Task",
    "kind_of",
    "load_task",
    "parse_task",
    "run",
    "run_file",
    "without_baselines",
]
