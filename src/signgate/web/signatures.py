"""Signatures: the report of who signed what (``service/reports.py``, paged by the audit
seq in index order), filtered by a GET form so that every view has its URL (project, key,
identity, time, format, and outcome: the signatures made or the refused signings with
their reason); CSV and JSON
exports of exactly the filtered rows, with the columns and values of ``signgate report
signatures --format csv|json``; a page per signature with its log entry and how to
verify it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from signgate.clock import parse_time
from signgate.errors import NotFound
from signgate.formats.registry import NAMES
from signgate.service import audit, log, reports
from signgate.service.views import SignatureRow, SignatureTotals
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# The columns of `signgate report signatures --format csv` (cli/report.py), in its order.
FIELDS = ["signed_at", "key", "key_version", "identity", "artifact_name", "digest_algorithm",
          "digest", "format", "timestamp_time", "scan", "log_index", "audit_seq",
          "signature_id", "oidc", "outcome", "reason"]
OUTCOMES = ("allowed", "refused")
PAGE_SIZES = (25, 50, 100, 500)
_row_json = TypeAdapter(SignatureRow)
_totals_json = TypeAdapter(SignatureTotals)


@dataclass(frozen=True)
class Filters:
    """The form's values as typed (for the form and the links), and the query they make."""

    project: str
    key: str
    identity: str
    since: str
    until: str
    format: str
    outcome: str
    query: reports.SignatureQuery

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("project", self.project), ("key", self.key),
                                  ("identity", self.identity), ("since", self.since),
                                  ("until", self.until), ("format", self.format),
                                  ("outcome", "" if self.outcome == "allowed" else
                                   self.outcome)) if v}


def filters(
    project: Annotated[str, Query(max_length=63)] = "",
    key: Annotated[str, Query(max_length=127)] = "",
    identity: Annotated[str, Query(max_length=63)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    format: Annotated[str, Query(max_length=40)] = "",
    outcome: Literal["allowed", "refused"] = "allowed",
) -> Filters:
    project, key, identity, since, until, format = (
        v.strip() for v in (project, key, identity, since, until, format))
    q = reports.SignatureQuery(
        project=project or None, key=key or None, identity=identity or None,
        since=parse_time(since) if since else None, until=parse_time(until) if until else None,
        after=after, limit=limit, format=format or None, outcome=outcome)
    return Filters(project, key, identity, since, until, format, outcome, q)


Signed = Annotated[Console, Depends(signed_in)]
Filtered = Annotated[Filters, Depends(filters)]


def as_json(row: SignatureRow) -> dict[str, Any]:
    """A row exactly as the API answers it (and so as the CLI writes it)."""
    out: dict[str, Any] = _row_json.dump_python(row, mode="json")
    return out


@router.get("/signatures")
def signature_list(request: Request, console: Signed, f: Filtered) -> Response:
    result = reports.signatures(console.ctx, console.caller, f.query)
    template = "_signature_rows.html" if request.headers.get("hx-request") else \
        "signatures.html"
    return page(request, template, f=f, rows=result.signatures, next_after=result.next_after,
                page_sizes=PAGE_SIZES, outcomes=OUTCOMES, formats=NAMES,
                export=f.params())


def _all(console: Console, q: reports.SignatureQuery) -> Iterator[SignatureRow]:
    after = q.after
    while True:
        result = reports.signatures(console.ctx, console.caller,
                                    replace(q, after=after, limit=reports.MAX_PAGE))
        yield from result.signatures
        if result.next_after is None:
            return
        after = result.next_after


@router.get("/signatures.csv")
def signature_csv(console: Signed, f: Filtered) -> Response:
    # Refused before the first byte (a refusal is a page, not a truncated file).
    reports.totals(console.ctx, console.caller, f.query)

    def lines() -> Iterator[str]:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n",
                           extrasaction="ignore")
        w.writeheader()
        for row in _all(console, f.query):
            w.writerow(as_json(row))
            if buf.tell() > 65536:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="signatures.csv"'})


@router.get("/signatures.json")
def signature_json(console: Signed, f: Filtered) -> Response:
    """As ``signgate report signatures --format json``: {signatures, totals}."""
    totals = reports.totals(console.ctx, console.caller, f.query)

    def chunks() -> Iterator[str]:
        yield '{"signatures": ['
        for n, row in enumerate(_all(console, f.query)):
            yield (",\n  " if n else "\n  ") + json.dumps(as_json(row), sort_keys=True)
        yield ('\n],\n"totals": ' + json.dumps(_totals_json.dump_python(totals, mode="json"),
                                                sort_keys=True, indent=2) + "}\n")

    return StreamingResponse(chunks(), media_type="application/json", headers={
        "Content-Disposition": 'attachment; filename="signatures.json"'})


def verify_commands(row: SignatureRow) -> list[str]:
    """How to check this signature offline (README, 'Verifying' and 'Receipts')."""
    name = row.artifact_name.rsplit("/", 1)[-1] or "ARTIFACT"
    if row.format == "raw":
        first = f"signgate verify {name} --signature {name}.sig --key {row.key}"
    else:
        first = f"signgate verify {name} --signature SIGNATURE --format {row.format}"
    return [first,
            "LOG_KEY=$(signgate log public-key | sed -n 's/^verifier key: //p')",
            f'signgate log verify-receipt {name}.sig.proof --artifact {name} '
            f'--log-key "$LOG_KEY"']


@router.get("/signatures/{seq}")
def signature_detail(request: Request, console: Signed,
                     seq: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    # The first signature at or after seq that the identity may read: it is this one or
    # there is none to show (the same scoping as the list).
    found = reports.signatures(console.ctx, console.caller,
                               reports.SignatureQuery(after=seq - 1, limit=1)).signatures
    if not found or found[0].audit_seq != seq:
        raise NotFound(f"no signature at log entry {seq}")
    row = found[0]
    entries = audit.query(console.ctx, console.caller,
                          audit.AuditQuery(action="signature.create", after=seq - 1,
                                           limit=1)).entries
    entry = entries[0] if entries and entries[0].seq == seq else None
    return page(request, "signature.html", row=row, entry=entry,
                checkpoint=log.checkpoint(console.ctx).decode(),
                details=json.dumps(entry.details, indent=2, sort_keys=True) if entry else "",
                commands=verify_commands(row))
