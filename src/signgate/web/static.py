"""The console's static files, served from the package (no CDN: the console works
offline): the stylesheet, and htmx 2.0.4 vendored from npm (``npm pack htmx.org@2.0.4``,
dist/htmx.min.js, SHA-256 e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447;
its licence beside it)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response

from signgate.errors import NotFound
from signgate.web.routing import WebRoute

HTMX_SHA256 = "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447"
TYPES = {"style.css": "text/css; charset=utf-8",
         "htmx.min.js": "text/javascript; charset=utf-8"}

router = APIRouter(route_class=WebRoute, include_in_schema=False)
_cache: dict[str, bytes] = {}


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in TYPES:
        raise NotFound(f"no file {name!r}")
    if name not in _cache:
        _cache[name] = (files("signgate.web") / "static" / name).read_bytes()
    return Response(_cache[name], media_type=TYPES[name],
                    headers={"Cache-Control": "public, max-age=3600"})
