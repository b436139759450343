"""Sign-in through the OpenID Connect provider people use (``ui_oidc_issuer``): the two
legs of the authorization code flow with PKCE that pass through the browser. The protocol
is service/ui_oidc.py's, the session and the audit entries service/ui_sessions.py's.

- ``GET /ui/oidc/start`` (a link on the sign-in page: a GET, because the CSP's
  ``form-action 'self'`` would stop a form whose answer redirects to the provider) sets
  the short-lived pre-session cookie and redirects to the provider's
  authorization_endpoint with state, nonce and the S256 code challenge.
- ``GET /ui/oidc/callback`` is where the provider sends the browser back. The pre-session
  cookie is ``SameSite=Lax`` (``Path=/ui/oidc/``, ``HttpOnly``, 10 minutes): that arrival
  is a cross-site top-level navigation, on which a browser sends Lax cookies but never
  Strict ones. Lax still keeps it from cross-site subrequests and POSTs, and the state
  check makes a forged callback useless anyway. The session cookie stays ``Strict``; so
  that the browser sends it on the next page although this navigation began at the
  provider (a redirect chain that began cross-site keeps Strict cookies back), the
  callback answers with a page that moves on by itself (a meta refresh, no script) rather
  than with a redirect.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from signgate.errors import AuthenticationFailed, AuthenticationThrottled, NotFound, Unavailable
from signgate.service import ui_oidc, ui_sessions
from signgate.web import session
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.signin import form, people_client

router = APIRouter(route_class=WebRoute, include_in_schema=False)

FLOW_COOKIE = "signgate_oidc"
FLOW_PATH = session.PATH + "oidc/"
LANDING = session.PATH + "overview"
Param = Annotated[str | None, Query(max_length=2048)]


def _client(request: Request) -> ui_oidc.Client:
    client = people_client(request)
    if client is None:
        raise NotFound("sign-in through an OIDC provider is not configured (ui_oidc_issuer)")
    return client


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _secure(request: Request) -> bool:
    return session.context(request).settings.ui_secure_cookies or session.is_https(request)


def _clear_flow(request: Request, response: Response) -> None:
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax",
                           secure=_secure(request))


def _refused(request: Request, client: ui_oidc.Client, status: int, why: str) -> Response:
    response = form(request, None, status, f"Sign-in through {client.label} failed: {why}")
    _clear_flow(request, response)
    return response


@router.get("/oidc/start")
def start(request: Request) -> Response:
    client = _client(request)
    ctx = session.context(request)
    try:
        cookie, url = ui_sessions.begin_person_sign_in(ctx, client, _address(request))
    except AuthenticationThrottled:
        raise
    except Unavailable as exc:
        return _refused(request, client, 503, str(exc))
    response = RedirectResponse(url, 303)
    response.set_cookie(FLOW_COOKIE, cookie, max_age=ui_oidc.FLOW_SECONDS, path=FLOW_PATH,
                        httponly=True, samesite="lax", secure=_secure(request))
    return response


@router.get("/oidc/callback")
def callback(request: Request, state: Param = None, code: Param = None, error: Param = None,
             error_description: Param = None) -> Response:
    client = _client(request)
    ctx = session.context(request)
    answer = {"state": state, "code": code, "error": error,
              "error_description": error_description}
    try:
        opened = ui_sessions.finish_person_sign_in(
            ctx, client, request.cookies.get(FLOW_COOKIE), answer, _address(request))
    except AuthenticationThrottled:
        raise
    except AuthenticationFailed as exc:
        return _refused(request, client, 401, str(exc))
    except Unavailable as exc:
        return _refused(request, client, 503, str(exc))
    response = page(request, "signed_in.html", 200, target=LANDING, identity=opened.identity,
                    provider=client.label)
    session.set_cookie(request, response, session.COOKIE, opened.session_id)
    _clear_flow(request, response)
    return response
