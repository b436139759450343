"""The approval webhook against a real HTTP receiver on 127.0.0.1: the HMAC header over the
exact body, retries with backoff, giving up (logged, never raised) and a secret that never
appears in the log."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from signgate.errors import ConfigError
from signgate.service.views import RequestView
from signgate.service.webhook import ApprovalWebhook, read_secret, signature

SECRET = b"0123456789abcdef-secret"
VIEW = RequestView(
    request_id="5b0d2b2e-0d7c-4a9e-9a53-7a3a1f1d2c10", key="acme/release",
    artifact_name="app.bin", digest_algorithm="sha256", digest="ab" * 32, format="raw",
    requester="ci", state="pending", required=2, approver_scope="acme/release",
    created_at=datetime(2026, 1, 1, tzinfo=UTC), expires_at=datetime(2026, 1, 2, tzinfo=UTC),
    audit_seq=7)


class Hook:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # answered in turn; the last one repeats
        self.got: list[tuple[dict[str, str], bytes, float]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.got.append(({k.lower(): v for k, v in self.headers.items()}, body,
                                 time.monotonic()))
                status = hook.statuses[min(len(hook.got), len(hook.statuses)) - 1]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    made: list[Hook] = []

    def make(statuses: list[int]) -> Hook:
        made.append(Hook(statuses))
        return made[-1]

    yield make
    for h in made:
        h.httpd.shutdown()


def test_delivered_with_a_valid_hmac_after_a_retry(hook_factory: Any) -> None:
    hook = hook_factory([503, 200])
    webhook = ApprovalWebhook(hook.url, SECRET, attempts=3, backoff=0.2)
    webhook.notify(VIEW)
    webhook.close()
    assert len(hook.got) == 2
    (_, first, t1), (headers, body, t2) = hook.got
    assert first == body
    assert t2 - t1 >= 0.2  # backed off
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers["x-signgate-signature"] == expected == signature(SECRET, body)
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["event"] == "request.pending"
    assert doc["request"]["request_id"] == VIEW.request_id
    # A body changed in transit no longer matches the header.
    assert signature(SECRET, body.replace(b"app.bin", b"evil.bin")) != expected


def test_gives_up_logged_and_never_raises(hook_factory: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    hook = hook_factory([500])
    webhook = ApprovalWebhook(hook.url, SECRET, attempts=3, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="signgate.webhook"):
        webhook.notify(VIEW)  # returns at once
        webhook.close()
    assert len(hook.got) == 3
    assert "gave up" in caplog.text
    assert SECRET.decode() not in caplog.text
    assert SECRET.decode() not in repr(webhook)


def test_an_unreachable_receiver_is_retried_then_given_up(
        caplog: pytest.LogCaptureFixture) -> None:
    webhook = ApprovalWebhook("http://127.0.0.1:9/hook", SECRET, attempts=2, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="signgate.webhook"):
        webhook.notify(VIEW)
        webhook.close()
    assert caplog.text.count("failed (ConnectError)") == 2
    assert "gave up" in caplog.text


def test_the_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    assert read_secret(str(path)) == SECRET
    path.write_bytes(b"short")
    with pytest.raises(ConfigError) as short:
        read_secret(str(path))
    assert "short" not in str(short.value)
    with pytest.raises(ConfigError):
        read_secret(str(tmp_path / "missing"))
