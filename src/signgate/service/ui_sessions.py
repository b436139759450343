"""Web console sessions (web/): opened with an API token, then named by a random id in
a cookie; the database keeps only the id's hash (``ui_session_auth.py`` checks it on every
request, with the identity and the token it was opened with).

A session lasts ``ui_session_minutes`` after its last use (sliding, moved at most once a
minute so that reading pages costs no write each), never more than ``ABSOLUTE`` after it
was opened. Opening one is on the record (``ui.session.create``, allowed or, like every
failed authentication, refused through ``service/auth_failures.py``), and so is closing
it (``ui.session.end``).

People may also sign in through an OpenID Connect provider (service/ui_oidc.py):
:func:`begin_person_sign_in` and :func:`finish_person_sign_in` write the same row for the
identity of kind ``user`` the verified ID token names. Such a session is bound to the
token its identity holds at sign-in, exactly as a token's session is to the token it was
opened with: disabling the identity or rotating its token ends it at once. Every refusal
(a forged state, a refused code, a bad nonce, an unknown or disabled person, the provider
down) is a ``ui.session.create`` entry refused with its reason, counted toward the
address's failed authentications like a refused CI token exchange.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.tokens import token_hash
from signgate.errors import (
    AuthenticationFailed,
    ErrorCode,
    InvalidInput,
    SigngateError,
    Unavailable,
)
from signgate.policy.model import Actor, IdentityKind
from signgate.service import ui_oidc
from signgate.service.context import ANONYMOUS, Caller, Context, Target
from signgate.service.records.identities import get_identity
from signgate.service.ui_session_auth import session_hash
from signgate.store.models import Identity, UiSession

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



# -- through an OIDC provider (service/ui_oidc.py) -------------------------------------
def begin_person_sign_in(ctx: Context, client: ui_oidc.Client,
                         address: str | None) -> tuple[str, str]:
    """A new sign-in through the provider: the pre-session cookie's value and the URL to
    send the browser to. The provider unreachable: recorded, then raised (503)."""
    try:
        return ui_oidc.begin(client, ctx.jwks.transport, ctx.clock.now())
    except Unavailable as exc:
        _refuse(ctx, exc, address, {"via": "oidc", "issuer": client.issuer})
        raise


def finish_person_sign_in(ctx: Context, client: ui_oidc.Client, cookie: str | None,
                          answer: dict[str, str | None],
                          address: str | None) -> OpenedSession:
    """The provider's answer (``state``, ``code``, or ``error``) to the sign-in this
    browser began (its pre-session ``cookie``): a session for the person it names, else
    AuthenticationFailed or Unavailable, recorded with their reason."""
    seen: dict[str, Any] = {"via": "oidc", "issuer": client.issuer}
    try:
        return _finish(ctx, client, cookie, answer, address, seen)
    except (AuthenticationFailed, Unavailable) as exc:
        _refuse(ctx, exc, address, seen)
        raise


def _finish(ctx: Context, client: ui_oidc.Client, cookie: str | None,
            answer: dict[str, str | None], address: str | None,
            seen: dict[str, Any]) -> OpenedSession:
    flow = ui_oidc.flow_of(cookie, ctx.clock.now())
    ui_oidc.check_state(flow, answer.get("state"))
    if answer.get("error"):  # RFC 6749 §4.1.2.1: the person declined, or the provider did
        why = (answer.get("error_description") or "")[:200]
        raise ui_oidc.refused(f"the provider answered {str(answer['error'])[:64]}"
                              f"{': ' + why if why else ''}")
    code = answer.get("code")
    if not code:
        raise ui_oidc.refused("the provider sent back no code")
    ends = ui_oidc.discover(client, ctx.jwks.transport)
    claims = ui_oidc.redeem(client, ends, code, flow, ctx.jwks, ctx.clock.now())
    value = ui_oidc.claimed(client, claims)
    seen["claim"] = {client.claim: value}
    name = ui_oidc.person(client, claims)
    seen["identity"] = name
    with ctx.transaction() as session:
        now = ctx.clock.now()
        ident = session.execute(select(Identity).where(Identity.name == name)
                                ).scalar_one_or_none()
        if ident is None:
            raise ui_oidc.refused(f"{client.claim} {value!r} names no signgate "
                                  f"identity ({name!r} does not exist)",
                                  ErrorCode.UI_UNKNOWN_PERSON)
        seen["actor"] = name
        if ident.kind != IdentityKind.USER.value:
            raise ui_oidc.refused(f"identity {name} is a {ident.kind}, not a person (kind "
                                  "user)", ErrorCode.UI_UNKNOWN_PERSON)
        if not ident.enabled:
            raise ui_oidc.refused(f"identity {name} is disabled", ErrorCode.UI_UNKNOWN_PERSON)
        session.execute(delete(UiSession).where(
            or_(UiSession.expires_at <= now, UiSession.absolute_expires_at <= now)))
        session_id = secrets.token_urlsafe(32)
        absolute = now + ABSOLUTE
        expires = min(now + _lifetime(ctx), absolute)
        # Bound to the identity's token of now: rotating it ends the session, as it ends
        # a token's sessions; a disabled identity's fails on its next request.
        session.add(UiSession(session_hash=session_hash(session_id), identity_id=ident.id,
                              token_hash=ident.token_hash, created_at=now,
                              expires_at=expires, absolute_expires_at=absolute))
        details: dict[str, object] = {"via": "oidc", "issuer": client.issuer,
                                      "claim": {client.claim: value},
                                      "expires_at": expires.isoformat()}
        if address:
            details["client"] = address
        ctx.record(session, Record(name, Action.UI_SESSION_CREATE, Outcome.ALLOWED, SUBJECT,
                                   details=details), now)
        return OpenedSession(session_id, name, expires)


def _refuse(ctx: Context, exc: SigngateError, address: str | None,
            seen: dict[str, Any]) -> None:
    """Record a refused sign-in (past the address's limit of failed authentications:
    raise the 429 instead and leave it to the window's summary entry)."""
    caller = Caller(None, address)
    throttled = ctx.auth_failures.refused_elsewhere(
        caller, Target(Action.UI_SESSION_CREATE, SUBJECT))
    if throttled is not None:
        raise throttled from None
    actor = str(seen.pop("actor", ANONYMOUS))
    details: dict[str, object] = {"reason": str(exc), "code": exc.code, **seen}
    if address:
        details["client"] = address
    with ctx.transaction() as session:
        ctx.record(session, Record(actor, Action.UI_SESSION_CREATE, Outcome.REFUSED, SUBJECT,
                                   details=details))
