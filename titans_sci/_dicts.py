"""Building frozen config dataclasses from plain dicts, with unknown keys named."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**data)``, or a ValueError naming the keys ``cls`` does not have."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}")
    return cls(**data)
