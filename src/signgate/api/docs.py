"""The interactive API documentation (/docs, /redoc), served without any outside host.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on an offline
or air-gapped network, which is where a signing service often lives. The same pages are
served here with the JavaScript and CSS that the ``fastapi-offline`` package ships, under
``/docs/static``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

STATIC_URL = "/docs/static"
ASSETS = Path(str(files("fastapi_offline").joinpath("static")))


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc (create the app with ``docs_url=redoc_url=None``)."""
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="docs-static")

    def _urls(request: Request) -> tuple[str, str]:
        root = str(request.scope.get("root_path", ""))
        return f"{root}{app.openapi_url}", f"{root}{STATIC_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, static = _urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - API",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
            # No OAuth flow, and no badge from the public validator service.
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, static = _urls(request)
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - API",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False,
        )
