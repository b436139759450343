"""clamd scanning an upload while it arrives, so that receiving and scanning overlap.

The upload's chunks go to clamd's ``zINSTREAM`` from a helper thread through a bounded
queue: memory stays at a few chunks however fast the client sends, and the event loop is
never blocked on clamd (when clamd is behind, the put waits in a worker thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading

from signgate.errors import ScannerUnavailable, SigngateError
from signgate.scan.base import Verdict
from signgate.scan.clamd import ClamdScanner

CHUNK = 1 << 20  # what is handed to clamd at a time


class StreamedClamd:
    """One upload's stream to clamd: :meth:`feed` its chunks, then :meth:`finish` for the
    verdict (or :meth:`abandon` when the upload failed)."""

    def __init__(self, scanner: ClamdScanner) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.result: concurrent.futures.Future[Verdict] = concurrent.futures.Future()
        self.buffer = bytearray()
        threading.Thread(target=self._run, args=(scanner,), daemon=True,
                         name="signgate-clamd-stream").start()

    def _run(self, scanner: ClamdScanner) -> None:
        try:
            self.result.set_result(scanner.scan_chunks(iter(self.queue.get, None)))
        except BaseException as exc:  # handed to the request: fail closed there
            self.result.set_exception(exc)

    def _put(self, item: bytes | None) -> None:
        """Blocks while clamd is behind; gives up once clamd has stopped reading."""
        while not self.result.done():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    async def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= CHUNK:
            await self._send(bytes(self.buffer))
            self.buffer.clear()

    async def _send(self, item: bytes | None) -> None:
        if self.result.done():
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(self._put, item)

    async def finish(self) -> Verdict | SigngateError:
        """clamd's verdict, or why it could not give one (never raised: the caller records
        it with the upload's other verdicts and refuses then)."""
        if self.buffer:
            await self._send(bytes(self.buffer))
            self.buffer.clear()
        await self._send(None)
        try:
            return await asyncio.wrap_future(self.result)
        except SigngateError as exc:
            return exc
        except Exception as exc:
            return ScannerUnavailable("clamav", f"{type(exc).__name__}: {exc}")

    async def abandon(self) -> None:
        """The upload failed: end the stream (clamd's answer is not wanted)."""
        await self._send(None)
