"""signgate's RFC 3161 time-stamp authority: its key and certificate, and the issuing of
time-stamp tokens, each recorded in the audit log in the transaction that signs it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import NotFound
from signgate.pki import certs
from signgate.pki import tsa as rfc3161
from signgate.policy.model import Actor
from signgate.service.context import ANONYMOUS, Caller, Context, Target
from signgate.service.records.authorities import (
    authority_certificate,
    authority_signer,
    chain_view,
    ensure_tsa,
    tsa_authority,
)
from signgate.service.views import CertificateChainView
from signgate.store.models import Authority

SUBJECT = "time-stamp"


@dataclass(frozen=True)
class Reply:
    """A ``TimeStampResp`` (DER) and how it went: ``granted``, or a rejection of a request
    that was (``malformed`` False) or was not (True) a well-formed ``TimeStampReq``."""

    der: bytes
    granted: bool
    malformed: bool = False


def timestamp(ctx: Context, der_request: bytes, client_address: str | None) -> Reply:
    """Answer one RFC 3161 request. A granted token is signed and its audit entry appended
    in one transaction: no token leaves signgate unrecorded. Refusals are recorded too."""
    try:
        request = rfc3161.parse_request(der_request)
        rfc3161.check_policy(request, ctx.settings.tsa_policy_oid)
    except rfc3161.RequestRejected as exc:
        record_rejection(ctx, exc.failure, exc.text, client_address)
        return Reply(rfc3161.reject(exc.failure, exc.text), False, not exc.decodable)
    with ctx.transaction() as session:
        ensure_tsa(ctx, session)
        authority = tsa_authority(session)
        assert authority is not None
        certificate = certs.load_der(authority_certificate(session, authority).der)
        now = ctx.clock.now()
        issued = rfc3161.grant(
            request,
            rfc3161.Authority(authority_signer(ctx, authority), certificate,
                              ctx.settings.tsa_policy_oid, ctx.settings.tsa_accuracy_seconds),
            now)
        details: dict[str, object] = {
            "serial": format(issued.serial, "x"),
            "hash_algorithm": request.digest_algorithm.value,
            "imprint": request.imprint.hex(),
            "gen_time": issued.gen_time.isoformat(),
            "policy": ctx.settings.tsa_policy_oid,
            "cert_req": request.cert_req,
        }
        if request.nonce is not None:
            details["nonce"] = _hex(request.nonce)
        if client_address:
            details["client"] = client_address
        ctx.record(session, Record(ANONYMOUS, Action.TIMESTAMP, Outcome.ALLOWED, SUBJECT,
                                   details=details), now)
    return Reply(issued.der, True)


def _hex(value: int) -> str:
    """An integer of any size as hex (JSON numbers lose precision past 2**53)."""
    return format(value, "x") if value >= 0 else "-" + format(-value, "x")


def record_rejection(ctx: Context, failure: rfc3161.FailureInfo, reason: str,
                     client_address: str | None) -> None:
    """Record a refused time-stamp request (its own transaction)."""
    details: dict[str, object] = {"failure": failure.value, "reason": reason}
    if client_address:
        details["client"] = client_address
    with ctx.transaction() as session:
        ctx.record(session, Record(ANONYMOUS, Action.TIMESTAMP, Outcome.REFUSED, SUBJECT,
                                   details=details))


def tsa_certificate(ctx: Context, caller: Caller) -> CertificateChainView:
    """The TSA certificate, then the root's: what a verifier needs besides the token."""

    def run(session: Session, _actor: Actor) -> CertificateChainView:
        authority = tsa_authority(session)
        if authority is None:
            raise NotFound("signgate has no time-stamp authority yet (run 'signgate serve')")
        row = authority_certificate(session, authority)
        issuer = session.get(Authority, row.issuer_id) if row.issuer_id is not None else None
        rest = certs.to_pem(authority_certificate(session, issuer).der) if issuer else ""
        return chain_view(row, rest)

    return ctx.read(caller, Target(Action.READ, "time-stamp authority"), run)
