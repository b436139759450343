"""Reports on who signed what, when, with which key (``signgate report signatures``).

A page of signatures is a page of the audit log: the signing entries, with the filters
on the entry's own columns (project, key, actor, time) and its order (seq), so that one
index of the log (``ix_audit_key_seq``, ``ix_audit_actor_seq``, ...) yields the page in
order and the query stops after it: a page costs O(page), however many signatures the key
has. What was signed is read from the entry's details (the public record the log proves),
the timestamp token from the signature row that points at the entry (written in the same
transaction). Totals count the signature rows (key version, identity, time). Reports are
scoped exactly like the audit log: an auditor of a project or a key sees only the
signatures of that project or key, whatever the filters ask.

Two filters read the entry rather than a column: ``format`` (in the entry's details, read
with the database's JSON function in the same query, so a page is still a full page) and
``outcome=refused`` (the refused ``signature.create`` entries, which have no signature row:
the rows then carry the refusal's reason). Totals under either filter are counted from the
entries (grouped by key and identity), as the signature rows know neither. ``daily``
counts signatures and refusals per project and day (UTC) in one grouped query over the
entries' time index, for the console's chart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Date, Select, and_, case, cast, false, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome
from signgate.errors import InvalidInput
from signgate.formats import registry
from signgate.pki.tsa import response_time
from signgate.policy import decide
from signgate.policy.model import Actor, Scope
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.audit_scope import entry_in_scope
from signgate.service.records.keys import split_ref
from signgate.service.views import (
    DayCount,
    SignaturePage,
    SignatureRow,
    SignatureTotal,
    SignatureTotals,
)
from signgate.store.models import (
    AuditEntry,
    Identity,
    Key,
    KeyVersion,
    Project,
    SignatureRecord,
)

MAX_PAGE = 5000
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class SignatureQuery:
    project: str | None = None
    key: str | None = None  # PROJECT/NAME
    identity: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    after: int = 0  # audit_seq cursor
    limit: int = 1000
    format: str | None = None  # the signature format ("raw", "cms", "openpgp", ...)
    outcome: str = Outcome.ALLOWED.value  # or "refused": the refused signings

    @property
    def by_entries(self) -> bool:
        """Whether the filters read the audit entries (totals counted from them)."""
        return bool(self.format) or self.outcome == Outcome.REFUSED.value


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    if scope.key is None:
        return Project.name == scope.project
    return and_(Project.name == scope.project, Key.name == scope.key)


def _in_window(stmt: S, q: SignatureQuery) -> S:
    if q.since:
        stmt = stmt.where(SignatureRecord.signed_at >= q.since)
    if q.until:
        stmt = stmt.where(SignatureRecord.signed_at < q.until)
    return stmt


def _check(q: SignatureQuery) -> None:
    if not 1 <= q.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
    if q.key:
        split_ref(q.key)
    if q.since and q.until and q.until <= q.since:
        raise InvalidInput("--until must be later than --since")
    if q.outcome not in (Outcome.ALLOWED.value, Outcome.REFUSED.value):
        raise InvalidInput("outcome must be allowed or refused")
    if q.format and q.format not in registry.NAMES:
        raise InvalidInput(f"unknown format {q.format!r}: one of {', '.join(registry.NAMES)}")
    if q.format and q.outcome == Outcome.REFUSED.value:
        raise InvalidInput("a refused signing has no format: filter by format or by "
                           "outcome=refused, not both")


def _allowed(actor: Actor, q: SignatureQuery) -> None:
    project = q.project or (split_ref(q.key)[0] if q.key else None)
    d = decide.may_read_audit_of(actor, project, q.key)
    require(d.allowed, d.reason)


def _scan_summary(details: dict[str, Any] | None) -> str | None:
    if not details:
        return None
    engines = ", ".join(str(e.get("engine", "?")) for e in details.get("engines", []))
    verdict = str(details.get("verdict", "clean"))
    return f"{verdict} ({engines})" if engines else verdict


# The claims a report line shows first, when present (the rest follow by name).
_FIRST = ("repository", "project_path", "ref", "workflow", "job_workflow_ref", "run_id",
          "run_attempt", "pipeline_id", "job_id", "event_name", "environment")


def oidc_summary(oidc: dict[str, Any] | None) -> str | None:
    """"github: repository=acme/app ref=refs/heads/main ... run_id=42" for a signature a
    CI job made with an exchanged OIDC token; None for others."""
    if not oidc:
        return None
    claims: dict[str, str] = oidc.get("claims", {})
    names = [n for n in _FIRST if n in claims] + sorted(
        n for n in claims if n not in _FIRST and n != "jti")
    return f"{oidc.get('issuer')}: " + " ".join(f"{n}={claims[n]}" for n in names)


def signatures(ctx: Context, caller: Caller, q: SignatureQuery) -> SignaturePage:
    """One page of signatures, oldest first (by their audit entry)."""
    _check(q)

    def run(session: Session, actor: Actor) -> SignaturePage:
        _allowed(actor, q)
        e, sig = AuditEntry, SignatureRecord
        stmt: Select[*tuple[Any, ...]]
        if q.outcome == Outcome.REFUSED.value:
            stmt = select(e.seq, e.time, e.actor, e.subject, e.key_ref, e.details)
        else:
            stmt = (select(e.seq, e.time, e.actor, e.subject, e.key_ref, e.details,
                           sig.timestamp_token)
                    .join(sig, sig.audit_seq == e.seq))
        stmt = _entries(session, stmt.where(e.seq > q.after), actor, q)
        rows = session.execute(stmt.order_by(e.seq).limit(q.limit + 1)).all()
        more = len(rows) > q.limit
        refused = q.outcome == Outcome.REFUSED.value
        out = [_refusal_row(*r) if refused else _row(*r) for r in rows[: q.limit]]
        return SignaturePage(out, out[-1].audit_seq if more else None)

    return ctx.read(caller, Target(Action.AUDIT_READ, "signature report", q.project), run,
                    snapshot=True)


def _entries(session: Session, stmt: S, actor: Actor, q: SignatureQuery) -> S:
    """``stmt`` over the signing entries the actor may read that the query selects."""
    e = AuditEntry
    stmt = stmt.where(e.action == Action.SIGN.value, e.outcome == q.outcome)
    scopes = decide.audit_scopes(actor)
    if scopes is not None:
        stmt = stmt.where(or_(false(), *(entry_in_scope(s) for s in scopes)))
    if q.project:
        stmt = stmt.where(e.project == q.project)
    if q.key:
        stmt = stmt.where(e.key_ref == q.key)
    if q.identity:
        stmt = stmt.where(e.actor == q.identity)
    if q.since:
        stmt = stmt.where(e.time >= q.since)
    if q.until:
        stmt = stmt.where(e.time < q.until)
    if q.format:
        stmt = stmt.where(_format_of(session) == q.format)
    return stmt


def _format_of(session: Session) -> ColumnElement[Any]:
    """The entry's details' "format", read by the database (the details are JSON text)."""
    if session.get_bind().dialect.name == "postgresql":
        extracted: ColumnElement[Any] = cast(AuditEntry.details, JSONB)["format"].astext
        return extracted
    return func.json_extract(AuditEntry.details, "$.format")


def _refusal_row(seq: int, time: datetime, actor: str, subject: str, key_ref: str | None,
                 details_json: str) -> SignatureRow:
    """A report line from a refused signing entry: who asked, for what, and why not."""
    d = json.loads(details_json)
    return SignatureRow(
        signature_id=None, signed_at=time, key=key_ref or "", key_version=None,
        identity=actor, artifact_name=subject, digest_algorithm=None, digest=None,
        format=None, timestamp_time=None, scan=None, audit_seq=seq, log_index=seq - 1,
        outcome=Outcome.REFUSED.value, reason=str(d.get("reason", "")))


def _row(seq: int, time: datetime, actor: str, subject: str, key_ref: str | None,
         details_json: str, token: bytes | None) -> SignatureRow:
    """A report line from a signing entry (its details as the log holds them)."""
    d = json.loads(details_json)
    return SignatureRow(
        signature_id=d["signature_id"], signed_at=time, key=key_ref or "",
        key_version=d["key_version"], identity=actor, artifact_name=subject,
        digest_algorithm=d["digest_algorithm"], digest=d["digest"], format=d["format"],
        timestamp_time=response_time(token), scan=_scan_summary(d.get("scan")),
        audit_seq=seq, log_index=seq - 1, oidc=oidc_summary(d.get("oidc")))


def totals(ctx: Context, caller: Caller, q: SignatureQuery) -> SignatureTotals:
    """How many signatures each key and each identity made under the same filters.

    One pass over the signature rows, grouped by key version and identity (an index holds
    exactly those columns and the time, so the pass reads no table rows); the names are
    looked up afterwards for the few groups there are, and the groups summed per key and
    per identity here. A million signatures total in well under a second.
    """
    _check(q)

    def run(session: Session, actor: Actor) -> SignatureTotals:
        _allowed(actor, q)
        if q.by_entries:
            return _entry_totals(session, actor, q)
        sig = SignatureRecord
        stmt = select(sig.key_version_id, sig.identity_id, func.count(),
                      func.min(sig.signed_at), func.max(sig.signed_at))
        scopes = decide.audit_scopes(actor)
        if scopes is not None or q.project or q.key:
            stmt = stmt.where(sig.key_version_id.in_(_versions(select(KeyVersion.id), actor,
                                                                q)))
        if q.identity:
            stmt = stmt.where(sig.identity_id.in_(
                select(Identity.id).where(Identity.name == q.identity)))
        stmt = _in_window(stmt, q).group_by(sig.key_version_id, sig.identity_id)
        groups = session.execute(stmt).all()
        key_names = dict(session.execute(
            select(KeyVersion.id, Project.name + "/" + Key.name)
            .join(Key, Key.id == KeyVersion.key_id).join(Project, Project.id == Key.project_id)
            .where(KeyVersion.id.in_({g[0] for g in groups}))).tuples().all())
        identity_names = dict(session.execute(
            select(Identity.id, Identity.name)
            .where(Identity.id.in_({g[1] for g in groups}))).tuples().all())
        by_key = _summed((key_names[g[0]], *g[2:]) for g in groups)
        by_identity = _summed((identity_names[g[1]], *g[2:]) for g in groups)
        return SignatureTotals(sum(t.signatures for t in by_key), by_key, by_identity)

    return ctx.read(caller, Target(Action.AUDIT_READ, "signature report", q.project), run,
                    snapshot=True)


def _entry_totals(session: Session, actor: Actor, q: SignatureQuery) -> SignatureTotals:
    """Totals counted from the signing entries (filters the signature rows cannot
    answer: the format, refusals), grouped by key and identity in the database."""
    e = AuditEntry
    stmt = _entries(session, select(func.coalesce(e.key_ref, ""), e.actor, func.count(),
                                    func.min(e.time), func.max(e.time)), actor, q)
    groups = session.execute(stmt.group_by(e.key_ref, e.actor)).all()
    by_key = _summed((g[0], *g[2:]) for g in groups)
    by_identity = _summed((g[1], *g[2:]) for g in groups)
    return SignatureTotals(sum(t.signatures for t in by_key), by_key, by_identity)


def daily(ctx: Context, caller: Caller, since: datetime) -> list[DayCount]:
    """Signatures and refused signings per project and day (UTC) from ``since`` on, oldest
    day first, scoped like the report: one query, grouped by project and day in the
    database (SQLite: ``date(time)``; PostgreSQL: the UTC date of the time)."""

    def run(session: Session, actor: Actor) -> list[DayCount]:
        _allowed(actor, SignatureQuery())
        e = AuditEntry
        if session.get_bind().dialect.name == "postgresql":
            day: ColumnElement[Any] = cast(func.timezone("UTC", e.time), Date)
        else:
            day = func.date(e.time)  # stored as naive UTC
        refused = case((e.outcome == Outcome.REFUSED.value, 1), else_=0)
        stmt = (select(func.coalesce(e.project, ""), day, func.count() - func.sum(refused),
                       func.sum(refused))
                .where(e.action == Action.SIGN.value, e.time >= since))
        scopes = decide.audit_scopes(actor)
        if scopes is not None:
            stmt = stmt.where(or_(false(), *(entry_in_scope(s) for s in scopes)))
        # Day first: SQLite then reads the window from the time index (grouped by project
        # first, it scans the whole log through the project index to spare a sort).
        rows = session.execute(stmt.group_by(day, e.project)).all()
        out = [DayCount(d if isinstance(d, date) else date.fromisoformat(str(d)), p or "",
                        int(n), int(r)) for p, d, n, r in rows]
        return sorted(out, key=lambda c: (c.day, c.project))

    return ctx.read(caller, Target(Action.AUDIT_READ, "signature report", None), run,
                    snapshot=True)


def _versions(stmt: S, actor: Actor, q: SignatureQuery) -> S:
    """The key versions within the actor's audit scopes and the query's project or key."""
    stmt = (stmt.join(Key, Key.id == KeyVersion.key_id)
            .join(Project, Project.id == Key.project_id))
    scopes = decide.audit_scopes(actor)
    if scopes is not None:
        stmt = stmt.where(or_(false(), *(_in_scope(s) for s in scopes)))
    if q.project:
        stmt = stmt.where(Project.name == q.project)
    if q.key:
        project, name = split_ref(q.key)
        stmt = stmt.where(Project.name == project, Key.name == name)
    return stmt


def _summed(groups: Iterable[tuple[str, int, datetime, datetime]]) -> list[SignatureTotal]:
    """Groups with the same name folded into one total; most signatures first."""
    totals: dict[str, SignatureTotal] = {}
    for name, count, first, last in groups:
        t = totals.get(name)
        totals[name] = SignatureTotal(name, count, first, last) if t is None else \
            SignatureTotal(name, t.signatures + count, min(t.first, first), max(t.last, last))
    return sorted(totals.values(), key=lambda t: (-t.signatures, t.name))
