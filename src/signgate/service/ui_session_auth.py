"""Who a web console session is: the one session-to-actor loader, which
:func:`~signgate.service.context.authenticate` asks on every request a session makes.

A session is valid while its row exists, its sliding end (``expires_at``) and its
absolute end have not passed, and the token it was opened with still belongs to its
identity: rotating the token (or the identity losing it) ends the session at once, and a
disabled identity's session fails exactly as its token does (the caller checks
``enabled``). Only the SHA-256 of the session id is stored (``crypto/tokens.py``: a
256-bit random secret needs no slow hash).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select

from signgate.crypto.tokens import token_hash
from signgate.policy.model import Actor
from signgate.service.actors import load_actor
from signgate.store.models import UiSession, table

_sessions = table(UiSession)
SESSION_BY_HASH = select(_sessions.c.identity_id, _sessions.c.token_hash,
                         _sessions.c.expires_at, _sessions.c.absolute_expires_at).where(
    _sessions.c.session_hash == bindparam("session_hash"))


def session_hash(session_id: str) -> str:
    """What the database holds of a session id."""
    return token_hash(session_id)


def load_session_actor(conn: Connection, session_id: str,
                       now: datetime) -> tuple[int, Actor] | None:
    """The identity of a live session (its id and actor, enabled or not); None when the
    session is unknown, has ended, or its token no longer belongs to its identity."""
    row = conn.execute(SESSION_BY_HASH, {"session_hash": session_hash(session_id)}).first()
    if row is None or now >= row.expires_at or now >= row.absolute_expires_at:
        return None
    found = load_actor(conn, row.token_hash)
    if found is None or found[0] != row.identity_id:
        return None
    return found
