"""Sign a digest, and verify a signature against a key's versions and revocation."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding, parse_digest
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import (
    AuthenticationFailed,
    Denied,
    ErrorCode,
    InvalidInput,
    SigngateError,
)
from signgate.pki import tsa as rfc3161
from signgate.policy import decide
from signgate.policy.model import Actor, KeyState, ScanPolicy
from signgate.service.context import Caller, Context, Target
from signgate.service.records import windows
from signgate.service.records.keys import get_key, refuse_signer, split_ref, visible_key
from signgate.service.sign_request import SignOutcome, SignRequest
from signgate.service.views import SignPolicyView, VerifyResult
from signgate.store.models import AuditEntry, KeyVersion, SignatureRecord, signature_prefix


def sign(ctx: Context, request: SignRequest) -> SignOutcome:
    """Sign ``request`` with the current version of its key; returns only after the audit
    entry is committed (group commit: see service/pipeline/batch.py). A malformed
    project or key name is refused here, before the request is queued or recorded. A key
    with quorum approvals answers with the request that waits for them instead."""
    split_ref(request.ref)
    return ctx.signing.submit(request)


async def sign_async(ctx: Context, request: SignRequest) -> SignOutcome:
    """:func:`sign` for the event loop (the API's hot path: no thread-pool hop)."""
    split_ref(request.ref)
    return await ctx.signing.submit_async(request)


MAX_BATCH_ITEMS = 1000


async def sign_batch_async(ctx: Context, requests: Sequence[SignRequest],
                           ) -> list[SignOutcome | SigngateError]:
    """Sign every request of a batch signing (one key, up to :data:`MAX_BATCH_ITEMS`),
    each decided on its own and recorded (refusals too), all in one group commit; each
    outcome in order: the result, the request that waits for approvals, or the refusal
    (returned, not raised). Returns once that commit has returned. A batch that is empty,
    too large or names more than one key is refused whole, before anything is queued."""
    if not requests:
        raise InvalidInput("a batch signing needs at least one item")
    if len(requests) > MAX_BATCH_ITEMS:
        raise InvalidInput(f"a batch signing takes at most {MAX_BATCH_ITEMS} items, "
                           f"got {len(requests)}")
    ref = requests[0].ref
    if any(r.ref != ref for r in requests):
        raise InvalidInput("every item of a batch signing is signed with the same key")
    split_ref(ref)
    outcomes = await ctx.signing.submit_many_async(requests)
    first = outcomes[0]
    if isinstance(first, Exception) and not isinstance(first, SigngateError) and all(
            o is first for o in outcomes):
        raise first  # the transaction failed (say, the database): answered as a signing's
    if all(isinstance(o, AuthenticationFailed) for o in outcomes):
        # The caller, not its items, was refused: one answer (401, or 429 when throttled).
        raise cast(AuthenticationFailed, first)
    return [_refusal(o) if isinstance(o, Exception) else o for o in outcomes]


def _refusal(exc: Exception) -> SigngateError:
    """An item's failure as the error its caller is told (a defect: an internal error,
    logged where it happened, never a 500 for the whole batch)."""
    if isinstance(exc, SigngateError):
        return exc
    return SigngateError("internal error while signing; nothing was signed",
                         code=ErrorCode.INTERNAL_ERROR)


def decode_signature(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("signature must be base64",
                           code=ErrorCode.BAD_SIGNATURE_ENCODING) from None
    if not raw or len(raw) > 2048:
        raise InvalidInput("signature has an impossible length",
                           code=ErrorCode.BAD_SIGNATURE_LENGTH)
    return raw


def verify(
    ctx: Context, caller: Caller, ref: str, digest_algorithm: str, digest_hex: str,
    signature_b64: str,
) -> VerifyResult:
    project, name = split_ref(ref)
    alg = DigestAlgorithm.parse(digest_algorithm)
    digest = parse_digest(alg, digest_hex)
    signature = decode_signature(signature_b64)

    def run(session: Session, actor: Actor) -> VerifyResult:
        key = visible_key(session, actor, project, name)
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
        sig_hash = hashlib.sha256(signature).digest()
        # Found by the hash's first 8 bytes (ix_signatures_prefix), confirmed by the whole
        # hash in its audit entry.
        for rec, entry in session.execute(
            select(SignatureRecord, AuditEntry)
            .join(AuditEntry, AuditEntry.seq == SignatureRecord.audit_seq)
            .where(SignatureRecord.signature_prefix == signature_prefix(sig_hash),
                   SignatureRecord.key_version_id == match.id)
        ).all():
            details = json.loads(entry.details)
            if details.get("signature_sha256") == sig_hash.hex():
                result = replace(result, signature_id=details["signature_id"],
                                 signed_at=rec.signed_at, signed_by=entry.actor,
                                 timestamped_at=rfc3161.response_time(rec.timestamp_token))
                break
        if key.compromised_at is None:
            return replace(result, valid=True,
                           reason=f"valid: signed by {ref} version {match.version}")
        when = key.compromised_at.isoformat()
        # The time the signature provably existed: the TSA's genTime when it was
        # timestamped, else signgate's own record of the signing.
        proven = result.timestamped_at or result.signed_at
        how = "timestamped" if result.timestamped_at else "signed"
        if proven is None:
            return replace(result, reason=f"key {ref} was revoked (compromised at {when}) "
                           "and signgate has no record of when this signature was made")
        if proven >= key.compromised_at:
            return replace(result, reason=f"{how} at {proven.isoformat()}, after "
                           f"{ref} was compromised at {when}")
        at = f" at {proven.isoformat()}," if result.timestamped_at else ""
        return replace(result, valid=True, reason=f"valid: {how} by version {match.version}"
                       f"{at} before {ref} was compromised at {when}")

    return ctx.read(caller, Target(Action.READ, ref, project, ref), run)


def sign_policy(ctx: Context, caller: Caller, ref: str, artifact_name: str) -> SignPolicyView:
    """What signing ``artifact_name`` with ``ref`` would take (a scanned upload or a
    digest), decided as the signing itself decides: the same refusals, recorded as
    refused signings, so that a client can ask before it hashes or uploads."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> SignPolicyView:
        d = decide.may_sign_with(actor, project, name)
        if not d.allowed:
            refuse_signer(session, actor, project, name, d.reason)
        key = get_key(session, project, name)
        if key.state != KeyState.ACTIVE.value:
            raise Denied(f"key {ref} is {key.state}")
        if key.offline:
            # Before an upload: is a window open for the caller? (The signing decides
            # again, and counts, in its transaction; the quota is decided there only.)
            windows.check(session.connection(), ref, key.id, True, 0, actor.name, -1,
                          ctx.clock.now())
        return SignPolicyView(ref, key.scan == ScanPolicy.REQUIRED.value, key.one_time,
                              key.require_timestamp)

    return ctx.read(caller, Target(Action.SIGN, artifact_name or ref, project, ref), run)
