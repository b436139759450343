"""Step 1: may this caller have this signed with this key, now?

Input checks, the signer grant, signgate's own scan verdict and the key's policy
(``policy.decide.may_sign``), decided with the state of the batch's transaction. The caller
is already authenticated (``Lookups.actor``); nothing here touches a key store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from signgate.crypto.algorithms import DigestAlgorithm, parse_digest
from signgate.crypto.canonical import canonical_json
from signgate.errors import Denied, InvalidInput
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.pipeline.lookups import CurrentKey, Lookups
from signgate.service.sign_request import MAX_ARTIFACT_NAME, SignRequest

MAX_METADATA_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Authorized:
    """A request that may be signed: who asked, and what exactly is to be signed."""

    identity_id: int
    actor: Actor
    key: CurrentKey
    digest_algorithm: DigestAlgorithm
    digest: bytes
    metadata: dict[str, str]


def authorize(lookups: Lookups, request: SignRequest, identity_id: int,
              actor: Actor) -> Authorized:
    alg = DigestAlgorithm.parse(request.digest_algorithm)
    meta = check_request(request.artifact_name, request.metadata)
    # Grants first: a refusal must not tell whether the key exists, except to a caller
    # who may see the key (records.keys.refuse_signer).
    d = decide.may_sign_with(actor, request.project, request.key)
    if not d.allowed:
        if decide.may_see(actor, request.project, request.key):
            lookups.key(request.project, request.key)  # NotFound for a missing key
        raise Denied(d.reason)
    if request.scan is not None:
        # Whatever the key's policy: what signgate scanned and found is never signed.
        request.scan.enforce(request.artifact_name)
    digest = parse_digest(alg, request.digest)
    key = lookups.key(request.project, request.key)
    d = decide.may_sign(actor, key.snapshot(), scanned=request.scan is not None)
    if not d.allowed:
        raise Denied(d.reason, code=d.code)
    return Authorized(identity_id, actor, key, alg, digest, meta)


def check_request(artifact_name: str, metadata: Mapping[str, str]) -> dict[str, str]:
    if not artifact_name or len(artifact_name) > MAX_ARTIFACT_NAME:
        raise InvalidInput(f"artifact name must be 1 to {MAX_ARTIFACT_NAME} characters")
    if any(ord(c) < 32 for c in artifact_name):
        raise InvalidInput("artifact name must not contain control characters")
    meta = dict(metadata)
    if meta and len(canonical_json(meta)) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return meta
