"""signgate's own CA hierarchy: a root, one issuing CA per project, a certificate for
every key version. CA keys live in the key store and sign only through its primitive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import NotFound
from signgate.keystore.base import KeyHandle
from signgate.pki import certs, crl
from signgate.policy.model import Actor, KeyState
from signgate.service.context import Caller, Context, Target
from signgate.service.views import CertificateChainView
from signgate.store.models import (
    Authority,
    Certificate,
    Key,
    KeyVersion,
    Project,
    RevocationList,
    VaultEntry,
)

CA_ALGORITHM = KeyAlgorithm.ECDSA_P384
# CRLs are valid a week and re-issued when less than a day of that is left (or at once
# on a revocation), so a verifier that caches one is never more than a week behind.
CRL_LIFETIME = timedelta(days=7)
CRL_REFRESH = timedelta(days=1)
ROOT_YEARS = 20
ISSUING_YEARS = 10
ROOT = "root"
ISSUING = "issuing"


@dataclass(frozen=True)
class StoreSigner:
    """A :class:`signgate.pki.cms.DigestSigner` over a key in signgate's key store."""

    ctx: Context
    session: Session
    uri: str
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        uri, session = self.uri, self.session

        def load() -> bytes:
            entry = session.get(VaultEntry, uri)
            return b"" if entry is None else entry.sealed

        handle = KeyHandle(uri, self.algorithm, self.rsa_padding, load)
        return self.ctx.keystores.sign(handle, digest_algorithm, digest)


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
    generated = ctx.keystores.default.generate(CA_ALGORITHM)
    if generated.sealed is not None:
        session.add(VaultEntry(uri=generated.uri, sealed=generated.sealed))
    authority = Authority(kind=kind, project_id=project.id if project else None,
                          algorithm=CA_ALGORITHM.value, key_uri=generated.uri,
                          public_key_pem=generated.public_key_pem, created_at=now)
    session.add(authority)
    session.flush()
    return authority


def authority_signer(ctx: Context, session: Session, authority: Authority) -> StoreSigner:
    return StoreSigner(ctx, session, authority.key_uri, KeyAlgorithm(authority.algorithm))


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
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, session, authority)))
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
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, session, parent), parent_cert))
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
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, session, ca), ca_cert))
    return _store(session, cert, certs.Profile.CODE_SIGNING, now, ca, version=version)


def ensure_all(ctx: Context) -> int:
    """Bring an installation up to the PKI: root, issuing CAs and version certificates that
    are missing (databases created before the PKI existed). Returns how many were made."""
    made = 0
    with ctx.transaction() as session:
        if root(session) is None:
            ensure_root(ctx, session)
            made += 1
        from signgate.service.tsa import ensure_tsa  # here: service.tsa imports this module
        made += ensure_tsa(ctx, session)
        for project in session.execute(select(Project)).scalars():
            has_ca = session.execute(
                select(Authority.id).where(Authority.project_id == project.id)).first()
            if not has_ca:
                ensure_issuing_ca(ctx, session, project)
                made += 1
        missing = session.execute(
            select(KeyVersion).outerjoin(Certificate,
                                         Certificate.key_version_id == KeyVersion.id)
            .where(Certificate.id.is_(None))
        ).scalars().all()
        for version in missing:
            issue_version_certificate(ctx, session, version.key, version, ctx.clock.now())
            made += 1
    return made


def crl_url_of(der: bytes) -> str | None:
    """The first URL of a certificate's CRL distribution points (RFC 5280 §4.2.1.13)."""
    for point in certs.load_der(der).crl_distribution_points:
        url = point.url
        if url:
            return str(url)
    return None


def reissue_for_public_url(ctx: Context, actor: str = "signgate") -> int:
    """Re-issue the certificates that name another ``public_url`` in their CRL URL: the
    TSA's and the issuing CAs' (from the root), then the current versions' of live keys
    (from their CA). Same key, subject and end of validity, a new serial and the new URL:
    signatures made with the old certificates still chain (same issuer name and key
    identifier) and new ones point verifiers at CRLs they can fetch. Each is recorded.
    Returns how many were re-issued."""
    base = ctx.settings.public_url
    made = 0
    with ctx.transaction() as session:
        now = ctx.clock.now()
        for authority in session.execute(
                select(Authority).where(Authority.kind != ROOT).order_by(Authority.id)).scalars():
            row = authority_certificate(session, authority)
            parent = session.get(Authority, row.issuer_id) if row.issuer_id else None
            if parent is not None and _stale(row, f"{base}/ca/root.crl", now):
                _reissue(ctx, session, row, parent, authority.public_key_pem,
                         f"{base}/ca/root.crl", now, actor, authority=authority)
                made += 1
        live = session.execute(
            select(KeyVersion).join(Key, Key.id == KeyVersion.key_id)
            .where(KeyVersion.retired_at.is_(None), Key.one_time.is_(False),
                   Key.state.in_([KeyState.ACTIVE.value, KeyState.DISABLED.value]))
            .order_by(KeyVersion.id)
        ).scalars().all()
        for version in live:
            newest = session.execute(
                select(Certificate).where(Certificate.key_version_id == version.id)
                .order_by(Certificate.id.desc())
            ).scalars().first()
            ca = session.get(Authority, newest.issuer_id) if newest and newest.issuer_id \
                else None  # an imported certificate (no issuer of ours) is left alone
            url = f"{base}/crl/{version.key.project.name}.crl"
            if newest is not None and ca is not None and _stale(newest, url, now):
                _reissue(ctx, session, newest, ca, version.public_key_pem, url, now, actor,
                         version=version)
                made += 1
    return made


def _stale(row: Certificate, crl_url: str, now: datetime) -> bool:
    """A valid, unrevoked certificate whose CRL URL is not ``crl_url``."""
    if row.revoked_at is not None or row.not_after <= now:
        return False
    named = crl_url_of(row.der)
    return named is not None and named != crl_url


def _reissue(ctx: Context, session: Session, row: Certificate, issuer: Authority,
             public_key_pem: str, crl_url: str, now: datetime, actor: str,
             authority: Authority | None = None,
             version: KeyVersion | None = None) -> Certificate:
    old = certs.load_der(row.der)
    issuer_cert = certs.load_der(authority_certificate(session, issuer).der)
    spec = certs.CertificateSpec(
        certs.Profile(row.profile), x509.Name.load(old.subject.dump()), public_key_pem,
        now - timedelta(minutes=5), row.not_after, crl_url=crl_url)
    cert = certs.issue(spec, certs.Issuer(authority_signer(ctx, session, issuer), issuer_cert))
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


def root_certificate(ctx: Context, caller: Caller) -> CertificateChainView:
    def run(session: Session, _actor: Actor) -> CertificateChainView:
        authority = root(session)
        if authority is None:
            raise NotFound("signgate has no root CA yet (run 'signgate serve' once)")
        return chain_view(authority_certificate(session, authority))

    return ctx.read(caller, Target(Action.READ, "root CA"), run)


def version_certificate(ctx: Context, caller: Caller, ref: str,
                        version: int | None = None) -> CertificateChainView:
    from signgate.service.keys import get_version, split_ref, visible_key

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
    built = crl.build(certs.Issuer(authority_signer(ctx, session, authority), ca_cert), entries,
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


def _authority_named(session: Session, project: str | None) -> Authority | None:
    if project is None:
        return root(session)
    return session.execute(
        select(Authority).join(Project, Authority.project_id == Project.id)
        .where(Project.name == project)
    ).scalar_one_or_none()


def current_crl(ctx: Context, project: str | None) -> bytes:
    """The newest CRL of the root (``project`` None) or of a project's CA, re-issued first
    when it is missing or close to its nextUpdate. Public: verifiers fetch CRLs without
    credentials."""
    refresh_before = ctx.clock.now() + CRL_REFRESH
    with ctx.db.read() as session:
        authority = _authority_named(session, project)
        if authority is None:
            raise NotFound(f"no CRL for {project or 'root'}")
        latest = _latest_crl(session, authority)
        if latest is not None and latest.next_update > refresh_before:
            return latest.der
    with ctx.transaction() as session:
        authority = _authority_named(session, project)
        assert authority is not None
        latest = _latest_crl(session, authority)  # another node may have just done it
        if latest is None or latest.next_update <= refresh_before:
            latest = publish_crl(ctx, session, authority)
        return latest.der


def _latest_crl(session: Session, authority: Authority) -> RevocationList | None:
    return session.execute(
        select(RevocationList).where(RevocationList.authority_id == authority.id)
        .order_by(RevocationList.number.desc())
    ).scalars().first()
