"""An upload's body into the spool: one private file, hashed on the way in, removed
whatever goes wrong.

Admission (may this upload take room in the spool at all) is ``spool.py``'s; this module
receives the body into the directory admission gave it.

The event loop only receives: the body's chunks are handed in batches of about 1 MiB to a
worker thread that hashes and writes them (``hashlib`` and ``os.writev`` release the GIL),
while the loop receives the next batch. One batch is in the thread at a time, so the hash
sees the bytes in order and memory stays at two batches per upload, and no chunk is copied
on the way (``writev`` takes the chunks as they came).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from signgate.errors import ErrorCode, PayloadTooLarge, StorageFull

BATCH_BYTES = 1 << 20  # handed to the writer thread at a time
BATCH_CHUNKS = 512  # and at most this many chunks (writev takes at most IOV_MAX = 1024)
# Shared by every upload of the process; each upload has at most one batch in it.
_WRITERS = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                 thread_name_prefix="signgate-spool")


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
    writer: _SpoolWriter | None = None
    try:
        writer = _SpoolWriter(os.open(spooled.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                      0o600))
        async for chunk in stream:
            spooled.size += len(chunk)
            if spooled.size > limit:
                raise too_large(limit)
            await writer.add(chunk)
        spooled.sha256 = await writer.finish()
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
        if writer is not None:
            writer.close()
    return spooled


class _SpoolWriter:
    """Hashes and writes one upload's chunks to ``fd`` in a worker thread, a batch at a
    time, while the caller receives the next batch."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.hash = hashlib.sha256()
        self.batch: list[bytes] = []
        self.batched = 0
        self.in_flight: concurrent.futures.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.batch.append(chunk)
        self.batched += len(chunk)
        if self.batched >= BATCH_BYTES or len(self.batch) >= BATCH_CHUNKS:
            await self._hand_over()

    async def finish(self) -> str:
        """Once the last batch is written: the SHA-256 of everything added, in hex."""
        if self.batch:
            await self._hand_over()
        await self._written()
        return self.hash.hexdigest()

    def close(self) -> None:
        """Close the file, at once or, if a batch is still being written (the request
        was cancelled while it waited for it), when that write ends: never under it."""
        if self.in_flight is None or self.in_flight.done():
            os.close(self.fd)
        else:
            self.in_flight.add_done_callback(lambda _: os.close(self.fd))

    async def _hand_over(self) -> None:
        await self._written()  # the previous batch first: the hash needs them in order
        batch, self.batch, self.batched = self.batch, [], 0
        self.in_flight = _WRITERS.submit(self._write, batch)

    async def _written(self) -> None:
        """Wait for the batch in the thread; its error (a full disk) is raised here."""
        if self.in_flight is not None:
            await asyncio.wrap_future(self.in_flight)
            self.in_flight = None

    def _write(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self.hash.update(chunk)
        _write_all(self.fd, batch)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    written = os.writev(fd, chunks)
    total = sum(map(len, chunks))
    if written < total:  # a short write (a signal, the disk filling): write the rest
        rest = memoryview(b"".join(chunks))[written:]
        while rest:
            rest = rest[os.write(fd, rest):]
