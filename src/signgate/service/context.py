"""The service context: database, key stores, clock, the process's long-lived parts
(scanners, the signing pipeline, the tallies of failed authentications, the stopping
flag), and the transaction discipline. ``factory.build_context`` makes one.

``Context.write`` runs a use case in one write transaction after authenticating the
caller inside it. If the use case refuses (any :class:`SigngateError` but an outage), its
transaction is rolled back whole, the refusal is appended to the audit log in a
transaction of its own, committed, and only then raised to the caller.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from signgate.audit.log import AuditWriter
from signgate.audit.model import Action, Outcome, Record
from signgate.audit.tree import HashCache
from signgate.clock import Clock
from signgate.config import Settings
from signgate.crypto.tokens import token_hash
from signgate.errors import (
    AuthenticationFailed,
    Denied,
    ErrorCode,
    KeyStoreError,
    SigngateError,
    Unavailable,
)
from signgate.keystore.registry import KeyStoreRegistry
from signgate.policy.model import Actor
from signgate.scan.scanners import Scanners
from signgate.service.actors import load_actor
from signgate.service.auth_failures import ANONYMOUS as ANONYMOUS
from signgate.service.auth_failures import AuthFailures
from signgate.service.caller import Caller as Caller
from signgate.service.caller import Target as Target
from signgate.service.checkpoints import Checkpointer
from signgate.service.jwks import JwksCache
from signgate.service.lifecycle import Stopping
from signgate.service.observed import committed
from signgate.service.sign_request import SigningPipeline
from signgate.service.ui_session_auth import load_session_actor
from signgate.service.witnessing import Witnessing
from signgate.store.db import Database

T = TypeVar("T")

_WRITER = "signgate.audit_writer"
log = logging.getLogger("signgate.service")


class Context:
    """Everything a use case works with, built eagerly by ``factory.build_context``: a
    configuration error stops the server before it listens, not on the first request."""

    def __init__(
        self, settings: Settings, db: Database, keystores: KeyStoreRegistry, clock: Clock,
        *, scanners: Scanners, signing: Callable[[Context], SigningPipeline],
        witnessing: Callable[[Settings, Database, HashCache], Witnessing] = Witnessing,
    ) -> None:
        self.settings = settings
        self.db = db
        self.keystores = keystores
        self.clock = clock
        self.log_hashes = HashCache()  # the log tree's committed hashes, shared by writers
        self.checkpoints = Checkpointer(keystores, clock)
        # The configured witnesses, asked to cosign each signing batch's checkpoint.
        self.witnessing = witnessing(settings, db, self.log_hashes)
        self.scanners = scanners
        self.stopping = Stopping()
        self.auth_failures = AuthFailures(self)
        # OIDC issuers' key sets, cached per process (service/jwks.py).
        self.jwks = JwksCache(settings.oidc_jwks_cooldown_seconds)
        # Built on this context (it opens transactions and records through it).
        self.signing: SigningPipeline = signing(self)

    def close(self) -> None:
        """Finish and stop the signing pipeline and the witnesses' catch-up, record the
        failed authentications only counted so far, then close the database's
        connections."""
        self.signing.close()
        self.witnessing.close()
        self.auth_failures.close()
        self.keystores.close()  # an HSM's sessions and login
        self.db.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction with an audit writer: the head row is locked first, the
        entries appended during the block are inserted just before the commit."""
        with self.db.write() as session:
            writer = AuditWriter(session, self.log_hashes)
            session.info[_WRITER] = writer
            yield session
            writer.flush()
            if writer.grew:
                try:
                    writer.checkpoint = self.checkpoints.sign(session, writer.tree)
                except KeyStoreError:
                    # The log key's store failed (an HSM gone). A transaction that only
                    # records refusals (that store's failure among them) commits all the
                    # same: a refusal must be on the record, and the next checkpoint the
                    # key signs covers these entries. Anything else is not committed.
                    if not writer.only_refusals:
                        raise
                    log.error("the log key could not sign the checkpoint of size %d; its "
                              "refusal entries are committed unsigned until the next "
                              "checkpoint", writer.tree.size)
            commit_started = time.perf_counter()
        commit_seconds = time.perf_counter() - commit_started
        writer.committed()
        # Counted once on the record: the metrics never count what was rolled back. A
        # failure to count never turns a committed transaction into an error.
        try:
            committed(writer.appended, commit_seconds)
        except Exception:
            log.exception("counting a committed transaction in the metrics failed")

    @staticmethod
    def audit_writer(session: Session) -> AuditWriter:
        writer = session.info.get(_WRITER)
        if not isinstance(writer, AuditWriter):
            raise RuntimeError("audit entries are written only inside Context.transaction()")
        return writer

    def record(self, session: Session, record: Record, now: datetime | None = None) -> int:
        """Append ``record`` to the audit chain within ``session``'s transaction."""
        return self.audit_writer(session).append(record, now or self.clock.now())

    def write(
        self, caller: Caller, target: Target, use_case: Callable[[Session, Actor], T]
    ) -> T:
        actor_name = ANONYMOUS
        try:
            with self.transaction() as session:
                _, actor = authenticate(session, caller, self.clock)
                actor_name = actor.name
                return use_case(session, actor)
        except Unavailable:
            raise
        except AuthenticationFailed as exc:
            raise self.authentication_failed(caller, target, exc) from None
        except SigngateError as exc:
            self._record_refusal(caller, target, actor_name, exc)
            raise

    def read(
        self,
        caller: Caller,
        target: Target,
        use_case: Callable[[Session, Actor], T],
        snapshot: bool = False,
    ) -> T:
        """Run ``use_case`` in a read transaction; ``snapshot``: one consistent snapshot
        (see ``Database.read``)."""
        actor_name = ANONYMOUS
        try:
            with self.db.read(snapshot) as session:
                _, actor = authenticate(session, caller, self.clock)
                actor_name = actor.name
                return use_case(session, actor)
        except AuthenticationFailed as exc:
            raise self.authentication_failed(caller, target, exc) from None
        except Denied as exc:
            self._record_refusal(caller, target, actor_name, exc)
            raise

    def authentication_failed(self, caller: Caller, target: Target,
                              exc: AuthenticationFailed) -> AuthenticationFailed:
        """Count a failed authentication, record it if it is the first from its address
        in this window (the rest are recorded with their count when the window ends), and
        return the error to answer with: the same 401 for every cause, or 429 past the
        limit (see service/auth_failures.py)."""
        verdict = self.auth_failures.failed(caller, target, exc)
        if verdict.record is not None:
            try:
                with self.transaction() as session:
                    self.record(session, verdict.record)
            except Exception:
                self.auth_failures.lost(caller, target, exc)
                raise
        return verdict.error

    def _record_refusal(
        self, caller: Caller, target: Target, actor_name: str, exc: SigngateError
    ) -> None:
        with self.transaction() as session:
            self.record(session, refusal_record(caller, target, actor_name, exc))


def refusal_record(caller: Caller, target: Target, actor_name: str, exc: SigngateError) -> Record:
    """The audit entry for a refused request; unauthenticated ones are filed under
    ``auth.authenticate`` with the action they attempted."""
    action = target.action if actor_name != ANONYMOUS else Action.AUTHENTICATE
    details: dict[str, object] = {"reason": str(exc), "code": exc.code}
    if caller.address:
        details["client"] = caller.address
    if action is Action.AUTHENTICATE:
        details["attempted"] = target.action.value
    return Record(actor=actor_name, action=action, outcome=Outcome.REFUSED,
                  subject=_storable(target.subject) or "", project=_storable(target.project),
                  key_ref=_storable(target.key_ref), details=details)


def _storable(text: str | None) -> str | None:
    """A refused request's own words, with NUL (which PostgreSQL cannot store) escaped."""
    return None if text is None else text.replace("\x00", "\\x00")


def authenticate(session: Session, caller: Caller, clock: Clock) -> tuple[int, Actor]:
    """The enabled identity holding ``caller.token`` (its id and its actor). No token, an
    unknown one and a disabled identity's fail alike: a disabled token's holder must not
    learn that it is valid or whose it is (the error carries the name for the audit record
    only)."""
    if caller.session is not None:  # a web console session (service/ui_sessions.py)
        found = load_session_actor(session.connection(), caller.session, clock.now())
    elif not caller.token:
        raise AuthenticationFailed()
    else:
        found = load_actor(session.connection(), token_hash(caller.token))
    if found is None:
        raise AuthenticationFailed()
    if not found[1].enabled:
        raise AuthenticationFailed(identity=found[1].name)
    check_expiry(found[1], clock.now())
    caller.noted(found[1].name)
    return found


def check_expiry(actor: Actor, now: datetime) -> None:
    """Refuse the short-lived token of an OIDC exchange once it has expired (other tokens
    do not expire). Saying so is no leak: only a job that exchanged a CI token holds one."""
    if actor.expired(now):
        assert actor.federation is not None
        raise AuthenticationFailed(
            "authentication failed: the token from the OIDC exchange expired at "
            f"{actor.federation.expires_at.isoformat()}; exchange a new CI token",
            code=ErrorCode.OIDC_SESSION_EXPIRED)


def require(decision_allowed: bool, reason: str) -> None:
    if not decision_allowed:
        raise Denied(reason)
