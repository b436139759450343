"""Every request's id, time and outcome: the request-latency metrics and the access log.

A pure ASGI wrapper around the whole application (``app.create_app``), so that it sees
every request, those answered before any route (413, 408) and those of endpoints in front
of the framework, and costs a request only what it does itself: two clock readings, a
look at the headers, one histogram observation (about 2 µs; ``bench/observability_cost.py``
measures it), and one line of JSON when the access log is on.

- Request ids: an incoming ``X-Request-Id`` is kept if it is 1 to 128 characters of
  ``[A-Za-z0-9._:+/=-]`` starting with a letter or digit (nothing a log line or a header
  could be bent by); anything else is replaced by one made here (a per-process random
  prefix and a counter). Every response carries the id in ``X-Request-Id``.
- Metrics: the latency histogram is labelled with the route *template* that answered
  (``/api/v1/projects/{project}/keys/{key}/sign``), never the raw path, so its series are
  as many as the routes; requests no route answered share ``<unmatched>``.
- Access log: one JSON object per line on standard error (:class:`AccessLog`), with
  the identity the token belonged to when the service learnt it (``RequestNote``).
  Never a header, a query string or a body: nothing that could hold a secret.

An endpoint that answers in front of the framework names its route with
:func:`name_route` and gives :func:`note_of` to the ``Caller`` it makes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signgate import metrics
from signgate.service.caller import RequestNote

REQUEST_ID = "signgate.request_id"  # scope keys
NOTE = "signgate.note"
ROUTE = "signgate.route"
UNMATCHED = "<unmatched>"
HEADER = b"x-request-id"
MAX_PATH = 2048  # characters of a path written to the access log

_SAFE_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
_prefix = secrets.token_hex(6)  # this process's request ids: unique across processes
_counter = itertools.count(1)


def _forked() -> None:
    """A forked worker (a pre-forking server) gets a prefix of its own."""
    global _prefix, _counter
    _prefix, _counter = secrets.token_hex(6), itertools.count(1)


os.register_at_fork(after_in_child=_forked)


def new_request_id() -> bytes:
    return f"{_prefix}-{next(_counter):x}".encode()


def request_id(scope: Scope) -> bytes:
    """The request's ``X-Request-Id`` if it is safe to repeat, else a new one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            if _SAFE_ID.fullmatch(value):
                return bytes(value)
            break
    return new_request_id()


def name_route(scope: Scope, template: str) -> None:
    """For an endpoint outside the framework's router: the route template it answered."""
    scope[ROUTE] = template


def note_of(scope: Scope) -> RequestNote | None:
    """The note a ``Caller`` carries for this request (None: no access log)."""
    note = scope.get(NOTE)
    return note if isinstance(note, RequestNote) else None


def route_of(scope: Scope, root_path: str) -> str:
    """The template of the route that answered: named by an endpoint, set by the router
    (FastAPI's routes), or a mount's prefix (its root path grew)."""
    named = scope.get(ROUTE)
    if named is not None:
        return str(named)
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    mounted = scope.get("root_path", root_path)
    if isinstance(mounted, str) and mounted != root_path:
        return mounted[len(root_path):] + "/{path}"
    return UNMATCHED


_text = json.encoder.encode_basestring_ascii  # the C one; its output is ASCII


class AccessLog:
    """Writes access log lines: one ``os.write`` each (whole lines, so the lines of
    several workers sharing standard error never interleave mid-line), each line built
    by hand from JSON-escaped parts. ``logging`` and ``json.dumps`` cost some 30 µs a
    line; this costs a few."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._second = -1
        self._stamp = ""

    def _time(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # the formatted second, made once per second
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                              time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def line(self, rid: bytes, method: str, path: str, route: str, status: int,
             seconds: float, identity: str | None, remote: str | None) -> bytes:
        return (f'{{"time":"{self._time()}","request_id":"{rid.decode("ascii")}",'
                f'"method":{_text(method)},"path":{_text(path[:MAX_PATH])},'
                f'"route":{_text(route)},"status":{status},'
                f'"duration_ms":{seconds * 1000:.3f},'
                f'"identity":{"null" if identity is None else _text(identity)},'
                f'"remote":{"null" if remote is None else _text(remote)}}}\n').encode("ascii")

    def write(self, line: bytes) -> None:
        os.write(self.fd, line)


class Observe:
    """ASGI wrapper: request ids always; with ``timed`` the latency histogram; with
    ``access_log`` one line per request."""

    def __init__(self, app: ASGIApp, *, timed: bool = True,
                 access_log: AccessLog | None = None) -> None:
        self.app = app
        self.timed = timed
        self.log = access_log
        self._latency = metrics.Children(metrics.HTTP_REQUESTS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        rid = request_id(scope)
        scope[REQUEST_ID] = rid
        note = None
        if self.log is not None:
            note = scope[NOTE] = RequestNote()
        status = 0
        header = (HEADER, rid)

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            status = status or 500  # what the server answers for it
            raise
        finally:
            if self.timed or self.log is not None:
                seconds = time.perf_counter() - started
                route = route_of(scope, root_path)
                if self.timed:
                    method = scope["method"]
                    self._latency(route, method if method in _METHODS else "OTHER",
                                  _CLASSES[status // 100 if 100 <= status < 600 else 0],
                                  ).observe(seconds)
                if self.log is not None:
                    self._write(scope, rid, route, status, seconds, note)

    def _write(self, scope: Scope, rid: bytes, route: str, status: int, seconds: float,
               note: RequestNote | None) -> None:
        assert self.log is not None
        client = scope.get("client")
        self.log.write(self.log.line(rid, scope["method"], scope["path"], route, status,
                                     seconds, note.identity if note is not None else None,
                                     client[0] if client else None))
