"""Keys and key versions inside a session: find them (by name, by version, as the caller
may see them), make a new version (key pair in the key store, certificate from the
project's CA), rotate. Session helpers only; the key use cases are in service/keys.py."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import NoReturn

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm
from signgate.errors import Denied, ErrorCode, InvalidInput, NotFound, SigngateError
from signgate.keystore.base import KeyRef
from signgate.policy import decide
from signgate.policy.model import Actor, check_name
from signgate.service.context import Context
from signgate.service.records.authorities import issue_version_certificate
from signgate.service.views import KeyVersionView, KeyView, PublicKeyView
from signgate.store.models import Key, KeyVersion, Project

log = logging.getLogger("signgate.keys")


def split_ref(ref: str) -> tuple[str, str]:
    project, sep, name = ref.partition("/")
    if not sep:
        raise InvalidInput(f"key must be named PROJECT/NAME, got {ref!r}",
                           code=ErrorCode.BAD_KEY_REF)
    return check_name("project", project), check_name("key", name)


def get_key(session: Session, project: str, name: str) -> Key:
    """The key ``project/name``. Write transactions need no row lock: they all hold the
    audit head lock (see Context.transaction), which orders every writer."""
    stmt = (
        select(Key)
        .join(Project, Key.project_id == Project.id)
        .where(Project.name == project, Key.name == name)
    )
    key = session.execute(stmt).scalar_one_or_none()
    if key is None:
        raise NotFound(f"no key {project}/{name}")
    return key


def get_version(session: Session, key: Key, version: int | None = None) -> KeyVersion:
    wanted = key.current_version if version is None else version
    row = session.execute(
        select(KeyVersion).where(KeyVersion.key_id == key.id, KeyVersion.version == wanted)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"key {key.project.name}/{key.name} has no version {wanted}")
    return row


def key_view(session: Session, key: Key, ctx: Context | None = None,
             attributes: bool = False) -> KeyView:
    """The key and its versions; with ``ctx``, each version names its key store, and with
    ``attributes`` too the HSM keys' security attributes are read from their tokens (the
    versions that can still sign: a destroyed one-time key has none)."""
    versions = session.execute(
        select(KeyVersion).where(KeyVersion.key_id == key.id).order_by(KeyVersion.version)
    ).scalars()
    algorithm = KeyAlgorithm(key.algorithm)

    def version_view(v: KeyVersion) -> KeyVersionView:
        store = ctx.keystores.store_name(v.uri) if ctx is not None else "soft"
        found = None
        if ctx is not None and attributes and not key.one_time:
            try:
                found = ctx.keystores.attributes(KeyRef(v.uri, algorithm))
            except SigngateError as exc:  # the token is down, or no longer configured
                log.warning("cannot read the attributes of %s version %s: %s",
                            key.name, v.version, exc)
        return KeyVersionView(v.version, v.created_at, v.retired_at, v.signature_count,
                              v.version == key.current_version, store, found)

    return KeyView(
        project=key.project.name,
        name=key.name,
        ref=f"{key.project.name}/{key.name}",
        algorithm=key.algorithm,
        rsa_padding=key.rsa_padding if algorithm.is_rsa else None,
        state=key.state,
        current_version=key.current_version,
        rotate_every_days=key.rotate_every_days,
        max_signatures=key.max_signatures,
        cert_validity_days=key.cert_validity_days,
        require_timestamp=key.require_timestamp,
        one_time=key.one_time,
        scan=key.scan,
        created_at=key.created_at,
        compromised_at=key.compromised_at,
        revoke_reason=key.revoke_reason,
        approvals=key.approvals or 0,
        approver_scope=key.approver_scope,
        require_builders=key.require_builders or 0,
        offline=bool(key.offline),
        max_per_identity_per_day=key.max_per_identity_per_day or 0,
        window_approvals=key.window_approvals or 0,
        versions=[version_view(v) for v in versions],
    )


def new_version(ctx: Context, session: Session, key: Key, number: int, now: datetime,
                store: str | None = None) -> KeyVersion:
    """The next version, its key pair made in key store ``store`` (default: the default
    store of config.toml)."""
    # The key store joins this session's transaction: the version row and the key's
    # storage (the software vault's sealed blob) commit or roll back together.
    generated = ctx.keystores.generate(KeyAlgorithm(key.algorithm), store=store)
    version = KeyVersion(
        key_id=key.id, version=number, uri=generated.uri,
        public_key_pem=generated.public_key_pem, created_at=now, signature_count=0,
    )
    session.add(version)
    session.flush()
    issue_version_certificate(ctx, session, key, version, now)
    return version


def rotate_version(
    ctx: Context, session: Session, key: Key, actor: str, reason: str, now: datetime,
    store: str | None = None,
) -> KeyVersion:
    """Retire the current version and make the next one current: in key store ``store``,
    else the store the current version is in (a scheduled rotation keeps a key where it
    is; moving to another store is asked for by name)."""
    old = get_version(session, key)
    old.retired_at = now
    target: str | None = store if store is not None else ctx.keystores.store_name(old.uri)
    if target not in ctx.keystores.named:
        target = None  # a store no longer configured: the default store
    version = new_version(ctx, session, key, old.version + 1, now, target)
    key.current_version = version.version
    session.flush()
    ref = f"{key.project.name}/{key.name}"
    ctx.record(
        session,
        Record(actor, Action.KEY_ROTATE, Outcome.ALLOWED, ref, key.project.name, ref,
               {"from_version": old.version, "to_version": version.version, "reason": reason,
                "public_key_sha256": fingerprint(version.public_key_pem),
                "store": ctx.keystores.store_name(version.uri), "key_uri": version.uri}),
        now,
    )
    return version


def fingerprint(pem: str) -> str:
    """SHA-256 of a public key's SubjectPublicKeyInfo, for audit entries."""
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def refuse_signer(session: Session, actor: Actor, project: str, name: str,
                  reason: str) -> NoReturn:
    """Refuse a caller without a signer grant on ``project/name``. One who may see the key
    (an admin or auditor over it, say) and names a missing key is told it is missing; any
    other caller gets the same refusal whether the key exists or not."""
    if decide.may_see(actor, project, name):
        get_key(session, project, name)  # NotFound for a missing key
    raise Denied(reason)


def visible_key(session: Session, actor: Actor, project: str, name: str) -> Key:
    """The key, if ``actor`` may see it; otherwise the same NotFound as a missing key."""
    if not decide.may_see(actor, project, name):
        raise NotFound(f"no key {project}/{name}")
    return get_key(session, project, name)



def public_key_view(session: Session, actor: Actor, project: str, name: str,
                    version: int | None = None) -> PublicKeyView:
    """The public key of a version (the current one by default) of a key ``actor`` may see."""
    key = visible_key(session, actor, project, name)
    v = get_version(session, key, version)
    alg = KeyAlgorithm(key.algorithm)
    return PublicKeyView(f"{project}/{name}", v.version, key.algorithm,
                         key.rsa_padding if alg.is_rsa else None, v.public_key_pem,
                         v.version == key.current_version, v.created_at)
