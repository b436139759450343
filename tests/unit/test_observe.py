"""api/observe.py's ASGI wrapper over real ASGI apps (a FastAPI app, a bare endpoint),
and what service/observed.py counts of committed audit records.

The wrapper is called as a server calls it (scope, receive, send); the metrics are read
from prometheus_client's registry, before and after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from signgate import metrics
from signgate.api import observe
from signgate.audit.model import Action, Outcome, Record
from signgate.service import observed

LATENCY = "signgate_http_request_duration_seconds_count"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("defect")

    return app


def call(app: Any, path: str, method: str = "GET",
         headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[bytes, bytes]]:
    """One request through ``app``; the status and the response headers."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers or [],
             "client": ("192.0.2.7", 5555), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)

    with contextlib.suppress(RuntimeError):  # a defect: the server answers 500 for it
        asyncio.run(run())
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return 0, {}
    return start["status"], dict(start["headers"])


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_route_templates_not_paths() -> None:
    app = observe.Observe(_app())
    before = count(LATENCY, route="/items/{item}", method="GET", status="2xx")
    for n in range(3):
        assert call(app, f"/items/secret-{n}")[0] == 200
    assert count(LATENCY, route="/items/{item}", method="GET", status="2xx") == before + 3
    assert all("secret" not in str(s.labels) for m in REGISTRY.collect() for s in m.samples)


def test_unmatched_errors_and_odd_methods_are_bounded() -> None:
    app = observe.Observe(_app())
    unmatched = count(LATENCY, route="<unmatched>", method="GET", status="4xx")
    other = count(LATENCY, route="<unmatched>", method="OTHER", status="4xx")
    failed = count(LATENCY, route="/boom", method="GET", status="5xx")
    assert call(app, "/nowhere/1")[0] == 404
    assert call(app, "/nowhere/2", method="BREW")[0] in (404, 405)
    call(app, "/boom")  # raises: the server's 500
    assert count(LATENCY, route="<unmatched>", method="GET", status="4xx") == unmatched + 1
    assert count(LATENCY, route="<unmatched>", method="OTHER", status="4xx") == other + 1
    assert count(LATENCY, route="/boom", method="GET", status="5xx") == failed + 1


def test_an_endpoint_in_front_of_the_framework_names_its_route() -> None:
    async def lean(scope: Any, receive: Any, send: Any) -> None:
        observe.name_route(scope, "/lean/{thing}")
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = observe.Observe(lean)
    before = count(LATENCY, route="/lean/{thing}", method="POST", status="2xx")
    status, headers = call(app, "/lean/x", method="POST")
    assert status == 201
    assert headers[b"x-request-id"]
    assert count(LATENCY, route="/lean/{thing}", method="POST", status="2xx") == before + 1


@pytest.mark.parametrize(("given", "kept"), [
    (b"3f2a9c1e-7b4d-4e0a-9a55-0c1d2e3f4a5b", True),
    (b"req.1:2+3/4=5_6-7", True),
    (b"a" * 128, True),
    (b"a" * 129, False),
    (b"", False),
    (b"-leading-dash", False),
    (b"with space", False),
    (b"new\r\nline", False),
    (b'{"json":1}', False),
    ("ünï".encode(), False),
])
def test_request_ids_are_kept_only_when_safe(given: bytes, kept: bool) -> None:
    app = observe.Observe(_app())
    _, headers = call(app, "/items/a", headers=[(b"x-request-id", given)])
    rid = headers[b"x-request-id"]
    assert (rid == given) is kept
    assert observe._SAFE_ID.fullmatch(rid)


def test_generated_ids_are_unique() -> None:
    app = observe.Observe(_app())
    ids = {call(app, "/items/a")[1][b"x-request-id"] for _ in range(50)}
    assert len(ids) == 50


def test_the_access_log_line(tmp_path: Path) -> None:
    async def authenticated(scope: Any, receive: Any, send: Any) -> None:
        note = observe.note_of(scope)
        assert note is not None
        note.identity = "ci-büild"  # what Caller.noted does once the token is known
        observe.name_route(scope, "/x/{y}")
        await send({"type": "http.response.start", "status": 403, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    path = tmp_path / "access.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        app = observe.Observe(authenticated, timed=False, access_log=observe.AccessLog(fd))
        for p in ("/x/secret", '/x/"quoted"\n\u2028'):
            call(app, p, method="POST",
                 headers=[(b"authorization", b"Bearer sgt_not-in-the-log"),
                          (b"x-request-id", b"abc-123")])
    finally:
        os.close(fd)
    text = path.read_text("ascii")  # non-ASCII is escaped
    lines = [json.loads(x) for x in text.splitlines()]
    assert len(lines) == 2
    line = lines[0]
    assert line == {"time": line["time"], "request_id": "abc-123", "method": "POST",
                    "path": "/x/secret", "route": "/x/{y}", "status": 403,
                    "duration_ms": line["duration_ms"], "identity": "ci-büild",
                    "remote": "192.0.2.7"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert isinstance(line["duration_ms"], float)
    assert lines[1]["path"] == '/x/"quoted"\n\u2028'  # one line, whatever the path holds
    assert "sgt_" not in text


def test_committed_records_are_counted_without_invented_keys() -> None:
    def refusals(key: str, action: str, reason: str) -> float:
        return count("signgate_refusals_total", key=key, action=action, reason=reason)

    signed = count("signgate_signatures_total", key="p/k", format="cms")
    denied = refusals("p/k", "signature.create", "denied")
    unknown = refusals("", "signature.create", "not_found")
    auth = refusals("", "auth.authenticate", "authentication_failed")
    observed.committed([
        Record("ci", Action.SIGN, Outcome.ALLOWED, "a.bin", "p", "p/k", {"format": "cms"}),
        Record("ci", Action.SIGN, Outcome.REFUSED, "a.bin", "p", "p/k", {"code": "denied"}),
        # A key named by the request that may not exist: no label value for it.
        Record("ci", Action.SIGN, Outcome.REFUSED, "a", "p", "p/invented-1",
               {"code": "not_found"}),
        # Failed authentications: anonymous, and a summary counts every attempt.
        Record("anonymous", Action.AUTHENTICATE, Outcome.REFUSED, "x", "p", "p/invented-2",
               {"code": "authentication_failed", "attempts": 1}),
        Record("anonymous", Action.AUTHENTICATE, Outcome.REFUSED, "7 failed", None, None,
               {"code": "authentication_failed", "attempts": 7}),
        Record("admin", Action.PROJECT_CREATE, Outcome.ALLOWED, "p", "p"),
    ], 0.001)
    assert count("signgate_signatures_total", key="p/k", format="cms") == signed + 1
    assert refusals("p/k", "signature.create", "denied") == denied + 1
    assert refusals("", "signature.create", "not_found") == unknown + 1
    assert refusals("", "auth.authenticate", "authentication_failed") == auth + 8
    labels = {s.labels.get("key") for m in REGISTRY.collect() for s in m.samples}
    assert not {"p/invented-1", "p/invented-2"} & labels


def test_key_labels_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_keys_seen", set())
    monkeypatch.setattr(metrics, "MAX_KEY_LABELS", 3)
    assert [metrics.key_label(f"p/k{i}") for i in range(5)] == [
        "p/k0", "p/k1", "p/k2", metrics.OTHER_KEY, metrics.OTHER_KEY]
    assert metrics.key_label("p/k1") == "p/k1"  # one already named stays named


def test_a_forked_process_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out
        os.write(write, observe.new_request_id())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100)
    os.close(read)
    mine = observe.new_request_id()
    assert child.split(b"-")[0] != mine.split(b"-")[0]
