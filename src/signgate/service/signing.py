"""Sign a digest, and verify a signature against a key's versions and revocation."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding, parse_digest
from signgate.crypto.canonical import canonical_json
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import InvalidInput
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, require
from signgate.service.keys import (
    get_key,
    get_version,
    handle_for,
    rotate_locked,
    snapshot,
    split_ref,
)
from signgate.service.views import Receipt, SignResult, VerifyResult
from signgate.store.models import Identity, KeyVersion, SignatureRecord

MAX_ARTIFACT_NAME = 1024
MAX_METADATA_BYTES = 8192
RAW_FORMAT = "raw"


def _check_request(artifact_name: str, metadata: Mapping[str, str]) -> dict[str, str]:
    if not artifact_name or len(artifact_name) > MAX_ARTIFACT_NAME:
        raise InvalidInput(f"artifact name must be 1 to {MAX_ARTIFACT_NAME} characters")
    if any(ord(c) < 32 for c in artifact_name):
        raise InvalidInput("artifact name must not contain control characters")
    meta = dict(metadata)
    if len(canonical_json(meta)) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return meta


def sign(
    ctx: Context,
    caller: Caller,
    ref: str,
    digest_algorithm: str,
    digest_hex: str,
    artifact_name: str,
    metadata: Mapping[str, str] | None = None,
) -> SignResult:
    project, name = split_ref(ref)

    def run(session: Session, identity: Identity, actor: Actor) -> SignResult:
        alg = DigestAlgorithm.parse(digest_algorithm)
        digest = parse_digest(alg, digest_hex)
        meta = _check_request(artifact_name, metadata or {})
        # Lock the key row: signings with one key are ordered, so that counts and
        # rotation limits hold even with many concurrent requests and API nodes.
        key = get_key(session, project, name, lock=True)
        version = get_version(session, key)
        d = decide.may_sign(actor, snapshot(key, version))
        require(d.allowed, d.reason)
        now = ctx.clock.now()
        due = decide.rotation_due(snapshot(key, version), now)
        if due is not None:
            version = rotate_locked(ctx, session, key, actor.name, due, now)
        signature = ctx.keystores.sign(handle_for(session, key, version), alg, digest)
        version.signature_count += 1
        signature_id = str(uuid.uuid4())
        details: dict[str, object] = {
            "signature_id": signature_id,
            "key_version": version.version,
            "digest_algorithm": alg.value,
            "digest": digest.hex(),
            "format": RAW_FORMAT,
            "signature_sha256": hashlib.sha256(signature).hexdigest(),
        }
        if caller.address:
            details["client"] = caller.address
        if meta:
            details["metadata"] = meta
        seq = ctx.record(
            session,
            Record(actor.name, Action.SIGN, Outcome.ALLOWED, artifact_name, project, ref,
                   details),
            now,
        )
        session.add(
            SignatureRecord(
                id=signature_id, key_version_id=version.id, identity_id=identity.id,
                artifact_name=artifact_name, digest_algorithm=alg.value, digest=digest.hex(),
                signature_sha256=details["signature_sha256"], format=RAW_FORMAT, signed_at=now,
                client_address=caller.address, metadata_json=canonical_json(meta).decode(),
                audit_seq=seq,
            )
        )
        algorithm = KeyAlgorithm(key.algorithm)
        receipt = Receipt(
            signature_id=signature_id, key=ref, key_version=version.version,
            algorithm=key.algorithm,
            rsa_padding=key.rsa_padding if algorithm.is_rsa else None,
            digest_algorithm=alg.value, digest=digest.hex(), artifact_name=artifact_name,
            format=RAW_FORMAT, identity=actor.name, signed_at=now, audit_seq=seq,
        )
        return SignResult(base64.b64encode(signature).decode("ascii"), receipt)

    target = Target(Action.SIGN, artifact_name[:MAX_ARTIFACT_NAME] or ref, project, ref)
    return ctx.write(caller, target, run)


def decode_signature(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("signature must be base64", code="bad_signature_encoding") from None
    if not raw or len(raw) > 2048:
        raise InvalidInput("signature has an impossible length", code="bad_signature_length")
    return raw


def verify(
    ctx: Context, caller: Caller, ref: str, digest_algorithm: str, digest_hex: str,
    signature_b64: str,
) -> VerifyResult:
    project, name = split_ref(ref)
    alg = DigestAlgorithm.parse(digest_algorithm)
    digest = parse_digest(alg, digest_hex)
    signature = decode_signature(signature_b64)

    def run(session: Session, _actor: Actor) -> VerifyResult:
        key = get_key(session, project, name)
        algorithm = KeyAlgorithm(key.algorithm)
        padding = RsaPadding(key.rsa_padding)
        versions = session.execute(
            select(KeyVersion).where(KeyVersion.key_id == key.id)
            .order_by(KeyVersion.version.desc())
        ).scalars().all()
        match = next(
            (v for v in versions
             if verify_digest(load_public_key(v.public_key_pem),
                              padding if algorithm.is_rsa else None, alg, digest, signature)),
            None,
        )
        result = VerifyResult(valid=False, key=ref, reason="", algorithm=key.algorithm,
                              key_state=key.state, compromised_at=key.compromised_at)
        if match is None:
            return replace(result, reason=f"the signature does not match any version of {ref} "
                           "for this file")
        result = replace(result, key_version=match.version)
        record = session.execute(
            select(SignatureRecord, Identity.name)
            .join(Identity, SignatureRecord.identity_id == Identity.id)
            .where(SignatureRecord.key_version_id == match.id,
                   SignatureRecord.signature_sha256 == hashlib.sha256(signature).hexdigest())
        ).first()
        if record is not None:
            rec, who = record
            result = replace(result, signature_id=rec.id, signed_at=rec.signed_at,
                             signed_by=who)
        if key.compromised_at is None:
            return replace(result, valid=True,
                           reason=f"valid: signed by {ref} version {match.version}")
        when = key.compromised_at.isoformat()
        if result.signed_at is None:
            return replace(result, reason=f"key {ref} was revoked (compromised at {when}) "
                           "and signgate has no record of when this signature was made")
        if result.signed_at >= key.compromised_at:
            return replace(result, reason=f"signed at {result.signed_at.isoformat()}, after "
                           f"{ref} was compromised at {when}")
        return replace(result, valid=True, reason=f"valid: signed by version {match.version} "
                       f"before {ref} was compromised at {when}")

    return ctx.read(caller, Target(Action.READ, ref, project, ref), run)
