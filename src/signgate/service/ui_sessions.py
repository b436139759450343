"""Web console sessions (web/): opened with an API token, then named by a random id in
a cookie; the database keeps only the id's hash (``ui_session_auth.py`` checks it on every
request, with the identity and the token it was opened with).

A session lasts ``ui_session_minutes`` after its last use (sliding, moved at most once a
minute so that reading pages costs no write each), never more than ``ABSOLUTE`` after it
was opened. Opening one is on the record (``ui.session.create``, allowed or, like every
failed authentication, refused through ``service/auth_failures.py``), and so is closing
it (``ui.session.end``). OIDC sign-in for people (later) is a second use case beside
:func:`open_session` writing the same row from a verified ID token (docs/design.md, "The
web console").
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.tokens import token_hash
from signgate.errors import AuthenticationFailed, InvalidInput
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target
from signgate.service.records.identities import get_identity
from signgate.service.ui_session_auth import session_hash
from signgate.store.models import UiSession

ABSOLUTE = timedelta(hours=8)
SLIDE_EVERY = timedelta(minutes=1)
SUBJECT = "web console"


@dataclass(frozen=True)
class OpenedSession:
    session_id: str  # for the cookie only: never stored, never logged
    identity: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionView:
    """Who a live session is, as the policy sees them (for what the pages offer; every
    use case still decides on its own), and when the session ends."""

    identity: str
    actor: Actor
    expires_at: datetime


def _lifetime(ctx: Context) -> timedelta:
    return timedelta(minutes=ctx.settings.ui_session_minutes)


def open_session(ctx: Context, caller: Caller) -> OpenedSession:
    """A new session for the identity whose token ``caller`` presents."""
    if caller.session is not None or not caller.token:
        raise InvalidInput("a session is opened with an API token")
    token = caller.token

    def run(session: Session, actor: Actor) -> OpenedSession:
        now = ctx.clock.now()
        # Ended sessions go as new ones come: the table holds only live ones and a few.
        session.execute(delete(UiSession).where(
            or_(UiSession.expires_at <= now, UiSession.absolute_expires_at <= now)))
        identity = get_identity(session, actor.name)
        session_id = secrets.token_urlsafe(32)
        absolute = now + ABSOLUTE
        expires = min(now + _lifetime(ctx), absolute)
        session.add(UiSession(session_hash=session_hash(session_id), identity_id=identity.id,
                              token_hash=token_hash(token), created_at=now,
                              expires_at=expires, absolute_expires_at=absolute))
        details: dict[str, object] = {"expires_at": expires.isoformat()}
        if caller.address:
            details["client"] = caller.address
        ctx.record(session, Record(actor.name, Action.UI_SESSION_CREATE, Outcome.ALLOWED,
                                   SUBJECT, details=details), now)
        return OpenedSession(session_id, actor.name, expires)

    return ctx.write(caller, Target(Action.UI_SESSION_CREATE, SUBJECT), run)


def current(ctx: Context, caller: Caller) -> SessionView:
    """The live session ``caller.session`` names (else AuthenticationFailed, recorded like
    any failed authentication), its end moved ``ui_session_minutes`` from now."""
    if caller.session is None:
        raise AuthenticationFailed()
    sid = caller.session

    def run(session: Session, actor: Actor) -> tuple[Actor, datetime]:
        row = session.get(UiSession, session_hash(sid))
        assert row is not None  # authenticate found it
        return actor, row.expires_at

    actor, expires = ctx.read(caller, Target(Action.READ, SUBJECT), run)
    now = ctx.clock.now()
    wanted = now + _lifetime(ctx)
    if wanted - expires >= SLIDE_EVERY:
        with ctx.db.write() as session:
            row = session.get(UiSession, session_hash(sid))
            if row is not None:
                row.expires_at = expires = min(wanted, row.absolute_expires_at)
    return SessionView(actor.name, actor, expires)


def close_session(ctx: Context, caller: Caller) -> None:
    """Sign-out: the session's row is deleted (its cookie names nothing from now on)."""
    if caller.session is None:
        raise AuthenticationFailed()
    h = session_hash(caller.session)

    def run(session: Session, actor: Actor) -> None:
        session.execute(delete(UiSession).where(UiSession.session_hash == h))
        ctx.record(session, Record(actor.name, Action.UI_SESSION_END, Outcome.ALLOWED,
                                   SUBJECT))

    ctx.write(caller, Target(Action.UI_SESSION_END, SUBJECT), run)

