"""Starting up: the first identity (created by 'signgate init', with admin and auditor on
everything), the database schema, the check that the master key opens this database's
vault, and the repairs 'signgate serve' makes before it listens (missing CAs and
certificates, certificates that name another public URL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm
from signgate.crypto.tokens import new_token, token_hash
from signgate.errors import ConfigError, Conflict, ErrorCode, KeyStoreError
from signgate.keystore.base import KeyRef
from signgate.keystore.registry import SOFT
from signgate.policy.model import GLOBAL_SCOPE, IdentityKind, KeyState, Role, check_name
from signgate.service.context import Context
from signgate.service.records.authorities import (
    ROOT,
    authority_certificate,
    crl_url_of,
    ensure_issuing_ca,
    ensure_root,
    ensure_tsa,
    issue_version_certificate,
    reissue_certificate,
    root,
)
from signgate.service.records.log import ensure_log_key
from signgate.store.db import Database
from signgate.store.models import (
    Authority,
    Certificate,
    GrantRow,
    Identity,
    Key,
    KeyVersion,
    Project,
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
    """Raise :class:`ConfigError` unless every key store that holds keys of this database
    can use one of them now: the software vault opens the oldest (code ``vault_sealed``:
    a wrong master key would otherwise pass unnoticed until the first signing, CRL or CA
    creation), an HSM store finds its oldest on its token. The keys tried are the
    authorities' (root CA first), then the key versions that are not one-time keys' (those
    are destroyed after their one signing). Does nothing for a database with no keys yet."""
    with ctx.db.read() as session:
        candidates = [*session.execute(
            select(Authority.key_uri, Authority.algorithm).order_by(Authority.id)),
            *session.execute(
                select(KeyVersion.uri, Key.algorithm)
                .join(Key, Key.id == KeyVersion.key_id)
                .where(Key.one_time.is_(False)).order_by(KeyVersion.id).limit(1000))]
    probes: dict[str, KeyRef] = {}
    for uri, algorithm in (c.tuple() for c in candidates):
        try:
            store = ctx.keystores.store_name(uri)
        except ConfigError:
            continue
        probes.setdefault(store, KeyRef(uri, KeyAlgorithm(algorithm)))
    for store, ref in probes.items():
        try:
            ctx.keystores.probe(ref)
        except KeyStoreError as exc:
            if store != SOFT:
                raise ConfigError(f"key store {store!r} cannot use this database's key "
                                  f"{ref.uri}: {exc}") from exc
            raise ConfigError(
                f"the master key ({ctx.settings.master_key_source}) does not open this "
                f"database's vault: it is not the key this database was initialised with, or "
                f"the sealed keys were altered ({exc})", code=ErrorCode.VAULT_SEALED) from exc


def ensure_all(ctx: Context) -> int:
    """Bring an installation up to the PKI: root, issuing CAs and version certificates that
    are missing (databases created before the PKI existed). Returns how many were made."""
    made = 0
    with ctx.transaction() as session:
        if root(session) is None:
            ensure_root(ctx, session)
            made += 1
        made += ensure_tsa(ctx, session)
        made += ensure_log_key(ctx, session)
        for project in session.execute(select(Project)).scalars():
            has_ca = session.execute(
                select(Authority.id).where(Authority.project_id == project.id)).first()
            if not has_ca:
                ensure_issuing_ca(ctx, session, project)
                made += 1
        missing = session.execute(
            select(KeyVersion).outerjoin(Certificate,
                                         Certificate.key_version_id == KeyVersion.id)
            .where(Certificate.id.is_(None))
        ).scalars().all()
        for version in missing:
            issue_version_certificate(ctx, session, version.key, version, ctx.clock.now())
            made += 1
    return made


def reissue_for_public_url(ctx: Context, actor: str = "signgate") -> int:
    """Re-issue the certificates that name another ``public_url`` in their CRL URL: the
    TSA's and the issuing CAs' (from the root), then the current versions' of live keys
    (from their CA). Same key, subject and end of validity, a new serial and the new URL:
    signatures made with the old certificates still chain (same issuer name and key
    identifier) and new ones point verifiers at CRLs they can fetch. Each is recorded.
    Returns how many were re-issued."""
    base = ctx.settings.public_url
    made = 0
    with ctx.transaction() as session:
        now = ctx.clock.now()
        for authority in session.execute(
                select(Authority).where(Authority.kind != ROOT).order_by(Authority.id)).scalars():
            row = authority_certificate(session, authority)
            parent = session.get(Authority, row.issuer_id) if row.issuer_id else None
            if parent is not None and _stale(row, f"{base}/ca/root.crl", now):
                reissue_certificate(ctx, session, row, parent, authority.public_key_pem,
                                    f"{base}/ca/root.crl", now, actor, authority=authority)
                made += 1
        live = session.execute(
            select(KeyVersion).join(Key, Key.id == KeyVersion.key_id)
            .where(KeyVersion.retired_at.is_(None), Key.one_time.is_(False),
                   Key.state.in_([KeyState.ACTIVE.value, KeyState.DISABLED.value]))
            .order_by(KeyVersion.id)
        ).scalars().all()
        for version in live:
            newest = session.execute(
                select(Certificate).where(Certificate.key_version_id == version.id)
                .order_by(Certificate.id.desc())
            ).scalars().first()
            ca = session.get(Authority, newest.issuer_id) if newest and newest.issuer_id \
                else None  # an imported certificate (no issuer of ours) is left alone
            url = f"{base}/crl/{version.key.project.name}.crl"
            if newest is not None and ca is not None and _stale(newest, url, now):
                reissue_certificate(ctx, session, newest, ca, version.public_key_pem, url,
                                    now, actor, version=version)
                made += 1
    return made


def _stale(row: Certificate, crl_url: str, now: datetime) -> bool:
    """A valid, unrevoked certificate whose CRL URL is not ``crl_url``."""
    if row.revoked_at is not None or row.not_after <= now:
        return False
    named = crl_url_of(row.der)
    return named is not None and named != crl_url


def upgrade_database(database_url: str) -> str:
    """Apply the database migrations up to the newest schema; the revision reached."""
    database = Database(database_url)
    try:
        return database.upgrade()
    finally:
        database.dispose()
