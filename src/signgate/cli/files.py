"""Local file work for the client: streaming digests with a progress bar, atomic writes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.digests import digest_stream
from signgate.errors import InvalidInput
from signgate.formats.base import Progress
from signgate.formats.files import write_atomic

__all__ = ["hash_file", "progress_bar", "write_atomic"]

PROGRESS_THRESHOLD = 8 << 20


def hash_file(path: Path, algorithm: DigestAlgorithm, progress: bool = True) -> bytes:
    """Digest ``path`` without loading it; a progress bar on stderr for big files."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            if not progress or size < PROGRESS_THRESHOLD:
                return digest_stream(f, algorithm)
            bar: Any = click.progressbar(length=size, label=f"hashing {path.name}",
                                         file=sys.stderr)
            with bar:
                return digest_stream(f, algorithm, bar.update)
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


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
