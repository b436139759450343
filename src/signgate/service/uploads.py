"""An upload's body into the spool: one private file, hashed on the way in, removed
whatever goes wrong.

Admission (may this upload take room in the spool at all) is ``spool.py``'s; this module
receives the body into the directory admission gave it.

The event loop only receives, and never waits for the disk: it copies the body's chunks
into one of two 1 MiB buffers, and a worker thread hashes and writes each full buffer
(``hashlib`` and ``os.write`` release the GIL) while the loop fills the other. One buffer is
in the thread at a time, so the hash sees the bytes in order, and memory stays at the two
buffers per upload. (Handing the chunks themselves to the thread saves that copy but keeps
them alive longer, and the allocator then returns and re-faults their pages: more CPU in
all, measured with ``bench/scan_throughput.py``'s CPU columns.)
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

BUFFER = 1 << 20  # handed to the writer thread at a time
# Shared by every upload of the process; each upload has at most one buffer in it.
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
    """Hashes and writes one upload's bytes to ``fd`` in a worker thread, a full buffer at
    a time, while the caller fills the other buffer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.hash = hashlib.sha256()
        self.buffers = (bytearray(BUFFER), bytearray(BUFFER))
        self.current = 0
        self.filled = 0
        self.in_flight: concurrent.futures.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            n = min(len(view), BUFFER - self.filled)
            self.buffers[self.current][self.filled:self.filled + n] = view[:n]
            self.filled += n
            view = view[n:]
            if self.filled == BUFFER:
                await self._hand_over()

    async def finish(self) -> str:
        """Once the last bytes are written: the SHA-256 of everything added, in hex."""
        if self.filled:
            await self._hand_over()
        await self._written()
        return self.hash.hexdigest()

    def close(self) -> None:
        """Close the file, at once or, if a buffer is still being written (the request
        was cancelled while it waited for it), when that write ends: never under it."""
        if self.in_flight is None or self.in_flight.done():
            os.close(self.fd)
        else:
            self.in_flight.add_done_callback(lambda _: os.close(self.fd))

    async def _hand_over(self) -> None:
        # The other buffer's write first: it is then free to fill, and the hash in order.
        await self._written()
        full = memoryview(self.buffers[self.current])[:self.filled]
        self.in_flight = _WRITERS.submit(self._write, full)
        self.current ^= 1
        self.filled = 0

    async def _written(self) -> None:
        """Wait for the buffer in the thread; its error (a full disk) is raised here."""
        if self.in_flight is not None:
            await asyncio.wrap_future(self.in_flight)
            self.in_flight = None

    def _write(self, data: memoryview) -> None:
        self.hash.update(data)
        while data:  # a short write (a signal, the disk filling): write the rest
            data = data[os.write(self.fd, data):]
