"""Reports on who signed what, when, with which key (``signgate report signatures``).

They read the signature records, which are written in the same transaction as the
signature's audit entry (so a report row always has its entry, named by ``audit_seq``),
and are scoped exactly like the audit log: an auditor of a project or a key sees only the
signatures of that project or key, whatever the filters ask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from signgate.audit.model import Action
from signgate.errors import InvalidInput
from signgate.pki.tsa import response_time
from signgate.policy import decide
from signgate.policy.model import Actor, Scope
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.keys import split_ref
from signgate.service.views import SignaturePage, SignatureRow, SignatureTotal, SignatureTotals
from signgate.store.models import Identity, Key, KeyVersion, Project, SignatureRecord

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


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    if scope.key is None:
        return Project.name == scope.project
    return and_(Project.name == scope.project, Key.name == scope.key)


def _filtered(stmt: S, actor: Actor, q: SignatureQuery) -> S:
    stmt = (stmt.join(KeyVersion, KeyVersion.id == SignatureRecord.key_version_id)
            .join(Key, Key.id == KeyVersion.key_id)
            .join(Project, Project.id == Key.project_id)
            .join(Identity, Identity.id == SignatureRecord.identity_id))
    scopes = decide.audit_scopes(actor)
    if scopes is not None:
        stmt = stmt.where(or_(false(), *(_in_scope(s) for s in scopes)))
    if q.project:
        stmt = stmt.where(Project.name == q.project)
    if q.key:
        project, name = split_ref(q.key)
        stmt = stmt.where(Project.name == project, Key.name == name)
    if q.identity:
        stmt = stmt.where(Identity.name == q.identity)
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


def _allowed(actor: Actor, q: SignatureQuery) -> None:
    project = q.project or (split_ref(q.key)[0] if q.key else None)
    d = decide.may_read_audit_of(actor, project, q.key)
    require(d.allowed, d.reason)


def _scan_summary(scan_json: str | None) -> str | None:
    if not scan_json:
        return None
    details = json.loads(scan_json)
    engines = ", ".join(str(e.get("engine", "?")) for e in details.get("engines", []))
    verdict = str(details.get("verdict", "clean"))
    return f"{verdict} ({engines})" if engines else verdict


def signatures(ctx: Context, caller: Caller, q: SignatureQuery) -> SignaturePage:
    """One page of signatures, oldest first (by their audit entry)."""
    _check(q)

    def run(session: Session, actor: Actor) -> SignaturePage:
        _allowed(actor, q)
        stmt = _filtered(select(SignatureRecord, KeyVersion.version, Key.name, Project.name,
                                Identity.name), actor, q)
        stmt = (stmt.where(SignatureRecord.audit_seq > q.after)
                .order_by(SignatureRecord.audit_seq).limit(q.limit + 1))
        rows = session.execute(stmt).all()
        more = len(rows) > q.limit
        out = [
            SignatureRow(
                signature_id=s.id, signed_at=s.signed_at, key=f"{project}/{key}",
                key_version=version, identity=identity, artifact_name=s.artifact_name,
                digest_algorithm=s.digest_algorithm, digest=s.digest, format=s.format,
                timestamp_time=response_time(s.timestamp_token),
                scan=_scan_summary(s.scan_json), audit_seq=s.audit_seq,
                log_index=s.audit_seq - 1)
            for s, version, key, project, identity in rows[: q.limit]
        ]
        return SignaturePage(out, out[-1].audit_seq if more else None)

    return ctx.read(caller, Target(Action.AUDIT_READ, "signature report", q.project), run,
                    snapshot=True)


def totals(ctx: Context, caller: Caller, q: SignatureQuery) -> SignatureTotals:
    """How many signatures each key and each identity made under the same filters."""
    _check(q)

    def grouped(session: Session, actor: Actor, *names: Any) -> list[SignatureTotal]:
        stmt = _filtered(select(*names, func.count(), func.min(SignatureRecord.signed_at),
                                func.max(SignatureRecord.signed_at)), actor, q)
        rows = session.execute(stmt.group_by(*names)).all()
        made = [SignatureTotal("/".join(r[:-3]), r[-3], r[-2], r[-1]) for r in rows]
        return sorted(made, key=lambda t: (-t.signatures, t.name))

    def run(session: Session, actor: Actor) -> SignatureTotals:
        _allowed(actor, q)
        by_key = grouped(session, actor, Project.name, Key.name)
        by_identity = grouped(session, actor, Identity.name)
        return SignatureTotals(sum(t.signatures for t in by_key), by_key, by_identity)

    return ctx.read(caller, Target(Action.AUDIT_READ, "signature report", q.project), run,
                    snapshot=True)
