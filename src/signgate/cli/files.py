"""Local file work for the CLI: progress bars over long reads, atomic writes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from signgate.formats.base import Progress
from signgate.formats.files import write_atomic

__all__ = ["progress_bar", "write_atomic"]

PROGRESS_THRESHOLD = 8 << 20


@contextmanager
def progress_bar(path: Path, label: str, enabled: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr while a big file is read; None for small files."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if not enabled or size < PROGRESS_THRESHOLD:
        yield None
        return
    bar: Any = click.progressbar(length=size, label=f"{label} {path.name}", file=sys.stderr)
    with bar:
        yield bar.update
