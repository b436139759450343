"""Reports on who signed what, when, with which key (``signgate report signatures``).

They read the signature records, which are written in the same transaction as the
signature's audit entry (so a report row always has its entry, named by ``audit_seq``),
and are scoped exactly like the audit log: an auditor of a project or a key sees only the
signatures of that project or key, whatever the filters ask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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
    stmt = _versions(stmt.join(KeyVersion, KeyVersion.id == SignatureRecord.key_version_id),
                     actor, q).join(Identity, Identity.id == SignatureRecord.identity_id)
    if q.identity:
        stmt = stmt.where(Identity.name == q.identity)
    return _in_window(stmt, q)


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


# The claims a report line shows first, when present (the rest follow by name).
_FIRST = ("repository", "project_path", "ref", "workflow", "job_workflow_ref", "run_id",
          "run_attempt", "pipeline_id", "job_id", "event_name", "environment")


def oidc_summary(oidc_json: str | None) -> str | None:
    """"github: repository=acme/app ref=refs/heads/main ... run_id=42" for a signature a
    CI job made with an exchanged OIDC token; None for others."""
    if not oidc_json:
        return None
    oidc = json.loads(oidc_json)
    claims: dict[str, str] = oidc.get("claims", {})
    names = [n for n in _FIRST if n in claims] + sorted(
        n for n in claims if n not in _FIRST and n != "jti")
    return f"{oidc.get('issuer')}: " + " ".join(f"{n}={claims[n]}" for n in names)


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
                log_index=s.audit_seq - 1, oidc=oidc_summary(s.oidc_json))
            for s, version, key, project, identity in rows[: q.limit]
        ]
        return SignaturePage(out, out[-1].audit_seq if more else None)

    return ctx.read(caller, Target(Action.AUDIT_READ, "signature report", q.project), run,
                    snapshot=True)


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
