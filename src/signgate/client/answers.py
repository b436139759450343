"""Server answers as errors: an RFC 9457 problem (or any answer of 400 and above) rebuilt
as the very :class:`~signgate.errors.SigngateError` class the server raised.

Pure (status, reason, body in; error out), so that both HTTP clients use it: the full
client (httpx, ``client.py``) and the command line's light one (``lite.py``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from signgate import errors

DEFAULT_URL = "http://127.0.0.1:8080"

# The family an HTTP status names (the inverse of api/problems.py), for the answers whose
# code names no family: a code this version does not know (a newer server's), a code of
# the root class (``internal_error``, ``http_error``, ...), or a body that is not a problem.
BY_STATUS: dict[int, type[errors.SigngateError]] = {
    400: errors.InvalidInput,
    401: errors.AuthenticationFailed,
    403: errors.Denied,
    404: errors.NotFound,
    408: errors.RequestTimeout,
    409: errors.Conflict,
    411: errors.LengthRequired,
    413: errors.PayloadTooLarge,
    422: errors.InvalidInput,
    429: errors.LimitExceeded,
    503: errors.Unavailable,
    507: errors.StorageFull,
}


def error_from(status: int, reason: str, body: bytes) -> errors.SigngateError:
    """The error an answer of ``status`` with ``body`` reports (``errors.CATALOGUE`` binds
    each code to one class), with its code and the server's sentence."""
    try:
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError("not a problem")
        detail = str(parsed.get("detail") or reason)
        wire_code = str(parsed.get("code") or "")
    except ValueError:
        detail = f"HTTP {status} {reason}"
        wire_code = ""
    return error_of(status, detail, wire_code)


def error_of(status: int, detail: str, wire_code: str) -> errors.SigngateError:
    """The error of a problem's status, detail and code (also one batch item's)."""
    cls = errors.class_of(wire_code)
    if cls is not None and cls is not errors.SigngateError:
        return errors.rebuild(cls, detail, errors.ErrorCode(wire_code))
    family = BY_STATUS.get(status, errors.SigngateError)
    if cls is not None:  # a code of the root class: the status names the family
        return errors.rebuild(family, detail, errors.ErrorCode(wire_code))
    # A code this client does not know keeps its wire string among the details.
    return errors.rebuild(family, detail, details={"server_code": wire_code} if wire_code else None)


def key_path(ref: str) -> str:
    """The API path of the key ``ref`` (PROJECT/NAME), each part quoted."""
    project, sep, name = ref.partition("/")
    if not sep or not project or not name:
        raise errors.InvalidInput(f"key must be named PROJECT/NAME, got {ref!r}")
    return f"/api/v1/projects/{quote(project, safe='')}/keys/{quote(name, safe='')}"


def digest_body(digest_algorithm: str, digest_hex: str, artifact_name: str,
                metadata: dict[str, str] | None, timestamp: bool, format: str,
                params: dict[str, str] | None, release: str | None) -> dict[str, Any]:
    """The body of ``POST …/sign`` for a digest."""
    body: dict[str, Any] = {
        "digest_algorithm": digest_algorithm, "digest": digest_hex,
        "artifact_name": artifact_name, "metadata": metadata or {},
        "timestamp": timestamp, "format": format, "params": params or {}}
    if release is not None:
        body["release"] = release
    return body
