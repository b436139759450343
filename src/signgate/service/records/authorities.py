"""Running signgate's own CA hierarchy inside a session: the root, one issuing CA per
project, the time-stamp authority, a certificate for every key version, CRLs. CA keys live
in the key store and sign only through its primitive. Session helpers only (the lower
layer of service/, see records/__init__.py): the use cases that read certificates are in
service/certificates.py, the start-up repairs in service/bootstrap.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import NotFound
from signgate.keystore.base import KeyRef
from signgate.keystore.registry import KeyStoreRegistry
from signgate.pki import certs, crl
from signgate.service.context import Context
from signgate.service.views import CertificateChainView
from signgate.store.models import (
    Authority,
    Certificate,
    Key,
    KeyVersion,
    Project,
    RevocationList,
)

CA_ALGORITHM = KeyAlgorithm.ECDSA_P384
# The time-stamp authority signs a token per timestamped signature, in the signing batch:
# P-256 (128-bit security, what public TSAs use) signs several times faster than P-384,
# and every RFC 3161 verifier reads it. CAs sign rarely and live longer: P-384.
TSA_ALGORITHM = KeyAlgorithm.ECDSA_P256
# CRLs are valid a week and re-issued when less than a day of that is left (or at once
# on a revocation), so a verifier that caches one is never more than a week behind.
CRL_LIFETIME = timedelta(days=7)
CRL_REFRESH = timedelta(days=1)
ROOT_YEARS = 20
ISSUING_YEARS = 10
ROOT = "root"
ISSUING = "issuing"
TSA = "tsa"
TSA_YEARS = 10


@dataclass(frozen=True)
class StoreSigner:
    """A :class:`signgate.pki.cms.DigestSigner` over a key in signgate's key stores."""

    keystores: KeyStoreRegistry
    ref: KeyRef

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self.ref.algorithm

    @property
    def rsa_padding(self) -> RsaPadding:
        return self.ref.rsa_padding

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        return self.keystores.sign(self.ref, digest_algorithm, digest)


def _years(start: datetime, years: int) -> datetime:
    return start + timedelta(days=365 * years + years // 4)


def _store(session: Session, cert: x509.Certificate, profile: certs.Profile, now: datetime,
           issuer: Authority | None, authority: Authority | None = None,
           version: KeyVersion | None = None) -> Certificate:
    der = cert.dump()
    validity = cert["tbs_certificate"]["validity"]
    row = Certificate(
        serial=format(cert.serial_number, "x"), profile=profile.value,
        issuer_id=issuer.id if issuer else None,
        authority_id=authority.id if authority else None,
        key_version_id=version.id if version else None,
        subject=cert.subject.human_friendly, not_before=validity["not_before"].native,
        not_after=validity["not_after"].native, der=der, sha256=certs.fingerprint(der),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _new_authority(ctx: Context, session: Session, kind: str, project: Project | None,
                   now: datetime) -> Authority:
    algorithm = TSA_ALGORITHM if kind == TSA else CA_ALGORITHM
    generated = ctx.keystores.generate(algorithm)  # joins this session's transaction
    authority = Authority(kind=kind, project_id=project.id if project else None,
                          algorithm=algorithm.value, key_uri=generated.uri,
                          public_key_pem=generated.public_key_pem, created_at=now)
    session.add(authority)
    session.flush()
    return authority


def authority_signer(ctx: Context, authority: Authority) -> StoreSigner:
    return StoreSigner(ctx.keystores, KeyRef(authority.key_uri,
                                             KeyAlgorithm(authority.algorithm),
                                             RsaPadding.PKCS1V15))


def authority_certificate(session: Session, authority: Authority) -> Certificate:
    row = session.execute(
        select(Certificate).where(Certificate.authority_id == authority.id)
        .order_by(Certificate.id.desc())
    ).scalars().first()
    if row is None:
        raise NotFound("the CA has no certificate")
    return row


def root(session: Session) -> Authority | None:
    return session.execute(
        select(Authority).where(Authority.kind == ROOT)
    ).scalar_one_or_none()


def ensure_root(ctx: Context, session: Session, actor: str = "signgate") -> Authority:
    """The root CA, created (key in the key store, self-signed certificate) if missing."""
    existing = root(session)
    if existing is not None:
        return existing
    now = ctx.clock.now()
    authority = _new_authority(ctx, session, ROOT, None, now)
    spec = certs.CertificateSpec(
        certs.Profile.ROOT, certs.name(ctx.settings.organization, "signgate root CA"),
        authority.public_key_pem, now - timedelta(minutes=5), _years(now, ROOT_YEARS))
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, authority)))
    row = _store(session, cert, certs.Profile.ROOT, now, authority, authority)
    ctx.record(session, Record(actor, Action.CA_CREATE, Outcome.ALLOWED, "root CA",
                               details={"serial": row.serial, "sha256": row.sha256,
                                        "key_uri": authority.key_uri}), now)
    return authority


def ensure_issuing_ca(ctx: Context, session: Session, project: Project,
                      actor: str = "signgate") -> Authority:
    """The project's issuing CA (pathLen 0, codeSigning only), created if missing."""
    existing = session.execute(
        select(Authority).where(Authority.project_id == project.id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    return create_under_root(
        ctx, session, ISSUING, certs.Profile.ISSUING,
        certs.name(ctx.settings.organization, f"signgate {project.name} issuing CA",
                   project.name),
        ISSUING_YEARS, Action.CA_CREATE, f"{project.name} issuing CA", actor, project)


def create_under_root(ctx: Context, session: Session, kind: str, profile: certs.Profile,
                      subject: x509.Name, years: int, action: Action, label: str,
                      actor: str, project: Project | None = None) -> Authority:
    """A new authority (an issuing CA, the TSA): a key in the key store and a certificate
    from the root, at most ``years`` long and never past the root; recorded as ``action``."""
    parent = ensure_root(ctx, session, actor)
    parent_cert = certs.load_der(authority_certificate(session, parent).der)
    now = ctx.clock.now()
    authority = _new_authority(ctx, session, kind, project, now)
    parent_end = parent_cert["tbs_certificate"]["validity"]["not_after"].native
    spec = certs.CertificateSpec(
        profile, subject, authority.public_key_pem, now - timedelta(minutes=5),
        min(_years(now, years), parent_end), crl_url=f"{ctx.settings.public_url}/ca/root.crl")
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, parent), parent_cert))
    row = _store(session, cert, profile, now, parent, authority)
    ctx.record(session, Record(actor, action, Outcome.ALLOWED, label,
                               project=project.name if project else None,
                               details={"serial": row.serial, "sha256": row.sha256,
                                        "key_uri": authority.key_uri}), now)
    return authority


def issue_version_certificate(ctx: Context, session: Session, key: Key, version: KeyVersion,
                              now: datetime, actor: str = "signgate",
                              lifetime: timedelta | None = None) -> Certificate:
    """The code-signing certificate of one key version, issued by its project's CA: valid
    for the key's ``cert_validity_days`` (from 5 minutes ago, for clock skew), or exactly
    ``lifetime`` from now (one-time keys)."""
    project = key.project
    ca = ensure_issuing_ca(ctx, session, project, actor)
    ca_cert = certs.load_der(authority_certificate(session, ca).der)
    ca_end = ca_cert["tbs_certificate"]["validity"]["not_after"].native
    spec = certs.CertificateSpec(
        certs.Profile.CODE_SIGNING,
        certs.name(ctx.settings.organization, f"{project.name}/{key.name} v{version.version}",
                   project.name),
        version.public_key_pem, now if lifetime else now - timedelta(minutes=5),
        min(now + (lifetime or timedelta(days=key.cert_validity_days)), ca_end),
        crl_url=f"{ctx.settings.public_url}/crl/{project.name}.crl")
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, ca), ca_cert))
    return _store(session, cert, certs.Profile.CODE_SIGNING, now, ca, version=version)


def crl_url_of(der: bytes) -> str | None:
    """The first URL of a certificate's CRL distribution points (RFC 5280 §4.2.1.13)."""
    for point in certs.load_der(der).crl_distribution_points:
        url = point.url
        if url:
            return str(url)
    return None


def reissue_certificate(ctx: Context, session: Session, row: Certificate, issuer: Authority,
             public_key_pem: str, crl_url: str, now: datetime, actor: str,
             authority: Authority | None = None,
             version: KeyVersion | None = None) -> Certificate:
    """A new certificate like ``row`` (same key, subject and end of validity) from
    ``issuer`` with a new serial and ``crl_url``, recorded as a re-issue."""
    old = certs.load_der(row.der)
    issuer_cert = certs.load_der(authority_certificate(session, issuer).der)
    spec = certs.CertificateSpec(
        certs.Profile(row.profile), x509.Name.load(old.subject.dump()), public_key_pem,
        now - timedelta(minutes=5), row.not_after, crl_url=crl_url)
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, issuer), issuer_cert))
    new = _store(session, cert, certs.Profile(row.profile), now, issuer, authority, version)
    project = key_ref = None
    if version is not None:
        project = version.key.project.name
        key_ref = f"{project}/{version.key.name}"
    elif authority is not None and authority.project_id is not None:
        owner = session.get(Project, authority.project_id)
        project = owner.name if owner else None
    ctx.record(session, Record(actor, Action.CERT_REISSUE, Outcome.ALLOWED, row.subject,
                               project, key_ref,
                               {"serial": new.serial, "sha256": new.sha256,
                                "replaces": row.serial, "crl_url": crl_url,
                                "previous_crl_url": crl_url_of(row.der)}), now)
    return new


def chain_view(row: Certificate, issuers_pem: str = "") -> CertificateChainView:
    """A certificate as the API shows it: its own PEM, then with its issuers' appended."""
    pem = certs.to_pem(row.der)
    return CertificateChainView(subject=row.subject, serial=row.serial, sha256=row.sha256,
                                not_before=row.not_before, not_after=row.not_after,
                                pem=pem, chain_pem=pem + issuers_pem)


def version_chain(session: Session, version_id: int) -> tuple[bytes, list[bytes]]:
    """DER of a key version's newest certificate and of the CA certificates above it
    (signgate's issuing CA, or the chain imported with it)."""
    row = session.execute(
        select(Certificate).where(Certificate.key_version_id == version_id)
        .order_by(Certificate.id.desc())
    ).scalars().first()
    if row is None:
        raise NotFound("this key version has no certificate")
    if row.issuer_id is not None:
        issuer = session.get(Authority, row.issuer_id)
        assert issuer is not None
        return row.der, [authority_certificate(session, issuer).der]
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives.serialization import Encoding

    chain = cx509.load_pem_x509_certificates(row.chain_pem.encode()) if row.chain_pem else []
    return row.der, [c.public_bytes(Encoding.DER) for c in chain]


def publish_crl(ctx: Context, session: Session, authority: Authority,
                actor: str = "signgate") -> RevocationList:
    """Sign and store the next CRL of ``authority`` listing every certificate it revoked."""
    now = ctx.clock.now()
    last = session.execute(
        select(RevocationList.number).where(RevocationList.authority_id == authority.id)
        .order_by(RevocationList.number.desc())
    ).scalars().first()
    number = (last or 0) + 1
    revoked = session.execute(
        select(Certificate).where(Certificate.issuer_id == authority.id,
                                  Certificate.revoked_at.is_not(None))
    ).scalars().all()
    entries = [crl.Revoked(int(c.serial, 16), c.revoked_at or now,
                           c.revocation_reason or "unspecified", c.invalidity_date)
               for c in revoked]
    ca_cert = certs.load_der(authority_certificate(session, authority).der)
    built = crl.build(certs.Issuer(authority_signer(ctx, authority), ca_cert), entries,
                      number, now, now + CRL_LIFETIME)
    row = RevocationList(authority_id=authority.id, number=number, this_update=now,
                         next_update=now + CRL_LIFETIME, der=built.dump())
    session.add(row)
    session.flush()
    project = session.get(Project, authority.project_id) if authority.project_id else None
    ctx.record(session, Record(actor, Action.CRL_PUBLISH, Outcome.ALLOWED,
                               f"{project.name if project else 'root'} CRL {number}",
                               project=project.name if project else None,
                               details={"number": number, "revoked": len(entries),
                                        "next_update": row.next_update.isoformat()}), now)
    return row


def revoke_key_certificates(ctx: Context, session: Session, key: Key,
                            compromised_at: datetime, actor: str) -> list[str]:
    """Revoke the certificates of every version of ``key`` (reason keyCompromise,
    invalidityDate = the compromise time) and publish the project's new CRL."""
    now = ctx.clock.now()
    rows = session.execute(
        select(Certificate).join(KeyVersion, Certificate.key_version_id == KeyVersion.id)
        .where(KeyVersion.key_id == key.id, Certificate.revoked_at.is_(None))
    ).scalars().all()
    for row in rows:
        row.revoked_at = now
        row.revocation_reason = "key_compromise"
        row.invalidity_date = compromised_at
    session.flush()
    ref = f"{key.project.name}/{key.name}"
    serials = [r.serial for r in rows]
    ctx.record(session, Record(actor, Action.CERT_REVOKE, Outcome.ALLOWED, ref,
                               key.project.name, ref,
                               {"serials": serials, "reason": "key_compromise",
                                "invalidity_date": compromised_at.isoformat()}), now)
    publish_crl(ctx, session, ensure_issuing_ca(ctx, session, key.project, actor), actor)
    return serials


def authority_named(session: Session, project: str | None) -> Authority | None:
    if project is None:
        return root(session)
    return session.execute(
        select(Authority).join(Project, Authority.project_id == Project.id)
        .where(Project.name == project)
    ).scalar_one_or_none()


def latest_crl(session: Session, authority: Authority) -> RevocationList | None:
    return session.execute(
        select(RevocationList).where(RevocationList.authority_id == authority.id)
        .order_by(RevocationList.number.desc())
    ).scalars().first()


def tsa_authority(session: Session) -> Authority | None:
    return session.execute(
        select(Authority).where(Authority.kind == TSA).order_by(Authority.id.desc())
    ).scalars().first()


def ensure_tsa(ctx: Context, session: Session, actor: str = "signgate") -> int:
    """The TSA (key in the key store, a timeStamping certificate from the root), created if
    missing, in ``session``'s transaction. Returns how many certificates were made (0, 1)."""
    if tsa_authority(session) is not None:
        return 0
    create_under_root(ctx, session, TSA, certs.Profile.TIMESTAMPING,
                      certs.name(ctx.settings.organization, "signgate time-stamp authority"),
                      TSA_YEARS, Action.TSA_CREATE, "time-stamp authority", actor)
    return 1
