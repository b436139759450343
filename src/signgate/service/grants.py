"""Grants: identity x role x scope. Everything not granted is refused."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import Conflict, NotFound
from signgate.policy import decide
from signgate.policy.claims import ClaimBinding, ClaimRequirement, parse_requirements
from signgate.policy.model import Actor, Role, Scope
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records import oidc as oidc_records
from signgate.service.records.identities import get_identity
from signgate.service.records.keys import get_key
from signgate.service.records.oidc import identity_name
from signgate.service.records.projects import get_project
from signgate.service.views import GrantView
from signgate.store.models import GrantRow, Identity, OidcGrant, OidcIssuer


def _check_scope_exists(session: Session, scope: Scope) -> None:
    if scope.project is None:
        return
    if scope.key is None:
        get_project(session, scope.project)
    else:
        get_key(session, scope.project, scope.key)


def add(ctx: Context, caller: Caller, identity: str, role: str, scope: str) -> GrantView:
    r = Role.parse(role)
    s = Scope.parse(scope)
    target = Target(Action.GRANT_ADD, f"{identity} {r.value} {s}", s.project,
                    str(s) if s.key else None)

    def run(session: Session, actor: Actor) -> GrantView:
        d = decide.may_grant(actor, s)
        require(d.allowed, d.reason)
        _check_scope_exists(session, s)
        who = get_identity(session, identity)
        exists = session.execute(
            select(GrantRow.id).where(GrantRow.identity_id == who.id, GrantRow.role == r.value,
                                      GrantRow.scope == str(s))
        ).first()
        if exists:
            raise Conflict(f"identity {identity} already has {r.value} on {s}")
        row = GrantRow(identity_id=who.id, role=r.value, scope=str(s), created_at=ctx.clock.now())
        session.add(row)
        session.flush()
        ctx.record(session, Record(actor.name, Action.GRANT_ADD, Outcome.ALLOWED, target.subject,
                                   target.project, target.key_ref,
                                   {"identity": identity, "role": r.value, "scope": str(s)}))
        return GrantView(identity, r.value, str(s), row.created_at)

    return ctx.write(caller, target, run)


def remove(ctx: Context, caller: Caller, identity: str, role: str, scope: str) -> GrantView:
    r = Role.parse(role)
    s = Scope.parse(scope)
    target = Target(Action.GRANT_REMOVE, f"{identity} {r.value} {s}", s.project,
                    str(s) if s.key else None)

    def run(session: Session, actor: Actor) -> GrantView:
        d = decide.may_grant(actor, s)
        require(d.allowed, d.reason)
        who = get_identity(session, identity)
        row = session.execute(
            select(GrantRow).where(GrantRow.identity_id == who.id, GrantRow.role == r.value,
                                   GrantRow.scope == str(s))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"identity {identity} has no {r.value} grant on {s}")
        if who.name == actor.name and r is Role.ADMIN and s.is_global:
            raise Conflict("an identity cannot remove its own global admin grant")
        view = GrantView(identity, r.value, str(s), row.created_at)
        session.delete(row)
        ctx.record(session, Record(actor.name, Action.GRANT_REMOVE, Outcome.ALLOWED,
                                   target.subject, target.project, target.key_ref,
                                   {"identity": identity, "role": r.value, "scope": str(s)}))
        return view

    return ctx.write(caller, target, run)


def list_grants(ctx: Context, caller: Caller, identity: str | None = None) -> list[GrantView]:
    """Global admins see every grant; others see their own and those of projects they admin."""

    def run(session: Session, actor: Actor) -> list[GrantView]:
        stmt = select(GrantRow, Identity.name).join(Identity, GrantRow.identity_id == Identity.id)
        if identity is not None:
            get_identity(session, identity)
            stmt = stmt.where(Identity.name == identity)
        rows = session.execute(stmt.order_by(Identity.name, GrantRow.scope, GrantRow.role)).all()
        out = []
        for row, name in rows:
            scope = Scope.parse(row.scope)
            visible = name == actor.name or decide.may_grant(actor, scope).allowed
            if visible:
                out.append(GrantView(name, row.role, row.scope, row.created_at))
        return out + _oidc_grants(session, actor, identity)

    return ctx.read(caller, Target(Action.READ, "grants"), run)


def _oidc_target(action: Action, issuer: str, role: Role, scope: Scope,
                 requirements: tuple[ClaimRequirement, ...]) -> Target:
    text = " ".join(str(r) for r in requirements)
    return Target(action, f"oidc:{issuer} {text} {role.value} {scope}", scope.project,
                  str(scope) if scope.key else None)


def _oidc_view(binding: ClaimBinding, created_at: datetime) -> GrantView:
    return GrantView(identity_name(binding.issuer), binding.role.value, str(binding.scope),
                     created_at, binding.issuer,
                     {r.name: list(r.values) for r in binding.requirements})


def add_oidc(ctx: Context, caller: Caller, issuer: str, claims: list[str], role: str,
             scope: str) -> GrantView:
    """ROLE on SCOPE for every token of ``issuer`` whose claims match ``claims`` (each
    ``NAME=VALUE`` or ``NAME=V1,V2``; all must match; see policy/claims.py)."""
    r, s = Role.parse(role), Scope.parse(scope)
    requirements = parse_requirements(claims)
    target = _oidc_target(Action.GRANT_ADD, issuer, r, s, requirements)

    def run(session: Session, actor: Actor) -> GrantView:
        d = decide.may_grant(actor, s)
        require(d.allowed, d.reason)
        _check_scope_exists(session, s)
        row = oidc_records.get_issuer(session, issuer)
        binding = ClaimBinding(issuer, r, s, requirements)
        exists = session.execute(
            select(OidcGrant.id).where(OidcGrant.issuer_id == row.id, OidcGrant.role == r.value,
                                       OidcGrant.scope == str(s),
                                       OidcGrant.claims_json == binding.to_json())).first()
        if exists:
            raise Conflict(f"OIDC issuer {issuer} already grants {r.value} on {s} for "
                           f"{binding.claims_text()}")
        grant = OidcGrant(issuer_id=row.id, role=r.value, scope=str(s),
                          claims_json=binding.to_json(), created_at=ctx.clock.now())
        session.add(grant)
        session.flush()
        ctx.record(session, Record(actor.name, Action.GRANT_ADD, Outcome.ALLOWED,
                                   target.subject, target.project, target.key_ref,
                                   {"oidc_issuer": issuer, "role": r.value, "scope": str(s),
                                    "claims": json.loads(binding.to_json())}))
        return _oidc_view(binding, grant.created_at)

    return ctx.write(caller, target, run)


def remove_oidc(ctx: Context, caller: Caller, issuer: str, claims: list[str], role: str,
                scope: str) -> GrantView:
    """Remove the OIDC grant added with the same arguments (claims in any order)."""
    r, s = Role.parse(role), Scope.parse(scope)
    requirements = parse_requirements(claims)
    target = _oidc_target(Action.GRANT_REMOVE, issuer, r, s, requirements)

    def run(session: Session, actor: Actor) -> GrantView:
        d = decide.may_grant(actor, s)
        require(d.allowed, d.reason)
        row = oidc_records.get_issuer(session, issuer)
        binding = ClaimBinding(issuer, r, s, requirements)
        grant = session.execute(
            select(OidcGrant).where(OidcGrant.issuer_id == row.id, OidcGrant.role == r.value,
                                    OidcGrant.scope == str(s),
                                    OidcGrant.claims_json == binding.to_json())
        ).scalar_one_or_none()
        if grant is None:
            raise NotFound(f"OIDC issuer {issuer} has no {r.value} grant on {s} for "
                           f"{binding.claims_text()}")
        view = _oidc_view(binding, grant.created_at)
        session.delete(grant)
        ctx.record(session, Record(actor.name, Action.GRANT_REMOVE, Outcome.ALLOWED,
                                   target.subject, target.project, target.key_ref,
                                   {"oidc_issuer": issuer, "role": r.value, "scope": str(s),
                                    "claims": json.loads(binding.to_json())}))
        return view

    return ctx.write(caller, target, run)


def _oidc_grants(session: Session, actor: Actor, identity: str | None) -> list[GrantView]:
    out = []
    for issuer in session.execute(select(OidcIssuer).order_by(OidcIssuer.name)).scalars():
        if identity is not None and identity != identity_name(issuer.name):
            continue
        rows = session.execute(select(OidcGrant).where(OidcGrant.issuer_id == issuer.id)
                               .order_by(OidcGrant.scope, OidcGrant.role, OidcGrant.id)
                               ).scalars().all()
        for row in rows:
            binding = oidc_records.binding(issuer, row)
            if decide.may_grant(actor, binding.scope).allowed:
                out.append(_oidc_view(binding, row.created_at))
    return out
