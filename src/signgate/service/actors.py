"""Who holds a token: the one token-to-actor loader.

Both the context's :func:`~signgate.service.context.authenticate` (every use case) and the
signing pipeline's cached look-ups (the hot path) read an identity and its grants here, so
that the two cannot come to disagree about who a token names. The statements are Core SQL
built once: constructing SQLAlchemy expressions per request costs more than running them.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from signgate.policy.model import Actor, Grant, Role, Scope
from signgate.store.models import GrantRow, Identity, table

_ident, _grants = table(Identity), table(GrantRow)
IDENTITY_BY_TOKEN = select(_ident.c.id, _ident.c.name, _ident.c.enabled).where(
    _ident.c.token_hash == bindparam("token_hash"))
GRANTS_OF = select(_grants.c.role, _grants.c.scope).where(
    _grants.c.identity_id == bindparam("identity_id"))


def load_actor(conn: Connection, token_hash: str) -> tuple[int, Actor] | None:
    """The identity (its id, and as the policy sees it: name, enabled, grants) whose token
    hashes to ``token_hash``, disabled or not; None when no identity holds it."""
    row = conn.execute(IDENTITY_BY_TOKEN, {"token_hash": token_hash}).first()
    if row is None:
        return None
    grants = conn.execute(GRANTS_OF, {"identity_id": row.id}).all()
    return row.id, Actor(row.name, bool(row.enabled),
                         tuple(Grant(Role(role), Scope.parse(scope)) for role, scope in grants))


IDENTITY_BY_ID = select(_ident.c.id, _ident.c.name, _ident.c.enabled).where(
    _ident.c.id == bindparam("identity_id"))


def load_actor_by_id(conn: Connection, identity_id: int) -> Actor | None:
    """The identity ``identity_id`` as the policy sees it (for a signing made on its behalf
    once its request was approved: its grants as they are then)."""
    row = conn.execute(IDENTITY_BY_ID, {"identity_id": identity_id}).first()
    if row is None:
        return None
    grants = conn.execute(GRANTS_OF, {"identity_id": row.id}).all()
    return Actor(row.name, bool(row.enabled),
                 tuple(Grant(Role(role), Scope.parse(scope)) for role, scope in grants))
