"""Rendering: the Jinja2 environment (autoescape on), the security headers every /ui/
response carries, and the error page.

The Content-Security-Policy allows scripts, styles and forms from this origin only: no
inline script or style anywhere in the templates (htmx's own inline indicator style is
switched off by its meta configuration in ``base.html``)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(str(files("signgate.web") / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


def secured(response: Response) -> Response:
    """``response`` with the console's security headers (kept if a handler set its own
    Cache-Control, as the static files do)."""
    for name, value in HEADERS.items():
        if name not in response.headers:
            response.headers[name] = value
    return response


def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` rendered with ``values`` and the request's console state (the signed-in
    identity and its CSRF token, when there is a session)."""
    values.setdefault("me", getattr(request.state, "ui_session", None))
    values.setdefault("csrf", getattr(request.state, "ui_csrf", ""))
    values.setdefault("nav", getattr(request.state, "ui_nav", ()))
    html = _env.get_template(template).render(request=request, **values)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", status, title=title, message=message)
