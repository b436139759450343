"""The FastAPI application: routes, error mapping, body limit, health check, and around
it all the request ids, latency metrics and access log (``observe.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse

from signgate import __version__
from signgate.api import (
    batch,
    docs,
    log,
    metrics,
    observe,
    openapi,
    problems,
    requests,
    scan,
    tsa,
    windows,
)
from signgate.api.fastsign import FastSign
from signgate.api.limits import BodyIdleTimeout, BodyLimit
from signgate.api.routes import public as public_router
from signgate.api.routes import router
from signgate.errors import ConfigError, Unavailable
from signgate.service import ui_oidc
from signgate.service.bootstrap import check_vault
from signgate.service.context import Context
from signgate.service.lifecycle import Stopping
from signgate.web.app import router as web_router


def _stop_on_signals(flag: Stopping) -> None:
    """SIGTERM or SIGINT also set ``flag``, at once: the ASGI server only then begins its
    graceful shutdown, and work in helper threads (which it cannot cancel) must end now,
    not when its grace period runs out. The server's own handler still runs."""
    if threading.current_thread() is not threading.main_thread():
        return  # an embedding (a test client) that owns no signals
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            flag.set()
            previous(number, frame)

        signal.signal(sig, handler)


def create_app(ctx: Context) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        flag = ctx.stopping
        _stop_on_signals(flag)
        try:
            yield
        finally:
            flag.set()
            # After the last request: record what is only counted in memory (failed
            # authentications of the current window), stop the signing thread.
            await asyncio.to_thread(ctx.close)
            metrics.process_ended()

    app = FastAPI(
        lifespan=lifespan,
        title="signgate",
        version=__version__,
        description="Self-hosted code signing: keys that never leave, who may sign what, "
        "every signature on the record. Every /api/v1 endpoint needs "
        "`Authorization: Bearer <token>`.",
        # signgate's record of what happened is its audit log; FastAPI's OpenTelemetry
        # hooks would cost every request an environment look-up and export nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None, redoc_url=None,  # served by api/docs.py, without a CDN
    )
    app.state.context = ctx
    # The web console's OIDC provider for people, its client secret read now (web/).
    app.state.ui_oidc = ui_oidc.from_settings(ctx.settings)
    problems.install(app)
    openapi.install(app)
    docs.install(app)
    app.include_router(router)
    app.include_router(batch.router)
    app.include_router(public_router)
    app.include_router(tsa.router)
    app.include_router(log.router)
    app.include_router(scan.router)
    app.include_router(requests.router)
    app.include_router(windows.router)
    app.include_router(web_router)  # the web console, /ui/ (web/)
    settings = ctx.settings
    if settings.metrics != "off":
        app.include_router(metrics.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when the database answers and the key store opens this database's keys;
        503 (problem+json, with the reason) when either cannot serve a signing."""
        try:
            ctx.db.ping()
            check_vault(ctx)
        except (Unavailable, ConfigError) as exc:
            return problems.problem(503, exc.code, "Unavailable", str(exc))
        return JSONResponse({"status": "ok", "version": __version__, "keystore": "ok"})

    # POST /tsa enforces its own, smaller limit and must refuse in RFC 3161's words (a
    # TimeStampResp), not with a problem+json that a time-stamp client cannot read.
    limited = BodyLimit(app, settings.max_body_bytes,
                        lambda path: scan.is_upload(path) or path == tsa.PATH)
    idle = BodyIdleTimeout(limited, settings.http_body_idle_timeout_seconds)
    # The signing route answers in front of the framework (api/fastsign.py).
    signing = FastSign(idle, ctx)
    # Outermost: every request gets its id and is timed, whoever answers it.
    return observe.Observe(signing, timed=settings.metrics != "off",
                           access_log=observe.AccessLog() if settings.access_log else None)
