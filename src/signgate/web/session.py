"""The console's session and request forgery defences.

- The session cookie holds a random id (``service/ui_sessions.py`` keeps only its hash):
  ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui/``, and ``Secure`` when the request came
  over HTTPS or ``ui_secure_cookies`` is set.
- Every POST carries a CSRF token: for a session, the HMAC-SHA256 of the session id (keyed
  by it, so the token is unforgeable without the cookie and reveals nothing of it); for
  the sign-in form, which has no session yet, a random value also set in a cookie of its
  own (double submit). Forms send it as the field ``csrf``, htmx as the header
  ``X-CSRF-Token``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from signgate.errors import AuthenticationFailed, AuthenticationThrottled
from signgate.policy import decide
from signgate.policy.model import Role
from signgate.service import ui_sessions
from signgate.service.context import Caller, Context
from signgate.service.ui_sessions import SessionView

COOKIE = "signgate_session"
SIGNIN_COOKIE = "signgate_signin"
PATH = "/ui/"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_CSRF_LABEL = b"signgate web console csrf v1"


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in page."""


class CsrfRefused(Exception):
    """A POST without the right CSRF token: 403."""


@dataclass(frozen=True)
class Console:
    """One request's view of the console: the context, the caller (its session), who it
    is, and its CSRF token."""

    ctx: Context
    caller: Caller
    me: SessionView
    csrf: str


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


def session_caller(request: Request, session_id: str) -> Caller:
    client = request.client
    return Caller(None, client.host if client else None, session=session_id)


def token_caller(request: Request, token: str) -> Caller:
    client = request.client
    return Caller(token, client.host if client else None)


def nav_of(me: SessionView) -> list[tuple[str, str]]:
    """The pages the identity may use: (path, title)."""
    items = [(PATH + "overview", "Overview")]
    if decide.audit_scopes(me.actor) != ():
        items.append((PATH + "signatures", "Signatures"))
    items.append((PATH + "keys", "Keys"))
    items.append((PATH + "approvals", "Approvals"))
    if any(g.role is Role.ADMIN and g.scope.key is None for g in me.actor.grants):
        items.append((PATH + "identities", "Identities"))
    if decide.audit_scopes(me.actor) != ():
        items.append((PATH + "audit", "Audit"))
    return items


def signed_in(request: Request) -> Console:
    """The request's live session (a FastAPI dependency), else :class:`SignInRequired`.
    The identity is checked again on every request: a disabled identity, a rotated token
    or an ended session stops working at once."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 128:
        raise SignInRequired()
    ctx = context(request)
    caller = session_caller(request, sid)
    try:
        me = ui_sessions.current(ctx, caller)
    except AuthenticationThrottled:
        raise
    except AuthenticationFailed:
        raise SignInRequired() from None
    csrf = csrf_token(sid)
    request.state.ui_session = me
    request.state.ui_csrf = csrf
    request.state.ui_nav = nav_of(me)
    return Console(ctx, caller, me, csrf)


def check_csrf(request: Request, presented: str | None) -> None:
    """Raise :class:`CsrfRefused` unless ``presented`` (the form field or header) is the
    token this request's session (or, on the sign-in form, its sign-in cookie) expects."""
    if request.url.path == PATH + "sign-in":
        expected = request.cookies.get(SIGNIN_COOKIE)
    else:
        sid = request.cookies.get(COOKIE)
        expected = csrf_token(sid) if sid else None
    if not expected or not presented or not hmac.compare_digest(
            presented.encode(), expected.encode()):
        raise CsrfRefused()


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: int | None = None) -> None:
    settings = context(request).settings
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True,
                        samesite="strict",
                        secure=settings.ui_secure_cookies or is_https(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    settings = context(request).settings
    response.delete_cookie(name, path=PATH, httponly=True, samesite="strict",
                           secure=settings.ui_secure_cookies or is_https(request))


def new_signin_nonce() -> str:
    return secrets.token_urlsafe(24)
