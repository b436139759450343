"""The one place where errors become HTTP responses (RFC 9457 problem+json)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from signgate import errors
from signgate.errors import ErrorCode

log = logging.getLogger("signgate.api")

MEDIA_TYPE = "application/problem+json"

STATUS: list[tuple[type[errors.SigngateError], int]] = [
    (errors.PayloadTooLarge, 413),
    (errors.LengthRequired, 411),
    (errors.RequestTimeout, 408),
    (errors.InvalidInput, 400),
    (errors.AuthenticationThrottled, 429),
    (errors.AuthenticationFailed, 401),
    (errors.Denied, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.VerificationFailed, 422),
    (errors.StorageFull, 507),
    (errors.LimitExceeded, 429),
    (errors.Unavailable, 503),
    (errors.KeyStoreUnavailable, 503),
    (errors.KeyStoreError, 500),
    (errors.ConfigError, 500),
]


def status_for(exc: errors.SigngateError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(status: int, code: ErrorCode, title: str, detail: str,
            headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:signgate:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, **extra}
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def describe(exc: errors.SigngateError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, problem body and headers that answer ``exc``: a request's answer, or
    one item's outcome inside a batch signing's answer (api/batch.py)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    title = type(exc).__name__
    if isinstance(exc, errors.AuthenticationThrottled):
        # RFC 6585 §4: 429 with Retry-After (RFC 9110 §10.2.3, in seconds).
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, errors.LimitExceeded) and isinstance(
            exc.details.get("retry_after"), int):
        # A quota: when it resets (RFC 6585 §4, RFC 9110 §10.2.3).
        headers["Retry-After"] = str(exc.details["retry_after"])
    elif isinstance(exc, errors.AuthenticationFailed) and (
            exc.code is ErrorCode.AUTHENTICATION_FAILED or exc.identity is not None):
        # One answer whatever the cause (no token, unknown token, disabled identity):
        # built from the class alone, so nothing about the cause can leak into it.
        # (A refused OIDC exchange or an expired exchanged token says why: their
        # holders are CI jobs that must be told what to fix, service/oidc.py.)
        exc = errors.AuthenticationFailed()
        title = "AuthenticationFailed"
    body = {"type": f"urn:signgate:problem:{exc.code}", "title": title, "status": status,
            "detail": str(exc), "code": exc.code}
    return status, body, headers


def _template(path: str) -> re.Pattern[str]:
    """``/projects/{project}/keys/{key}`` as a pattern for request paths."""
    parts = re.split(r"\{[^}/]+\}", path)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def allowed_methods(request: Request) -> str | None:
    """Every method the API serves at this path (a 405 must list them in ``Allow``, RFC
    9110 §15.5.6), from the OpenAPI document; None for a path outside it."""
    methods: set[str] = set()
    for path, operations in request.app.openapi().get("paths", {}).items():
        if _template(path).fullmatch(request.url.path):
            methods |= {m.upper() for m in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


def error_response(exc: errors.SigngateError) -> JSONResponse:
    """A signgate error as its problem+json response (also an ASGI application)."""
    status, body, headers = describe(exc)
    if status >= 500:
        log.error("%s: %s", exc.code, exc)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.SigngateError)
    async def _signgate(_request: Request, exc: errors.SigngateError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            issues.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        detail = "invalid request: " + "; ".join(issues[:5])
        return problem(422, ErrorCode.INVALID_REQUEST, "InvalidInput", detail,
                       errors=issues[:20])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: ErrorCode.NOT_FOUND,
                405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code, ErrorCode.HTTP_ERROR)
        detail = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Not Found: no route {request.url.path}"
        elif exc.status_code == 405:
            detail = f"Method Not Allowed: {request.method} {request.url.path}"
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "GET")
        return problem(exc.status_code, code, "HTTPError", detail, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return problem(500, ErrorCode.INTERNAL_ERROR, "InternalError",
                       "internal error; the server log has the details")
