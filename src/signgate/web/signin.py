"""Sign-in and sign-out: with an API token pasted into the form, or, when
``ui_oidc_issuer`` is set, through that OpenID Connect provider (a link on this page to
web/oidc_signin.py), which opens the same kind of session (docs/design.md, "The web
console"): the cookie and everything after it stay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from signgate.errors import AuthenticationFailed, AuthenticationThrottled
from signgate.service import ui_oidc, ui_sessions
from signgate.web import session
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path of this console (no other site, no scheme-relative //host)."""
    if target and target.startswith(session.PATH) and not target.startswith("//") \
            and "\\" not in target:
        return target
    return session.PATH


def people_client(request: Request) -> ui_oidc.Client | None:
    """The OIDC provider people may sign in through (api/app.py reads it at start)."""
    client: ui_oidc.Client | None = getattr(request.app.state, "ui_oidc", None)
    return client


def form(request: Request, next_: str | None, status: int = 200,
         error: str | None = None) -> Response:
    """The sign-in page (with ``error`` said on it, and answered with ``status``)."""
    nonce = session.new_signin_nonce()
    client = people_client(request)
    response = page(request, "sign_in.html", status, csrf=nonce, next=_safe_next(next_),
                    error=error, nav=(), provider=client.label if client else None)
    session.set_cookie(request, response, session.SIGNIN_COOKIE, nonce, max_age=3600)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return form(request, next)


@router.post("/sign-in")
def sign_in(request: Request, token: Annotated[str, Form(max_length=512)] = "",
            next: Annotated[str, Form(max_length=2048)] = "") -> Response:
    ctx = session.context(request)
    if not token.strip():
        return form(request, next, 400, "Paste an API token to sign in.")
    try:
        opened = ui_sessions.open_session(ctx, session.token_caller(request, token.strip()))
    except AuthenticationThrottled:
        raise
    except AuthenticationFailed:
        return form(request, next, 401, "Sign-in failed: that token is not valid.")
    response = RedirectResponse(_safe_next(next), 303)
    session.set_cookie(request, response, session.COOKIE, opened.session_id)
    session.clear_cookie(request, response, session.SIGNIN_COOKIE)
    return response


@router.post("/sign-out")
def sign_out(request: Request, console: Annotated[Console, Depends(signed_in)]) -> Response:
    ui_sessions.close_session(console.ctx, console.caller)
    response = RedirectResponse(session.PATH + "sign-in", 303)
    session.clear_cookie(request, response, session.COOKIE)
    return response


@router.get("/")
def home(console: Annotated[Console, Depends(signed_in)]) -> Response:
    first = session.nav_of(console.me)[0][0]
    return RedirectResponse(first, 303)
