"""Configs from plain data and back: one path for task files, saved models and checkpoints.

Every config is a frozen dataclass whose fields are typed; :func:`build` maps a plain dict (a
TOML table, a saved ``model.json``) onto it recursively with pydantic, reading the types from the
annotations: nested configs, ``Literal`` choices, tuples and unions are checked, unknown keys
are refused, and each dataclass's own ``__post_init__`` checks run. Types are strict (``"3"``
is not an int, ``true`` is not a number; an int is accepted where a float is expected), and a
mistake is one ``ValueError`` naming the place and the key::

    build(MemoryConfig, {"num_heads": "4"}, "tasks/x.toml [model.backbone.memory]")
    # ValueError: tasks/x.toml [model.backbone.memory]: num_heads = '4': Input should be a
    #             valid integer
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import operator
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, overload

from pydantic import ConfigDict, Discriminator, Tag, TypeAdapter, ValidationError

T = TypeVar("T")


class Config:
    """The base of every config dataclass: unknown keys are errors (pydantic's
    ``extra="forbid"``), and a config goes to plain data and back with :meth:`to_dict` and
    :meth:`from_dict`."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        return build(cls, data, cls.__name__)


def tagged(field: str, default: str, **options: type) -> Any:
    """The union of config classes ``options`` (``tag=class``), told apart by the ``field`` of
    a plain dict (``default`` where it is absent) or of an instance."""

    def tag(value: Any) -> str | None:
        if isinstance(value, Mapping):
            return value.get(field, default)
        return getattr(value, field, None)

    members = [Annotated[cls, Tag(name)] for name, cls in options.items()]
    return Annotated[functools.reduce(operator.or_, members), Discriminator(tag)]


_ADAPTERS: dict[Any, TypeAdapter] = {}


@overload
def build(kind: type[T], data: Mapping[str, Any], where: str = ...) -> T: ...
@overload
def build(kind: Any, data: Mapping[str, Any], where: str = ...) -> Any: ...


def build(kind: Any, data: Mapping[str, Any], where: str = "config") -> Any:
    """``data`` validated into ``kind`` (a config dataclass, or a union of them); a
    ``ValueError`` naming ``where``, the key and what is wrong otherwise."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    _, bad = json_safe(data)
    if bad:
        raise ValueError(f"{where}: {bad[0][0]} = {bad[0][1]}: expected a finite number")
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: not plain data ({error})") from None
    try:
        return adapter.validate_json(text, strict=True)
    except ValidationError as error:
        raise ValueError(f"{where}: {_first_problem(error, data)}") from None


def json_safe(data: Any, where: str = "") -> tuple[Any, list[tuple[str, float]]]:
    """``data`` with every non-finite float replaced by ``None``, and the places replaced
    (``training.lr``, ``runs[0].mse``) with their values, in order."""
    if isinstance(data, float) and not math.isfinite(data):
        return None, [(where or "value", data)]
    if isinstance(data, Mapping):
        out, places = {}, []
        for key, value in data.items():
            out[key], found = json_safe(value, f"{where}.{key}" if where else str(key))
            places += found
        return out, places
    if isinstance(data, (list, tuple)):
        items = [json_safe(v, f"{where}[{i}]") for i, v in enumerate(data)]
        return [v for v, _ in items], [p for _, found in items for p in found]
    return data, []


def _first_problem(error: ValidationError, data: Mapping[str, Any]) -> str:
    problem = error.errors()[0]
    kind, loc = problem["type"], problem["loc"]
    keys: list[str] = []
    value: Any = data
    for i, part in enumerate(loc):
        if isinstance(value, Mapping) and part in value:
            keys.append(str(part))
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            keys.append(f"[{part}]")
            value = value[part]
        elif i == len(loc) - 1 and kind in ("unexpected_keyword_argument", "missing"):
            keys.append(str(part))
        # else: a union tag (a variant or kind name) in pydantic's path, not a key
    name = ".".join(keys).replace(".[", "[")
    if kind == "unexpected_keyword_argument":
        return f"unknown key {name!r}"
    if kind == "missing":
        return f"missing key {name!r}"
    if kind == "union_tag_invalid":
        expected = problem.get("ctx", {}).get("expected_tags", "")
        return f"{name} names {problem['ctx']['tag']!r}; expected one of {expected}"
    message = problem["msg"].removeprefix("Value error, ")
    if not name:
        return message
    if isinstance(value, Mapping):  # a check of the whole table (its __post_init__)
        return f"{name}: {message}"
    return f"{name} = {value!r}: {message}"


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-able data (tuples become lists): the inverse of
    :func:`build`."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def difference(old: Any, new: Any, path: str = "") -> str | None:
    """Where two plain-data trees first differ, in words (``None`` when they are equal):
    ``"training.batch_size: 32 before, 64 now"``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                return f"{where}: absent before, {_short(new[key])} now"
            if key not in new:
                return f"{where}: {_short(old[key])} before, absent now"
            found = difference(old[key], new[key], where)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    same = old == new or (_is_nan(old) and _is_nan(new))
    return None if same else f"{path or 'value'}: {_short(old)} before, {_short(new)} now"


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
