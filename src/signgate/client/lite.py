"""A light HTTP client for the command line's signing path, on the standard library.

``signgate sign`` is run once per artifact by CI jobs, so its fixed cost matters: importing
httpx (and the SSL context with certifi's bundle that an ``httpx.Client`` builds even for
an ``http://`` URL) cost more than the rest of a one-byte signing. For an ``http://`` URL
the command line therefore signs through :class:`LiteClient`: one keep-alive
``http.client`` connection, the same paths and bodies, and the same errors
(``answers.error_from``). Anything it does not implement itself (an upload, say) goes to a
full :class:`~signgate.client.client.SigngateClient`, made on first use.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from signgate.client.answers import digest_body, error_from, key_path
from signgate.errors import Unavailable

TIMEOUT = 30.0
BATCH_TIMEOUT = 300.0  # a batch of 1,000 signings may take longer than one


class LiteClient:
    """The signing calls of ``SigngateClient`` over ``http://``; others are delegated."""

    def __init__(self, url: str, token: str, full: Callable[[], Any]) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"LiteClient speaks plain http only, not {url!r}")
        self._prefix = parts.path
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                                timeout=TIMEOUT)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._make_full = full
        self._full: Any = None

    def __enter__(self) -> LiteClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()
        if self._full is not None:
            self._full.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class does not define: the full client's.
        if name.startswith("_"):
            raise AttributeError(name)
        if self._full is None:
            self._full = self._make_full()
        return getattr(self._full, name)

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Mapping[str, Any] | None = None, timeout: float = TIMEOUT) -> Any:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self._headers)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
            self._conn.request(method, target, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise Unavailable(f"cannot reach signgate at {self.url}: {exc}") from exc
        if response.status >= 400:
            raise error_from(response.status, response.reason, data)
        return json.loads(data) if data else None

    def sign_policy(self, ref: str, artifact_name: str) -> Any:
        return self.request("GET", key_path(ref) + "/sign-policy",
                            params={"artifact_name": artifact_name})

    def public_key(self, ref: str, version: int | None = None) -> Any:
        params = {"version": version} if version is not None else None
        return self.request("GET", key_path(ref) + "/public", params=params)

    def get_request(self, request_id: str) -> Any:
        from urllib.parse import quote

        return self.request("GET", f"/api/v1/requests/{quote(request_id, safe='')}")

    def sign_digest(self, ref: str, digest_algorithm: str, digest_hex: str, artifact_name: str,
                    metadata: dict[str, str] | None = None, timestamp: bool = False,
                    format: str = "raw", params: dict[str, str] | None = None,
                    release: str | None = None) -> Any:
        body = digest_body(digest_algorithm, digest_hex, artifact_name, metadata, timestamp,
                           format, params, release)
        return self.request("POST", key_path(ref) + "/sign", json_body=body)

    def sign_batch(self, ref: str, items: Sequence[Mapping[str, Any]]) -> Any:
        return self.request("POST", key_path(ref) + "/sign-batch",
                            json_body={"items": [dict(i) for i in items]},
                            timeout=BATCH_TIMEOUT)
