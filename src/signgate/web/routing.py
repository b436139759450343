"""The console's route class: every /ui/ answer is HTML with the security headers, every
POST's CSRF token is checked before its handler runs, and errors become pages (a bad
parameter 400, never a 500; no session: to the sign-in page)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from signgate import errors
from signgate.web import session
from signgate.web.render import error_page, secured

log = logging.getLogger("signgate.web")

# The error families as HTTP statuses (as api/problems.py maps them for the API).
STATUS: list[tuple[type[errors.SigngateError], int, str]] = [
    (errors.PayloadTooLarge, 413, "Too large"),
    (errors.InvalidInput, 400, "Bad request"),
    (errors.AuthenticationThrottled, 429, "Too many failed sign-ins"),
    (errors.AuthenticationFailed, 401, "Not signed in"),
    (errors.Denied, 403, "Not allowed"),
    (errors.NotFound, 404, "Not found"),
    (errors.Conflict, 409, "Conflict"),
    (errors.LimitExceeded, 429, "Limit reached"),
    (errors.Unavailable, 503, "Unavailable"),
    (errors.KeyStoreUnavailable, 503, "Key store unavailable"),
]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _status(exc: errors.SigngateError) -> tuple[int, str]:
    for cls, status, title in STATUS:
        if isinstance(exc, cls):
            return status, title
    return 500, "Error"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"{session.PATH}sign-in?next={quote(target, safe='')}", 303)
    if request.headers.get("hx-request"):
        response.headers["HX-Redirect"] = response.headers["location"]
    if request.cookies.get(session.COOKIE):
        session.clear_cookie(request, response, session.COOKIE)
    return response


async def _csrf_presented(request: Request) -> str | None:
    header = request.headers.get(session.CSRF_HEADER)
    if header:
        return header
    form = await request.form()  # cached on the request: the handler reads the same form
    value = form.get(session.CSRF_FIELD)
    return value if isinstance(value, str) else None


class WebRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                if request.method == "POST":
                    session.check_csrf(request, await _csrf_presented(request))
                response = await inner(request)
            except session.CsrfRefused:
                response = error_page(
                    request, 403, "Request refused",
                    "This form was not sent from a page of this console (its CSRF token is "
                    "missing or wrong). Reload the page and try again.")
            except session.SignInRequired:
                response = to_sign_in(request)
            except RequestValidationError as exc:
                response = error_page(request, 400, "Bad request", _validation_message(exc))
            except errors.SigngateError as exc:
                status, title = _status(exc)
                if status == 401:
                    response = to_sign_in(request)
                else:
                    response = error_page(request, status, title, str(exc))
            except HTTPException as exc:
                response = error_page(request, exc.status_code, "Error", str(exc.detail))
            except Exception:
                log.exception("web console: %s %s failed", request.method, request.url.path)
                response = error_page(request, 500, "Error",
                                      "Something went wrong; the server log has the details.")
            return secured(response)

        return handler
