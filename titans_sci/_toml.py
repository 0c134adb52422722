"""Reading task files: TOML tables checked against dataclasses, errors naming file and key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from titans_sci._dicts import from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: table name -> (dataclass, {key: expected type}); keys absent from the type map are passed on
#: unchecked (the dataclass still rejects unknown keys).
TableSpec = dict[str, tuple[type, dict[str, type]]]


def read_tables(
    path: str | Path, spec: TableSpec, kind: str, required: tuple[str, ...] = ("task",)
) -> dict:
    """Each table of the TOML file ``path`` built into its dataclass: ``{table: instance}``.

    Unknown tables or keys, wrong types, missing required tables and a ``[task] kind`` other
    than ``kind`` raise a ``ValueError`` naming the file, the table and the key. An int where a
    float is expected is accepted.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: cannot read the task file: {error}") from None
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected {sorted(spec)}")
    for table in required:
        if table not in data:
            raise ValueError(f"{path}: missing the [{table}] table")
    parts: dict[str, Any] = {}
    for table, (cls, types) in spec.items():
        values = data.get(table, {})
        if not isinstance(values, dict):
            raise ValueError(f"{path}: {table} should be a table ([{table}])")
        for key, value in values.items():
            expected = types.get(key)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                values[key] = value
            wrong_bool = isinstance(value, bool) and expected in (int, float)
            if expected is not None and (not isinstance(value, expected) or wrong_bool):
                raise ValueError(
                    f"{path}: [{table}] {key} = {value!r} should be {expected.__name__}"
                )
        try:
            parts[table] = from_dict(cls, values)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: [{table}] {error}") from None
    if parts["task"].kind != kind:
        raise ValueError(
            f"{path}: [task] kind = {parts['task'].kind!r}; this reader takes {kind!r}"
        )
    return parts
