"""Step 2: the signature the caller gets, in their format.

The format checks what it was asked before any key is touched (or a one-time key made);
then one signing strategy signs, the key's policy adds a timestamp (no signature of a
``require_timestamp`` key leaves without its token), and the format assembles the result
with the certificate chain it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from signgate.crypto.canonical import canonical_json
from signgate.errors import InvalidInput
from signgate.formats import cms as cms_format
from signgate.formats import registry as formats
from signgate.formats.base import FormatRequest, SignerKey
from signgate.pki import tsa as rfc3161
from signgate.policy import decide
from signgate.service.pipeline import strategies
from signgate.service.pipeline.authorize import Authorized
from signgate.service.pipeline.lookups import CurrentKey
from signgate.service.pipeline.strategies import OneTimeCertificate, Prepared
from signgate.service.pipeline.timestamps import stamp
from signgate.service.pipeline.work import Work
from signgate.service.sign_request import SignRequest

MAX_PARAMS_BYTES = 16384


@dataclass(frozen=True, slots=True)
class Produced:
    """A made signature, not yet on the record."""

    key: CurrentKey  # the version that signed (after a rotation: the new one)
    format: str
    signature: bytes  # what the caller gets: the format's assembled output
    signature_value: bytes  # the key store's signature inside it
    stamp: rfc3161.Issued | None
    certificate: OneTimeCertificate | None
    signed_at: datetime


def produce(work: Work, request: SignRequest, authorized: Authorized) -> Produced:
    key = authorized.key
    now = work.ctx.clock.now()
    builder = formats.builder(request.format)
    wanted = FormatRequest(authorized.digest_algorithm, authorized.digest,
                           request.artifact_name, now,
                           check_params(request.format, request.params),
                           timestamp=request.timestamp or key.require_timestamp)
    builder.check(key.signer(), wanted)

    def make(signer: SignerKey) -> Prepared:
        return strategies.prepare(builder, signer, wanted)

    if key.one_time:
        signed = strategies.one_time(work, key, authorized.actor, now, make)
    else:
        due = decide.rotation_due(key.snapshot(), now)
        signed = (strategies.plain(work, key, make) if due is None
                  else strategies.rotate_then_sign(work, key, authorized.actor, due, now,
                                                   make))
    issued = stamp(work, signed.signature, now) if wanted.timestamp else None
    chain = work.lookups.chain(signed.key.version_id) if builder.needs_chain else None
    assembled = builder.assemble(
        signed.prepared.signer, wanted, signed.prepared.tbs, signed.signature, chain,
        _token(issued))
    return Produced(signed.key, builder.name, assembled, signed.signature, issued,
                    signed.certificate, now)


def _token(issued: rfc3161.Issued | None) -> bytes | None:
    if issued is None:
        return None
    return issued.token if issued.token is not None else cms_format.token_of(issued.der)


def check_params(fmt: str, params: Mapping[str, str]) -> dict[str, str]:
    out = dict(params)
    formats.check_params(fmt, out)
    if out and len(canonical_json(out)) > MAX_PARAMS_BYTES:
        raise InvalidInput(f"format parameters are limited to {MAX_PARAMS_BYTES} bytes of "
                           "JSON")
    return out
