"""The console's router, mounted at /ui/ by ``api/app.py``: its pages, its static files,
and a page (not the API's problem+json) for any other /ui/ path."""

from __future__ import annotations

from fastapi import APIRouter

from signgate.errors import NotFound
from signgate.web import approvals, audit, identities, keys, overview, signatures, signin, static
from signgate.web.routing import WebRoute

router = APIRouter(prefix="/ui", route_class=WebRoute, include_in_schema=False)
for part in (signin.router, static.router, signatures.router, keys.router,
             approvals.router, overview.router, identities.router, audit.router):
    router.include_router(part)


@router.api_route("/{rest:path}", methods=["GET", "POST"])
def not_found(rest: str) -> None:
    raise NotFound(f"no page /ui/{rest}")
