"""Long operations as a stream of progress lines (NDJSON), so that no client times out.

A client that sends ``Accept: application/x-ndjson`` gets, instead of one JSON answer at
the end, one JSON object per line as the operation goes::

    {"progress": {"done": 0, "total": 1000000}}
    {"progress": {"done": 250000, "total": 1000000}}
    ...
    {"result": {...the same object the plain JSON answer holds...}}

or, if it fails once the stream has begun, ``{"error": {"code": ..., "detail": ...}}`` as
the last line. A line goes out at least every :data:`HEARTBEAT` seconds, repeating the
last progress if there is none new, so a client's read timeout (30 s by default) never
fires while the server works, however long the log. The operation runs in a thread of
its own; it is started before the response, and a refusal (authentication, grants) that
comes before its first progress is answered as the usual problem+json with its status.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from starlette.responses import StreamingResponse

from signgate import errors

NDJSON = "application/x-ndjson"
HEARTBEAT = 0.5  # seconds between lines at most
log = logging.getLogger("signgate.api")

Progress = Callable[[int, int], None]


def wants_stream(request: Request) -> bool:
    return NDJSON in request.headers.get("accept", "")


class _Done:
    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error


def stream(work: Callable[[Progress], Any]) -> StreamingResponse:
    """Run ``work(progress)`` in a thread; answer with its progress lines and its result.

    Raises what ``work`` raised if it fails before it first reports progress (so that a
    refusal keeps its HTTP status)."""
    events: queue.Queue[tuple[int, int] | _Done] = queue.Queue()

    def progress(done: int, total: int) -> None:
        events.put((done, total))

    def run() -> None:
        try:
            events.put(_Done(result=work(progress)))
        except BaseException as exc:  # reported to the client, in the answer or the stream
            events.put(_Done(error=exc))

    threading.Thread(target=run, name="signgate-long-operation", daemon=True).start()
    first = events.get()
    if isinstance(first, _Done) and first.error is not None:
        raise first.error
    return StreamingResponse(_lines(first, events), media_type=NDJSON)


def _lines(first: tuple[int, int] | _Done,
           events: queue.Queue[tuple[int, int] | _Done]) -> Iterator[bytes]:
    sent: tuple[int, int] | None = None
    latest: tuple[int, int] | None = None
    event: tuple[int, int] | _Done | None = first
    while True:
        # Everything that came meanwhile: only the newest progress is worth a line.
        while event is not None:
            if isinstance(event, _Done):
                if latest is not None and latest != sent:
                    yield _progress(latest)  # how far it got, before how it ended
                yield _line(_outcome(event))
                return
            latest = event
            event = events.get_nowait() if not events.empty() else None
        assert latest is not None
        yield _progress(latest)  # new progress, or the same again as a heartbeat
        sent = latest
        try:
            event = events.get(timeout=HEARTBEAT)
        except queue.Empty:
            event = None


def _progress(at: tuple[int, int]) -> bytes:
    return _line({"progress": {"done": at[0], "total": at[1]}})


def _outcome(done: _Done) -> dict[str, Any]:
    if done.error is None:
        return {"result": jsonable_encoder(done.result)}
    exc = done.error
    if isinstance(exc, errors.SigngateError):
        return {"error": {"code": exc.code.value, "detail": exc.message}}
    log.error("unexpected error in a streamed operation: %s", type(exc).__name__,
              exc_info=exc)
    return {"error": {"code": errors.ErrorCode.INTERNAL_ERROR.value,
                      "detail": "internal error; the server log has the details"}}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
