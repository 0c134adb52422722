"""The bad-input corpus' one check: a command refuses with one clear line and changes nothing.

    refused(capsys, ["predict", model, str(bad)], "bad.fa.gz", "truncated", watch=out_folder)

runs ``titans-sci ARGV`` in-process and asserts: exit status 2; exactly one line on stderr,
``titans-sci: ...``, holding every one of ``names`` (the file, the record, the column...); no
traceback; and no file created, changed or removed under each ``watch`` folder. Then it runs the
command again with ``--debug`` and asserts the traceback shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from titans_sci.cli import main


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path -> (size, mtime in ns)."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refused(
    capsys, argv: Sequence[str], *names: str, watch: Sequence[Path] = (), debug: bool = True
) -> str:
    """Assert ``titans-sci argv`` refuses (see the module docstring); return the line."""
    capsys.readouterr()
    before = {folder: snapshot(folder) for folder in watch}
    status = main(list(argv))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status == 2, f"exit status {status}; stderr: {captured.err[-2000:]}"
    assert len(lines) == 1, f"expected one line, got: {captured.err[-2000:]}"
    line = lines[0]
    assert line.startswith("titans-sci: "), line
    assert "Traceback" not in captured.err
    for name in names:
        assert name in line, f"{name!r} not in: {line}"
    for folder, files in before.items():
        assert snapshot(folder) == files, f"{folder} changed: {line}"
    if debug:
        assert main([argv[0], "--debug", *argv[1:]]) == 2
        assert "Traceback" in capsys.readouterr().err
    return line
