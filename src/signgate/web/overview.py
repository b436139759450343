"""Overview: what needs attention, from the use cases the other pages call: keys whose
rotation is due within 14 days, the approvals waiting, the signatures of the last 30
days per key and per identity (``reports.totals``, one pass over an index) and per day
per project with the refusals beside them (``reports.daily``, drawn by ``web/chart.py``),
the service's health (what GET /healthz checks: database and key store; and each scanning
engine with its version, reachable or not), and the log's latest checkpoint with its
witnesses' cosignatures."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from signgate.errors import ConfigError, Unavailable
from signgate.policy import decide
from signgate.scan.health import engine_health
from signgate.service import keys, log, reports, requests
from signgate.service.bootstrap import check_vault
from signgate.service.context import Context
from signgate.web import chart
from signgate.web.keys import next_rotation
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Signed = Annotated[Console, Depends(signed_in)]
SOON = timedelta(days=14)
WINDOW = timedelta(days=30)
SIGNATURE_PREFIX = "\u2014 "  # a signed note's signature line (C2SP signed-note)


def cosignatures(note: str) -> int:
    """The witnesses' cosignatures on a checkpoint note: its signature lines but the
    log's own (the first)."""
    _, _, sigs = note.partition("\n\n")
    return max(0, sum(line.startswith(SIGNATURE_PREFIX) for line in sigs.splitlines()) - 1)


def service_health(ctx: Context) -> str:
    """"ok", or why a signing cannot be served now (GET /healthz's 503 reason)."""
    try:
        ctx.db.ping()
        check_vault(ctx)
    except (Unavailable, ConfigError) as exc:
        return str(exc)
    return "ok"


@router.get("/overview")
def overview(request: Request, console: Signed) -> Response:
    now = console.ctx.clock.now()
    soon = (now + SOON).isoformat(timespec="seconds")
    due = [(k, d) for k in keys.list_keys(console.ctx, console.caller)
           if k.state == "active" and (d := next_rotation(k)) and d <= soon]
    pending = requests.list_requests(console.ctx, console.caller, pending=True)
    totals = days = None
    if decide.audit_scopes(console.me.actor) != ():
        totals = reports.totals(console.ctx, console.caller,
                                reports.SignatureQuery(since=now - WINDOW))
        # The window's first day whole: 30 days of counts, today's included.
        first = (now - WINDOW + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
        days = chart.series(reports.daily(console.ctx, console.caller, first), now.date(),
                            WINDOW.days)
    note = log.checkpoint(console.ctx).decode()
    return page(request, "overview.html", due=due, pending=pending, totals=totals,
                days=days, chart=chart.svg(days) if days else None,
                health=service_health(console.ctx),
                engines=engine_health(console.ctx.scanners),
                note=note, witnesses=cosignatures(note),
                size=note.split("\n")[1] if note.count("\n") > 1 else "?")
