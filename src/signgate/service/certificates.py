"""Certificate use cases: the root's and a key version's certificate with their chain, the
current CRLs (re-issued when stale), and bring your own CA: a PKCS#10 request for a key
version, signed through the key store, and the import of the chain another CA issued for
it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm, RsaPadding
from signgate.errors import Conflict, InvalidInput, NotFound
from signgate.keystore.base import KeyRef
from signgate.pki import certs, requests
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.authorities import (
    CRL_REFRESH,
    StoreSigner,
    authority_certificate,
    authority_named,
    chain_view,
    latest_crl,
    publish_crl,
    root,
)
from signgate.service.records.keys import get_key, get_version, split_ref, visible_key
from signgate.service.views import CertificateChainView
from signgate.store.models import Authority, Certificate

MAX_CHAIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class CsrView:
    key: str
    version: int
    subject: str
    pem: str


def csr(ctx: Context, caller: Caller, ref: str, version: int | None = None) -> CsrView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> CsrView:
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        v = get_version(session, key, version)
        algorithm = KeyAlgorithm(key.algorithm)
        subject = certs.name(ctx.settings.organization, f"{project}/{name} v{v.version}",
                             project)
        # PKCS#1 v1.5 for RSA: what every CA accepts on a request, whatever the key's
        # padding for artifact signatures.
        signer = StoreSigner(ctx.keystores, KeyRef(v.uri, algorithm, RsaPadding.PKCS1V15))
        der = requests.build_csr(signer, subject, v.public_key_pem)
        ctx.record(session, Record(actor.name, Action.CERT_REQUEST, Outcome.ALLOWED, ref,
                                   project, ref, {"key_version": v.version,
                                                  "subject": subject.human_friendly}))
        return CsrView(ref, v.version, subject.human_friendly, requests.csr_pem(der))

    return ctx.write(caller, Target(Action.CERT_REQUEST, ref, project, ref), run)


def import_chain(ctx: Context, caller: Caller, ref: str, chain_pem: str,
                 version: int | None = None) -> CertificateChainView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> CertificateChainView:
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


def root_certificate(ctx: Context, caller: Caller) -> CertificateChainView:
    def run(session: Session, _actor: Actor) -> CertificateChainView:
        authority = root(session)
        if authority is None:
            raise NotFound("signgate has no root CA yet (run 'signgate serve' once)")
        return chain_view(authority_certificate(session, authority))

    return ctx.read(caller, Target(Action.READ, "root CA"), run)


def version_certificate(ctx: Context, caller: Caller, ref: str,
                        version: int | None = None) -> CertificateChainView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> CertificateChainView:
        key = visible_key(session, actor, project, name)
        v = get_version(session, key, version)
        row = session.execute(
            select(Certificate).where(Certificate.key_version_id == v.id)
            .order_by(Certificate.id.desc())
        ).scalars().first()
        if row is None:
            raise NotFound(f"{ref} version {v.version} has no certificate")
        if row.issuer_id is None:  # imported from another CA, with its chain
            rest = row.chain_pem or ""
        else:
            issuer = session.get(Authority, row.issuer_id)
            assert issuer is not None
            rest = certs.to_pem(authority_certificate(session, issuer).der)
        return chain_view(row, rest)

    return ctx.read(caller, Target(Action.READ, ref, project, ref), run)


def current_crl(ctx: Context, project: str | None) -> bytes:
    """The newest CRL of the root (``project`` None) or of a project's CA, re-issued first
    when it is missing or close to its nextUpdate. Public: verifiers fetch CRLs without
    credentials."""
    refresh_before = ctx.clock.now() + CRL_REFRESH
    with ctx.db.read() as session:
        authority = authority_named(session, project)
        if authority is None:
            raise NotFound(f"no CRL for {project or 'root'}")
        latest = latest_crl(session, authority)
        if latest is not None and latest.next_update > refresh_before:
            return latest.der
    with ctx.transaction() as session:
        authority = authority_named(session, project)
        assert authority is not None
        latest = latest_crl(session, authority)  # another node may have just done it
        if latest is None or latest.next_update <= refresh_before:
            latest = publish_crl(ctx, session, authority)
        return latest.der
