"""A JSON store of benchmark results that several processes can fill, and its rendered table."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from pathlib import Path

from titans_sci.config import json_safe
from titans_sci.files import write_text


def save(
    entries: dict[str, dict],
    store_path: Path,
    table_path: Path,
    render: Callable[[dict[str, dict]], str],
    merge: Callable[[dict | None, dict], dict] | None = None,
) -> None:
    """Merge ``entries`` into the JSON store and rebuild the table from the whole store, under
    a file lock (so several benchmark processes, one per core, can fill one table); both files
    are replaced atomically. An entry replaces the one under its key, or with ``merge``
    becomes ``merge(stored entry or None, entry)`` (read under the same lock). A NaN or
    infinity anywhere in ``entries`` is refused with the key and field that hold it, before
    anything is written."""
    for key, entry in entries.items():
        _, bad = json_safe(entry)
        if bad:
            field, value = bad[0]
            raise ValueError(f"{store_path}: entry {key!r}, field {field} holds {value}")
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with open(store_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = json.loads(store_path.read_text()) if store_path.exists() else {}
        for key, entry in entries.items():
            store[key] = entry if merge is None else merge(store.get(key), entry)
        for path, text in ((store_path, json.dumps(store, indent=1, sort_keys=True,
                                                   allow_nan=False)),
                           (table_path, render(store))):  # fmt: skip
            write_text(path, text)
