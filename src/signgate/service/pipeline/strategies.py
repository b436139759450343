"""The three ways a key signs: its current version as it is (plain), a new version first
when policy says the current one is due (rotate-then-sign), or a fresh key pair for this
one signing, destroyed before anything is returned (one-time).

Each is given ``make``, which turns the signing key's description into the bytes to sign
(the format's to-be-signed structure, see :func:`prepare`), because a rotation or a
one-time key changes the key the format must name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import Conflict, ErrorCode
from signgate.formats.base import Builder, FormatRequest, SignerKey, ToBeSigned
from signgate.keystore.base import KeyRef
from signgate.pki import certs
from signgate.policy.model import Actor
from signgate.service.pipeline.lookups import CurrentKey
from signgate.service.pipeline.work import Work
from signgate.service.records.authorities import (
    authority_certificate,
    ensure_issuing_ca,
    issue_version_certificate,
)
from signgate.service.records.keys import get_key, rotate_version
from signgate.store.models import KeyVersion


@dataclass(frozen=True, slots=True)
class Prepared:
    signer: SignerKey
    tbs: ToBeSigned
    payload: bytes  # what the key store signs
    hash_algorithm: DigestAlgorithm  # what ``payload`` is a digest of


Make = Callable[[SignerKey], Prepared]


def prepare(builder: Builder, signer: SignerKey, request: FormatRequest) -> Prepared:
    """The bytes the key store signs for ``signer``: a digest, or for Ed25519 the message
    itself (see ToBeSigned)."""
    tbs = builder.prepare(signer, request)
    alg = tbs.hash_algorithm or request.digest_algorithm
    if tbs.prehashed or signer.algorithm is KeyAlgorithm.ED25519:
        payload = tbs.message
    else:
        payload = hashlib.new(alg.value, tbs.message).digest()
    return Prepared(signer, tbs, payload, alg)


@dataclass(frozen=True, slots=True)
class OneTimeCertificate:
    pem: str  # the one-time certificate and its issuer, for the client
    serial: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Signed:
    key: CurrentKey  # the version that signed
    prepared: Prepared
    signature: bytes  # the key store's signature value
    certificate: OneTimeCertificate | None = None


def plain(work: Work, key: CurrentKey, make: Make) -> Signed:
    """The current version signs."""
    prepared = make(key.signer())
    return Signed(key, prepared, _sign_with(work, key, prepared))


def rotate_then_sign(work: Work, key: CurrentKey, actor: Actor, reason: str, now: datetime,
                     make: Make) -> Signed:
    """Policy rotation before signing (rare), all or nothing: if the signing with the new
    version fails, the rotation is undone with it (savepoint, audit entries, cache)."""
    stale: Conflict | None = None
    lookups = work.lookups
    with work.savepoint(key.ref):
        rotate_version(work.ctx, work.session, get_key(work.session, key.project, key.name),
                       actor.name, reason, now)
        work.session.flush()
        lookups.forget(key.ref)
        key = lookups.key(key.project, key.name)
        try:
            prepared = make(key.signer())
        except Conflict as exc:
            # The client prepared for the version this rotation retired (OpenPGP names
            # the key inside what it hashes): keep the rotation, which policy demanded
            # anyway, so that the client's retry meets the new version.
            if exc.code is not ErrorCode.KEY_ROTATED:
                raise
            stale = exc
        else:
            signed = Signed(key, prepared, _sign_with(work, key, prepared))
    if stale is not None:
        raise stale
    return signed


def one_time(work: Work, key: CurrentKey, actor: Actor, now: datetime, make: Make) -> Signed:
    """A fresh key pair, a certificate valid for minutes, one signature, and the private
    key destroyed before anything is returned. Only the public key and certificate are
    kept (a key version that never signs again); the private key lives only in the
    one-time key store (memory) until it is destroyed."""
    ctx, session = work.ctx, work.session
    keystores = ctx.keystores
    generated = keystores.generate(key.algorithm, one_time=True)
    ref = KeyRef(generated.uri, key.algorithm, key.rsa_padding)
    try:
        with work.savepoint(key.ref):
            orm_key = get_key(session, key.project, key.name)
            number = orm_key.current_version + 1
            version = KeyVersion(key_id=orm_key.id, version=number, uri=generated.uri,
                                 public_key_pem=generated.public_key_pem, created_at=now,
                                 retired_at=now, signature_count=0)
            session.add(version)
            session.flush()
            orm_key.current_version = number
            lifetime = timedelta(minutes=ctx.settings.one_time_cert_minutes)
            cert = issue_version_certificate(ctx, session, orm_key, version, now, actor.name,
                                             lifetime)
            issuer = authority_certificate(session, ensure_issuing_ca(ctx, session,
                                                                      orm_key.project))
            session.flush()
            prepared = make(SignerKey(key.ref, number, key.algorithm, key.rsa_padding,
                                      generated.public_key_pem, now, one_time=True))
            signature = keystores.sign(ref, prepared.hash_algorithm, prepared.payload)
    finally:
        keystores.destroy(ref)  # the key can never sign again
    certificate = OneTimeCertificate(certs.to_pem(cert.der) + certs.to_pem(issuer.der),
                                     cert.serial, cert.sha256)
    return Signed(work.lookups.key(key.project, key.name), prepared, signature, certificate)


def _sign_with(work: Work, key: CurrentKey, prepared: Prepared) -> bytes:
    ref = KeyRef(key.uri, key.algorithm, key.rsa_padding)
    return work.ctx.keystores.sign(ref, prepared.hash_algorithm, prepared.payload)
