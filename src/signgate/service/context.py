"""The service context: database, key stores and clock, and the transaction discipline.

``Context.write`` runs a use case in one write transaction after authenticating the
caller inside it. If the use case refuses (any :class:`SigngateError` but an outage), its
transaction is rolled back whole, the refusal is appended to the audit log in a
transaction of its own, committed, and only then raised to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit import log as audit_log
from signgate.audit.model import Action, Outcome, Record
from signgate.clock import Clock
from signgate.config import Settings
from signgate.crypto.tokens import token_hash
from signgate.errors import AuthenticationFailed, Denied, SigngateError, Unavailable
from signgate.keystore.registry import KeyStoreRegistry
from signgate.policy.model import Actor, Grant, Role, Scope
from signgate.store.db import Database
from signgate.store.models import GrantRow, Identity

T = TypeVar("T")

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the presented token (never stored) and where from."""

    token: str | None
    address: str | None = None

    def __repr__(self) -> str:
        return f"Caller(address={self.address!r})"


@dataclass(frozen=True)
class Target:
    """What an action is about, for the audit entry of a refusal."""

    action: Action
    subject: str
    project: str | None = None
    key_ref: str | None = None


class Context:
    def __init__(
        self, settings: Settings, db: Database, keystores: KeyStoreRegistry, clock: Clock
    ) -> None:
        self.settings = settings
        self.db = db
        self.keystores = keystores
        self.clock = clock

    def record(self, session: Session, record: Record, now: datetime | None = None) -> int:
        return audit_log.append(session, record, now or self.clock.now()).seq

    def write(
        self, caller: Caller, target: Target, use_case: Callable[[Session, Identity, Actor], T]
    ) -> T:
        actor_name = ANONYMOUS
        try:
            with self.db.write() as session:
                identity, actor = authenticate(session, caller)
                actor_name = actor.name
                return use_case(session, identity, actor)
        except Unavailable:
            raise
        except SigngateError as exc:
            self._record_refusal(caller, target, actor_name, exc)
            raise

    def read(
        self,
        caller: Caller,
        target: Target,
        use_case: Callable[[Session, Actor], T],
    ) -> T:
        actor_name = ANONYMOUS
        try:
            with self.db.read() as session:
                _, actor = authenticate(session, caller)
                actor_name = actor.name
                if not actor.enabled:
                    raise Denied(f"identity {actor.name} is disabled")
                return use_case(session, actor)
        except (AuthenticationFailed, Denied) as exc:
            self._record_refusal(caller, target, actor_name, exc)
            raise

    def _record_refusal(
        self, caller: Caller, target: Target, actor_name: str, exc: SigngateError
    ) -> None:
        action = target.action if actor_name != ANONYMOUS else Action.AUTHENTICATE
        details: dict[str, object] = {"reason": str(exc), "code": exc.code}
        if caller.address:
            details["client"] = caller.address
        if action is Action.AUTHENTICATE:
            details["attempted"] = target.action.value
        with self.db.write() as session:
            self.record(
                session,
                Record(
                    actor=actor_name,
                    action=action,
                    outcome=Outcome.REFUSED,
                    subject=target.subject,
                    project=target.project,
                    key_ref=target.key_ref,
                    details=details,
                ),
            )


def authenticate(session: Session, caller: Caller) -> tuple[Identity, Actor]:
    """The identity holding ``caller.token``; the same failure whether or not it exists."""
    if not caller.token:
        raise AuthenticationFailed()
    identity = session.execute(
        select(Identity).where(Identity.token_hash == token_hash(caller.token))
    ).scalar_one_or_none()
    if identity is None:
        raise AuthenticationFailed()
    rows = session.execute(
        select(GrantRow.role, GrantRow.scope).where(GrantRow.identity_id == identity.id)
    ).all()
    grants = tuple(Grant(Role(role), Scope.parse(scope)) for role, scope in rows)
    return identity, Actor(identity.name, identity.enabled, grants)


def require(decision_allowed: bool, reason: str) -> None:
    if not decision_allowed:
        raise Denied(reason)
