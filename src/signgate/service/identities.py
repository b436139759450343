"""Identities (people and CI services) and their tokens, which are shown only once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.tokens import new_token, token_hash
from signgate.errors import Conflict
from signgate.policy import decide
from signgate.policy.model import Actor, IdentityKind, check_name
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.identities import get_identity
from signgate.service.views import IdentityView, IdentityWithToken, WhoAmI
from signgate.store.models import GrantRow, Identity


def _grants(session: Session, identity: Identity) -> list[str]:
    rows = session.execute(
        select(GrantRow.role, GrantRow.scope).where(GrantRow.identity_id == identity.id)
        .order_by(GrantRow.scope, GrantRow.role)
    ).all()
    return [f"{role}:{scope}" for role, scope in rows]


def identity_view(session: Session, identity: Identity) -> IdentityView:
    return IdentityView(identity.name, identity.kind, identity.enabled, identity.created_at,
                        _grants(session, identity))


def create(ctx: Context, caller: Caller, name: str, kind: str = "service") -> IdentityWithToken:
    def run(session: Session, actor: Actor) -> IdentityWithToken:
        check_name("identity", name)
        k = IdentityKind.parse(kind)
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        if session.execute(select(Identity.id).where(Identity.name == name)).first():
            raise Conflict(f"identity {name!r} already exists")
        token = new_token()
        row = Identity(name=name, kind=k.value, enabled=True, token_hash=token_hash(token),
                       created_at=ctx.clock.now())
        session.add(row)
        session.flush()
        ctx.record(session, Record(actor.name, Action.IDENTITY_CREATE, Outcome.ALLOWED, name,
                                   details={"kind": k.value}))
        return IdentityWithToken(identity_view(session, row), token)

    return ctx.write(caller, Target(Action.IDENTITY_CREATE, name), run)


def list_identities(ctx: Context, caller: Caller) -> list[IdentityView]:
    def run(session: Session, actor: Actor) -> list[IdentityView]:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        rows = session.execute(select(Identity).order_by(Identity.name)).scalars().all()
        return [identity_view(session, r) for r in rows]

    return ctx.read(caller, Target(Action.READ, "identities"), run)


def whoami(ctx: Context, caller: Caller) -> WhoAmI:
    def run(session: Session, actor: Actor) -> WhoAmI:
        row = get_identity(session, actor.name)
        if actor.federation is not None:  # an exchanged OIDC token: the grants it earned
            return WhoAmI(row.name, row.kind,
                          [f"{g.role.value}:{g.scope}" for g in actor.grants])
        return WhoAmI(row.name, row.kind, _grants(session, row))

    return ctx.read(caller, Target(Action.READ, "whoami"), run)


def set_enabled(ctx: Context, caller: Caller, name: str, enabled: bool) -> IdentityView:
    action = Action.IDENTITY_ENABLE if enabled else Action.IDENTITY_DISABLE

    def run(session: Session, actor: Actor) -> IdentityView:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        row = get_identity(session, name)
        if row.name == actor.name and not enabled:
            raise Conflict("an identity cannot disable itself")
        if row.enabled == enabled:
            raise Conflict(f"identity {name!r} is already {'enabled' if enabled else 'disabled'}")
        row.enabled = enabled
        ctx.record(session, Record(actor.name, action, Outcome.ALLOWED, name))
        return identity_view(session, row)

    return ctx.write(caller, Target(action, name), run)


def rotate_token(ctx: Context, caller: Caller, name: str) -> IdentityWithToken:
    """A new token for ``name``; the old one stops working at once. Admins, or oneself."""

    def run(session: Session, actor: Actor) -> IdentityWithToken:
        if name != actor.name or not actor.enabled:
            d = decide.may_manage(actor, None)
            require(d.allowed, d.reason)
        row = get_identity(session, name)
        token = new_token()
        row.token_hash = token_hash(token)
        ctx.record(session, Record(actor.name, Action.IDENTITY_ROTATE_TOKEN, Outcome.ALLOWED,
                                   name))
        return IdentityWithToken(identity_view(session, row), token)

    return ctx.write(caller, Target(Action.IDENTITY_ROTATE_TOKEN, name), run)
