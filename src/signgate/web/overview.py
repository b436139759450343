"""Overview: what needs attention, from the use cases the other pages call: keys whose
rotation is due within 14 days, the approvals waiting, the signatures of the last 30
days per key and per identity (``reports.totals``, one pass over an index), and the log's
latest checkpoint with its witnesses' cosignatures."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from signgate.policy import decide
from signgate.service import keys, log, reports, requests
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


@router.get("/overview")
def overview(request: Request, console: Signed) -> Response:
    now = console.ctx.clock.now()
    soon = (now + SOON).isoformat(timespec="seconds")
    due = [(k, d) for k in keys.list_keys(console.ctx, console.caller)
           if k.state == "active" and (d := next_rotation(k)) and d <= soon]
    pending = requests.list_requests(console.ctx, console.caller, pending=True)
    totals = None
    if decide.audit_scopes(console.me.actor) != ():
        totals = reports.totals(console.ctx, console.caller,
                                reports.SignatureQuery(since=now - WINDOW))
    note = log.checkpoint(console.ctx).decode()
    return page(request, "overview.html", due=due, pending=pending, totals=totals,
                note=note, witnesses=cosignatures(note),
                size=note.split("\n")[1] if note.count("\n") > 1 else "?")
