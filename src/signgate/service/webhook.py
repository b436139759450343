"""Tell approvers of each new pending signing request: a JSON POST to
``approval_webhook_url``, signed with HMAC-SHA256 under the secret in
``approval_webhook_secret_file``.

The body is the request as ``GET /api/v1/requests/{id}`` shows it, under
``{"event": "request.pending", "request": {...}}``; the header
``X-Signgate-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes, so a
receiver checks it before it trusts a word (GitHub's webhook convention).

Delivery never blocks or fails a signing: requests are queued to one background thread
that posts each with a few retries and exponential backoff, and logs what it could not
deliver (never the secret). Approvers can always list pending requests themselves
(``signgate request list --pending``): the webhook is a notification, not a channel the
approval depends on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from signgate.config import Settings
from signgate.errors import ConfigError
from signgate.service.views import RequestView

log = logging.getLogger("signgate.webhook")

SIGNATURE_HEADER = "X-Signgate-Signature"
ATTEMPTS = 5
FIRST_BACKOFF = 0.5  # seconds; doubled after each failed attempt
TIMEOUT = 10.0
MAX_QUEUED = 10_000


def signature(secret: bytes, body: bytes) -> str:
    """The header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def body_of(view: RequestView) -> bytes:
    """The JSON body for a new pending request."""
    return json.dumps({"event": "request.pending", "request": dataclasses.asdict(view)},
                      default=_jsonable, sort_keys=True, separators=(",", ":")).encode()


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def read_secret(path: str) -> bytes:
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read approval_webhook_secret_file {path}: "
                          f"{exc.strerror}") from exc
    if len(secret) < 16:
        raise ConfigError(f"approval_webhook_secret_file {path} must hold a secret of at "
                          "least 16 bytes")
    return secret


class ApprovalWebhook:
    """The queue of notifications and the thread that delivers them."""

    def __init__(self, url: str, secret: bytes, *, attempts: int = ATTEMPTS,
                 backoff: float = FIRST_BACKOFF) -> None:
        self.url = url
        self._secret = secret
        self.attempts = attempts
        self.backoff = backoff
        self._queue: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUED)
        self._thread = threading.Thread(target=self._run, name="signgate-webhook",
                                        daemon=True)
        self._thread.start()

    def __repr__(self) -> str:  # never the secret
        return f"ApprovalWebhook(url={self.url!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalWebhook | None:
        if not settings.approval_webhook_url or not settings.approval_webhook_secret_file:
            return None
        return cls(settings.approval_webhook_url,
                   read_secret(settings.approval_webhook_secret_file))

    def notify(self, view: RequestView) -> None:
        """Queue the notification of ``view``; returns at once."""
        try:
            self._queue.put_nowait(body_of(view))
        except queue.Full:
            log.error("approval webhook: %d notifications queued, dropping the one for "
                      "request %s", MAX_QUEUED, view.request_id)

    def close(self) -> None:
        """Stop after what is queued (each delivery keeps its retries)."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            while (body := self._queue.get()) is not None:
                self._deliver(client, body)

    def _deliver(self, client: httpx.Client, body: bytes) -> None:
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature(self._secret, body),
                   "User-Agent": "signgate-webhook"}
        delay = self.backoff
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = client.post(self.url, content=body, headers=headers)
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning("approval webhook: attempt %d of %d to %s failed (%s)", attempt,
                        self.attempts, self.url, problem)
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        log.error("approval webhook: gave up on %s after %d attempts (%s)", self.url,
                  self.attempts, problem)
