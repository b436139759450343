"""Starting up: the first identity (created by 'signgate init', with admin and auditor on
everything) and the check that the master key opens this database's vault."""

from __future__ import annotations

from sqlalchemy import func, select

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm
from signgate.crypto.tokens import new_token, token_hash
from signgate.errors import ConfigError, Conflict, ErrorCode, KeyStoreError
from signgate.keystore.base import KeyHandle
from signgate.policy.model import GLOBAL_SCOPE, IdentityKind, Role, check_name
from signgate.service.context import Context
from signgate.store.models import (
    Authority,
    GrantRow,
    Identity,
    Key,
    KeyVersion,
    VaultEntry,
)


def bootstrap_admin(ctx: Context, name: str = "admin") -> str:
    """Create the bootstrap admin and return its token (shown once, never stored)."""
    check_name("identity", name)
    with ctx.transaction() as session:
        if session.execute(select(func.count()).select_from(Identity)).scalar_one():
            raise Conflict("signgate is already initialised: identities exist")
        token = new_token()
        now = ctx.clock.now()
        admin = Identity(name=name, kind=IdentityKind.USER.value, enabled=True,
                         token_hash=token_hash(token), created_at=now)
        session.add(admin)
        session.flush()
        for role in (Role.ADMIN, Role.AUDITOR):
            session.add(GrantRow(identity_id=admin.id, role=role.value, scope=GLOBAL_SCOPE,
                                 created_at=now))
        ctx.record(session, Record("signgate", Action.INIT, Outcome.ALLOWED, name,
                                   details={"grants": ["admin:*", "auditor:*"]}), now)
    return token


def check_vault(ctx: Context) -> None:
    """Raise :class:`ConfigError` (code ``vault_sealed``) unless the key store opens a key
    of this database: the root CA's (the oldest authority), else the oldest key version's.
    A wrong master key would otherwise pass unnoticed until the first signing, CRL or CA
    creation. Does nothing for a database with no keys yet."""
    with ctx.db.read() as session:
        probe = session.execute(
            select(Authority.key_uri, Authority.algorithm, VaultEntry.sealed)
            .join(VaultEntry, VaultEntry.uri == Authority.key_uri).order_by(Authority.id)
        ).first() or session.execute(
            select(KeyVersion.uri, Key.algorithm, VaultEntry.sealed)
            .join(Key, Key.id == KeyVersion.key_id)
            .join(VaultEntry, VaultEntry.uri == KeyVersion.uri).order_by(KeyVersion.id)
        ).first()
    if probe is None:
        return
    uri, algorithm, sealed = probe.tuple()
    handle = KeyHandle(uri, KeyAlgorithm(algorithm), load_sealed=lambda: sealed)
    try:
        ctx.keystores.probe(handle)
    except KeyStoreError as exc:
        raise ConfigError(
            f"the master key ({ctx.settings.master_key_source}) does not open this "
            f"database's vault: it is not the key this database was initialised with, or "
            f"the sealed keys were altered ({exc})", code=ErrorCode.VAULT_SEALED) from exc
