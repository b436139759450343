"""Bring your own CA: a PKCS#10 request for a key version, signed through the key store,
and the import of the chain another CA issued for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm, RsaPadding
from signgate.errors import Conflict, InvalidInput
from signgate.pki import certs, requests
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, require
from signgate.service.keys import get_key, get_version, split_ref
from signgate.service.pki import StoreSigner, chain_view
from signgate.service.views import CertificateChainView
from signgate.store.models import Certificate, Identity

MAX_CHAIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class CsrView:
    key: str
    version: int
    subject: str
    pem: str


def csr(ctx: Context, caller: Caller, ref: str, version: int | None = None) -> CsrView:
    project, name = split_ref(ref)

    def run(session: Session, _identity: Identity, actor: Actor) -> CsrView:
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        v = get_version(session, key, version)
        algorithm = KeyAlgorithm(key.algorithm)
        subject = certs.name(ctx.settings.organization, f"{project}/{name} v{v.version}",
                             project)
        # PKCS#1 v1.5 for RSA: what every CA accepts on a request, whatever the key's
        # padding for artifact signatures.
        signer = StoreSigner(ctx, session, v.uri, algorithm, RsaPadding.PKCS1V15)
        der = requests.build_csr(signer, subject, v.public_key_pem)
        ctx.record(session, Record(actor.name, Action.CERT_REQUEST, Outcome.ALLOWED, ref,
                                   project, ref, {"key_version": v.version,
                                                  "subject": subject.human_friendly}))
        return CsrView(ref, v.version, subject.human_friendly, requests.csr_pem(der))

    return ctx.write(caller, Target(Action.CERT_REQUEST, ref, project, ref), run)


def import_chain(ctx: Context, caller: Caller, ref: str, chain_pem: str,
                 version: int | None = None) -> CertificateChainView:
    project, name = split_ref(ref)

    def run(session: Session, _identity: Identity, actor: Actor) -> CertificateChainView:
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        if len(chain_pem.encode()) > MAX_CHAIN_BYTES:
            raise InvalidInput(f"a certificate chain is limited to {MAX_CHAIN_BYTES} bytes")
        key = get_key(session, project, name)
        v = get_version(session, key, version)
        chain = requests.parse_chain(chain_pem.encode())
        spki = serialization.load_pem_public_key(v.public_key_pem.encode()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        requests.check_imported_chain(chain, spki)
        leaf = chain[0]
        der = leaf.public_bytes(serialization.Encoding.DER)
        fingerprint = certs.fingerprint(der)
        if session.execute(select(Certificate.id).where(Certificate.sha256 == fingerprint)
                           ).first():
            raise Conflict(f"this certificate is already attached to {ref}")
        now = ctx.clock.now()
        rest = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain[1:])
        row = Certificate(
            serial=format(leaf.serial_number, "x")[:40], profile="imported", issuer_id=None,
            authority_id=None, key_version_id=v.id, subject=leaf.subject.rfc4514_string(),
            not_before=leaf.not_valid_before_utc.astimezone(UTC),
            not_after=leaf.not_valid_after_utc.astimezone(UTC), der=der, sha256=fingerprint,
            created_at=now, chain_pem=rest or None,
        )
        session.add(row)
        session.flush()
        ctx.record(session, Record(actor.name, Action.CERT_IMPORT, Outcome.ALLOWED, ref,
                                   project, ref,
                                   {"key_version": v.version, "serial": row.serial,
                                    "sha256": fingerprint,
                                    "issuer": leaf.issuer.rfc4514_string(),
                                    "not_after": row.not_after.isoformat()}), now)
        return chain_view(row, rest)

    return ctx.write(caller, Target(Action.CERT_IMPORT, ref, project, ref), run)

