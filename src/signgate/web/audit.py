"""Audit: the raw audit entries (``audit.query``, scoped exactly as ``GET /api/v1/audit``
and ``signgate audit log``) filtered by a GET form and paged by their seq; a page per
entry with every field, its details and its place in the hash chain; and the chain's
verification (``audit.verify``, as ``signgate audit verify``) run from a button, with the
log's latest checkpoint (size, root hash, the witnesses that cosigned it)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from signgate.audit.model import Action, Outcome
from signgate.clock import parse_time
from signgate.errors import InvalidInput, NotFound, Unavailable
from signgate.policy import decide
from signgate.policy.model import Scope
from signgate.service import audit, log
from signgate.service.views import AuditEntryView
from signgate.transparency.checkpoint import Checkpoint, parse_checkpoint
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Signed = Annotated[Console, Depends(signed_in)]
PAGE_SIZES = (25, 50, 100, 500)
ACTIONS = sorted(a.value for a in Action)
OUTCOMES = [o.value for o in Outcome]
SIGNATURE_PREFIX = "\u2014 "  # a signed note's signature line (C2SP signed-note)


@dataclass(frozen=True)
class Filters:
    """The form's values as typed (for the form and the links), and the query they make."""

    identity: str
    key: str
    project: str
    action: str
    outcome: str
    since: str
    until: str
    query: audit.AuditQuery

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (
            ("identity", self.identity), ("key", self.key), ("project", self.project),
            ("action", self.action), ("outcome", self.outcome), ("since", self.since),
            ("until", self.until)) if v}


def filters(
    identity: Annotated[str, Query(max_length=63)] = "",
    key: Annotated[str, Query(max_length=127)] = "",
    project: Annotated[str, Query(max_length=63)] = "",
    action: Annotated[str, Query(max_length=40)] = "",
    outcome: Annotated[str, Query(max_length=16)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Filters:
    identity, key, project, action, outcome, since, until = (
        v.strip() for v in (identity, key, project, action, outcome, since, until))
    if key and Scope.parse(key).key is None:
        raise InvalidInput(f"key {key!r} is not PROJECT/NAME")
    start = parse_time(since) if since else None
    end = parse_time(until) if until else None
    if start and end and start >= end:
        raise InvalidInput("the time range is empty: 'since' must be before 'until'")
    q = audit.AuditQuery(identity=identity or None, key=key or None, project=project or None,
                         action=action or None, outcome=outcome or None, since=start,
                         until=end, after=after, limit=limit)
    return Filters(identity, key, project, action, outcome, since, until, q)


Filtered = Annotated[Filters, Depends(filters)]


def summary(e: AuditEntryView) -> str:
    """The entry's details on one line, cut short (its page has all of them)."""
    text = json.dumps(e.details, sort_keys=True)
    return text if len(text) <= 120 else text[:119] + "…"


@dataclass(frozen=True)
class CheckpointFacts:
    checkpoint: Checkpoint
    witnesses: list[str]  # the names on the cosignature lines (all but the log's own)
    note: str

    @property
    def root_hash(self) -> str:
        """As the note writes it (base64)."""
        return base64.b64encode(self.checkpoint.root_hash).decode()


def checkpoint_facts(console: Console) -> CheckpointFacts | None:
    """None while the log has no checkpoint yet (the pages say so)."""
    try:
        note = log.checkpoint(console.ctx).decode()
    except Unavailable:
        return None
    return parse_note(note)


def parse_note(note: str) -> CheckpointFacts:
    """A signed checkpoint note's tree head and the names of its cosigners."""
    body, _, sigs = note.partition("\n\n")
    names = [line[len(SIGNATURE_PREFIX):].split(" ", 1)[0] for line in sigs.splitlines()
             if line.startswith(SIGNATURE_PREFIX)]
    return CheckpointFacts(parse_checkpoint(body + "\n"), names[1:], note)


def may_verify(console: Console) -> bool:
    """Verifying the chain reads every entry: global auditors and admins."""
    return decide.may_read_audit(console.me.actor, None).allowed


@router.get("/audit")
def audit_list(request: Request, console: Signed, f: Filtered) -> Response:
    result = audit.query(console.ctx, console.caller, f.query)
    rows = [(e, summary(e)) for e in result.entries]
    if request.headers.get("hx-request"):
        return page(request, "_audit_rows.html", f=f, rows=rows,
                    next_after=result.next_after, params=f.params())
    return page(request, "audit.html", f=f, rows=rows, next_after=result.next_after,
                params=f.params(), page_sizes=PAGE_SIZES, actions=ACTIONS,
                outcomes=OUTCOMES, verifier=may_verify(console),
                cp=checkpoint_facts(console))


@router.get("/audit/{seq}")
def audit_entry(request: Request, console: Signed,
                seq: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    # The first entry at or after seq that the identity may read: it is this one or there
    # is none to show (the same scoping as the list).
    found = audit.query(console.ctx, console.caller,
                        audit.AuditQuery(after=seq - 1, limit=1)).entries
    if not found or found[0].seq != seq:
        raise NotFound(f"no audit entry {seq}")
    e = found[0]
    return page(request, "audit_entry.html", e=e,
                details=json.dumps(e.details, indent=2, sort_keys=True))


@router.post("/audit/verify")
def audit_verify(request: Request, console: Signed) -> Response:
    """Recompute the hash chain and the log's tree from every entry (as ``signgate audit
    verify``); the page answers when it is done."""
    result = audit.verify(console.ctx, console.caller)
    return page(request, "audit_verify.html", r=result, cp=checkpoint_facts(console))
