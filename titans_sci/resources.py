"""Where the bundled data sets and task files are: folders on disk, wherever titans-sci runs from.

* An installed wheel ships them as package data, ``titans_sci/_bundled/datasets`` and
  ``titans_sci/_bundled/tasks`` (``pyproject.toml`` maps the repository's top-level
  ``datasets/`` and ``tasks/`` folders there).
* A source checkout (the editable install ``pip install -e .`` included: it imports the package
  from the checkout) has no ``_bundled`` folder; the top-level folders are used as they are.

Both functions return absolute, resolved paths of existing folders and raise
``FileNotFoundError`` when neither place has the folder (a broken install). Setting
``TITANS_SCI_DATASETS`` points :mod:`titans_sci.data.registry` at another data set folder; that
override lives there, not here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["datasets_dir", "tasks_dir"]


def _bundled(name: str) -> Path:
    package = resources.files("titans_sci")
    if not isinstance(package, Path):  # imported from a zip file, say
        raise FileNotFoundError(
            f"titans_sci is not installed as files on disk ({package!r}); its bundled {name}/ "
            "folder needs a regular install"
        )
    packaged = package / "_bundled" / name
    if packaged.is_dir():
        return packaged.resolve()
    checkout = package.resolve().parent
    # pyproject.toml marks a source checkout: without it, a site-packages folder of the same
    # name (another distribution's 'datasets' or 'tasks' package) would be taken for ours.
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        return checkout / name
    raise FileNotFoundError(
        f"the bundled {name}/ folder is missing: neither {packaged} (an installed wheel) nor "
        f"{checkout / name} (a source checkout) exists; reinstall titans-sci"
    )


def datasets_dir() -> Path:
    """The bundled data sets' folder (one ``manifest.toml`` per data set, see ``datasets/``)."""
    return _bundled("datasets")


def tasks_dir() -> Path:
    """The bundled task files' folder (``demo_genomics.toml``, ...; see ``tasks/``)."""
    return _bundled("tasks")
