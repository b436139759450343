"""An upload's body into the spool: one private file, hashed (and, with clamd configured,
scanned) on the way in, removed whatever goes wrong.

Admission (may this upload take room in the spool at all) is ``spool.py``'s; this module
receives the body into the directory admission gave it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from signgate.errors import ErrorCode, PayloadTooLarge, SigngateError, StorageFull
from signgate.scan.base import Verdict
from signgate.scan.clamd import ClamdScanner
from signgate.scan.clamd_stream import StreamedClamd

CHUNK_WRITE = 1 << 20


@dataclass
class Spooled:
    path: Path  # spool/<private directory>/<artifact's file name>: errors name the artifact
    size: int = 0
    sha256: str = ""
    _hash: Any = field(default_factory=lambda: hashlib.sha256())
    streamed: Verdict | SigngateError | None = None  # clamd's answer, given on the way

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


def _file_name(artifact_name: str) -> str:
    name = PurePosixPath(artifact_name.replace("\\", "/")).name
    safe = "".join(c if c.isprintable() else "_" for c in name)[:200]
    return safe if safe not in ("", ".", "..") else "artifact"


def spool_dir(data_dir: Path) -> Path:
    path = data_dir / "spool"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the artifact is larger than the scan limit of {limit} bytes "
                           "(scan_max_bytes)", code=ErrorCode.ARTIFACT_TOO_LARGE)


async def receive(directory: Path, stream: AsyncIterator[bytes], limit: int,
                  artifact_name: str, clamd: ClamdScanner | None) -> Spooled:
    """The request body into a file in ``directory`` (the upload's private spool directory,
    see ``spool.admit``), hashed and (with ``clamd``) scanned on the way; more than
    ``limit`` bytes: PayloadTooLarge; a full disk: StorageFull. Whatever goes wrong (the
    client stalls or disconnects too), nothing is kept."""
    spooled = Spooled(directory / _file_name(artifact_name))
    streaming = StreamedClamd(clamd) if clamd is not None else None
    try:
        fd = os.open(spooled.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb", buffering=CHUNK_WRITE) as out:
            async for chunk in stream:
                spooled.size += len(chunk)
                if spooled.size > limit:
                    raise too_large(limit)
                spooled._hash.update(chunk)
                out.write(chunk)
                if streaming is not None:
                    await streaming.feed(chunk)
    except OSError as exc:
        spooled.remove()
        if streaming is not None:
            await streaming.abandon()
        if exc.errno == errno.ENOSPC:
            raise StorageFull("the disk holding the upload spool is full",
                              code=ErrorCode.SPOOL_DISK_FULL) from exc
        raise
    except BaseException:
        spooled.remove()
        if streaming is not None:
            await streaming.abandon()
        raise
    spooled.sha256 = spooled._hash.hexdigest()
    if streaming is not None:
        spooled.streamed = await streaming.finish()
    return spooled
