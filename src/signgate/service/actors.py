"""Who holds a token: the one token-to-actor loader.

Both the context's :func:`~signgate.service.context.authenticate` (every use case) and the
signing pipeline's cached look-ups (the hot path) read an identity and its grants here, so
that the two cannot come to disagree about who a token names. The statements are Core SQL
built once: constructing SQLAlchemy expressions per request costs more than running them.

A token is an identity's own, or the short-lived token of an OIDC exchange
(service/oidc.py): that one acts as its issuer's identity, with the grants and claims it
was bound to when it was issued, until it expires (the callers compare the expiry with
their clock: :meth:`Actor.expired`).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, bindparam, select

from signgate.policy.model import Actor, Federation, Grant, Role, Scope
from signgate.store.models import GrantRow, Identity, OidcIssuer, OidcSession, table

_ident, _grants = table(Identity), table(GrantRow)
_sessions, _issuers = table(OidcSession), table(OidcIssuer)
IDENTITY_BY_TOKEN = select(_ident.c.id, _ident.c.name, _ident.c.enabled).where(
    _ident.c.token_hash == bindparam("token_hash"))
GRANTS_OF = select(_grants.c.role, _grants.c.scope).where(
    _grants.c.identity_id == bindparam("identity_id"))
SESSION_BY_TOKEN = (
    select(_ident.c.id, _ident.c.name, _ident.c.enabled, _issuers.c.name.label("issuer"),
           _sessions.c.grants_json, _sessions.c.claims_json, _sessions.c.expires_at)
    .join(_ident, _ident.c.id == _sessions.c.identity_id)
    .join(_issuers, _issuers.c.id == _sessions.c.issuer_id)
    .where(_sessions.c.token_hash == bindparam("token_hash")))


def load_actor(conn: Connection, token_hash: str) -> tuple[int, Actor] | None:
    """The identity (its id, and as the policy sees it: name, enabled, grants) whose token
    hashes to ``token_hash``, disabled or not; None when no identity holds it."""
    row = conn.execute(IDENTITY_BY_TOKEN, {"token_hash": token_hash}).first()
    if row is None:
        return _load_session(conn, token_hash)
    grants = conn.execute(GRANTS_OF, {"identity_id": row.id}).all()
    return row.id, Actor(row.name, bool(row.enabled),
                         tuple(Grant(Role(role), Scope.parse(scope)) for role, scope in grants))


def _load_session(conn: Connection, token_hash: str) -> tuple[int, Actor] | None:
    row = conn.execute(SESSION_BY_TOKEN, {"token_hash": token_hash}).first()
    if row is None:
        return None
    grants = tuple(Grant(Role(role), Scope.parse(scope))
                   for role, scope in json.loads(row.grants_json))
    claims = tuple(sorted((str(k), str(v)) for k, v in json.loads(row.claims_json).items()))
    return row.id, Actor(row.name, bool(row.enabled), grants,
                         Federation(row.issuer, claims, row.expires_at))


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
