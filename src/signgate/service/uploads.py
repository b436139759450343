"""An upload's body into the spool: one private file, hashed on the way in, removed
whatever goes wrong.

Admission (may this upload take room in the spool at all) is ``spool.py``'s; this module
receives the body into the directory admission gave it.

The body is hashed and written as each chunk arrives, on the event loop: a chunk is
hashed once and written once (``os.write``, straight from the chunk), then dropped. Handing
the chunks to a worker thread instead (as they came, or copied into alternating buffers)
was measured to cost 20-65 % more of the server's CPU for the same upload (thread
hand-offs, and pages the allocator returns and faults in again) and was slower on the
2-core machine, where the client and clamd want the other core; the write goes to the page
cache, so the loop waits for the disk only when the kernel throttles writers.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from signgate.errors import ErrorCode, PayloadTooLarge, StorageFull


@dataclass
class Spooled:
    path: Path  # spool/<private directory>/<artifact's file name>: errors name the artifact
    size: int = 0
    sha256: str = ""

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
                  artifact_name: str) -> Spooled:
    """The request body into a file in ``directory`` (the upload's private spool directory,
    see ``spool.admit``), hashed on the way; more than ``limit`` bytes: PayloadTooLarge; a
    full disk: StorageFull. Whatever goes wrong (the client stalls or disconnects too),
    nothing is kept.

    The SHA-256 computed here is the one pass over the bytes that signgate makes: the
    deny-list and the signing use it, and the scanners read the file it was computed on."""
    spooled = Spooled(directory / _file_name(artifact_name))
    digest = hashlib.sha256()
    fd = -1
    try:
        fd = os.open(spooled.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        async for chunk in stream:
            spooled.size += len(chunk)
            if spooled.size > limit:
                raise too_large(limit)
            digest.update(chunk)
            _write_all(fd, chunk)
    except OSError as exc:
        spooled.remove()
        if exc.errno == errno.ENOSPC:
            raise StorageFull("the disk holding the upload spool is full",
                              code=ErrorCode.SPOOL_DISK_FULL) from exc
        raise
    except BaseException:
        spooled.remove()
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    spooled.sha256 = digest.hexdigest()
    return spooled


def _write_all(fd: int, chunk: bytes) -> None:
    data = memoryview(chunk)
    while data:  # a short write (a signal, the disk filling): write the rest
        data = data[os.write(fd, data):]
