"""The OpenAPI document: every operation declares the problem+json answers it can give.

The refusals are declared here once, for every route, instead of by hand on each: the error
handlers in ``api/problems.py`` (and the body limit in ``api/limits.py``) answer them for
any route, so the document says so for any route. A route that already declares a status
itself (``POST /tsa`` answers its 400/413/503 with an RFC 3161 ``TimeStampResp``) keeps its
own declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from signgate.api.problems import MEDIA_TYPE
from signgate.api.scan import is_upload

PROBLEM_REF = "#/components/schemas/Problem"

# RFC 9457 §3.1 members, plus signgate's stable machine code and, for a request that does
# not validate, the list of what was wrong.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: what was refused and why.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:signgate:problem:not_found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "stable machine-readable code"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}

# Answers any route can give, with or without a token.
ANY_ROUTE: dict[int, str] = {
    400: "Invalid input (a bad name, digest, algorithm, parameter, time ...)",
    404: "No such thing, or one the caller may not see",
    408: "The request body stopped arriving (idle longer than the configured deadline)",
    413: "Request body over the configured limit",
    422: "The request does not match this operation's schema, or a verification failed",
    429: "Too many requests (rate limit or upload concurrency); try again later",
    503: "The database, key store or a scanner is unavailable (fail closed)",
    507: "The upload spool has no room left; try again later",
}
# Answers of routes that need 'Authorization: Bearer <token>'.
AUTHENTICATED: dict[int, str] = {
    401: "Missing or invalid token",
    403: "The identity may not do this; the detail says why",
    409: "Conflict: a duplicate, or a state that forbids the action",
}


# Answers of artifact uploads (scan, sign-upload), admitted before their body is read.
UPLOAD: dict[int, str] = {
    411: "The upload does not declare its length (Content-Length)",
}


# Every /api/v1 route needs a token (api/deps.py); the others (health, CRLs, the TSA, the
# documentation) are public.
AUTHENTICATED_PREFIX = "/api/v1/"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}}


def declare_problems(schema: dict[str, Any]) -> None:
    """Add the problem responses to every operation of ``schema`` (in place)."""
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            statuses = dict(ANY_ROUTE)
            if path.startswith(AUTHENTICATED_PREFIX):
                statuses |= AUTHENTICATED
            if is_upload(path):
                statuses |= UPLOAD
            responses = operation.setdefault("responses", {})
            for status, description in sorted(statuses.items()):
                key = str(status)
                ours = responses.get(key, {}).get("content", {}).keys() - {"application/json"}
                if key in responses and ours:
                    continue  # the route's own declaration (another media type) stands
                responses[key] = _problem(description)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    # FastAPI's own 422 body (never sent: problems.py renders validation errors) is gone.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def install(app: FastAPI) -> None:
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_problems(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
