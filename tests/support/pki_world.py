"""A small test PKI made on the fly, for unit tests of the trust decision (``pki/trust``).

Root CA → issuing CA → code-signing leaf, and a time-stamping authority under the root;
CRLs of both CAs (optionally revoking a certificate, with an RFC 5280 §5.3.2 invalidity
date), and RFC 3161 TimeStampTokens (a CMS SignedData over a TSTInfo, RFC 3161 §2.4.2)
over any signature value at any time. Everything is generated in-process with
cryptography (certificates, CRLs) and asn1crypto (the token): no server, no subprocess,
no checked-in blob. Keys are ECDSA P-256 (fast to make).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# When the test world begins: certificates are valid from here.
T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEAF_DAYS = 30
CA_DAYS = 3650


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signgate tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Party:
    """A certificate and its private key."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def issue(cn: str, issuer: Party | None, *, ca: bool = False,
          eku: x509.ObjectIdentifier | None = None, not_before: datetime = T0,
          days: int = LEAF_DAYS) -> Party:
    """A certificate for a fresh key: a CA (``ca``), or an end entity with ``eku``
    (critical for time-stamping, as RFC 3161 §2.3 asks). ``issuer`` None: self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(cn)
    signer_key = issuer.key if issuer else key
    public = key.public_key()
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(public)
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before)
         .not_valid_after(not_before + timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
         .add_extension(x509.KeyUsage(
             digital_signature=not ca, content_commitment=False, key_encipherment=False,
             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
             encipher_only=False, decipher_only=False), critical=True))
    if issuer is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]),
                            critical=eku == ExtendedKeyUsageOID.TIME_STAMPING)
    return Party(key, b.sign(signer_key, hashes.SHA256()))


def make_crl(issuer: Party, revoked: dict[int, datetime | None] | None = None, *,
             revoked_at: datetime = T0, this_update: datetime = T0,
             days: int = 3650) -> x509.CertificateRevocationList:
    """A CRL of ``issuer`` revoking the given serials (value: the invalidity date, or None
    for none: then the revocation date ``revoked_at`` counts)."""
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(issuer.cert.subject)
         .last_update(this_update)
         .next_update(this_update + timedelta(days=days))
         .add_extension(x509.CRLNumber(1), critical=False))
    for serial, invalid_from in (revoked or {}).items():
        entry = (x509.RevokedCertificateBuilder().serial_number(serial)
                 .revocation_date(revoked_at)
                 .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise),
                                critical=False))
        if invalid_from is not None:
            entry = entry.add_extension(x509.InvalidityDate(invalid_from.replace(tzinfo=None)),
                                        critical=False)
        b = b.add_revoked_certificate(entry.build())
    return b.sign(issuer.key, hashes.SHA256())


def timestamp_token(tsa: Party, signature_value: bytes, gen_time: datetime,
                    chain: tuple[Party, ...] = ()) -> bytes:
    """A DER TimeStampToken by ``tsa`` over ``signature_value`` at ``gen_time``."""
    info = tsp.TSTInfo({
        "version": "v1",
        "policy": "1.3.6.1.4.1.99999.1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(signature_value).digest()},
        "serial_number": 1,
        "gen_time": core.GeneralizedTime(gen_time),
    })
    content = info.dump()
    tsa_cert = ax509.Certificate.load(tsa.der)
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number}}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
        ],
        "signature_algorithm": {"algorithm": "sha256_ecdsa"},
        "signature": b"",
    })
    # RFC 5652 §5.4: the signature covers the DER SET OF the signed attributes.
    signed_attrs = b"\x31" + signer["signed_attrs"].dump()[1:]
    signer["signature"] = tsa.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "tst_info",
                               "content": core.ParsableOctetString(content)},
        "certificates": [tsa_cert, *(ax509.Certificate.load(p.der) for p in chain)],
        "signer_infos": [signer],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


@dataclass
class World:
    """The whole test PKI. ``crls()`` are current CRLs of both CAs (nothing revoked)."""

    root: Party
    ca: Party
    leaf: Party
    tsa: Party
    extra: dict[str, Party] = field(default_factory=dict)

    @property
    def anchors(self) -> list[bytes]:
        return [self.root.der]

    def crls(self, revoked_by_ca: dict[int, datetime | None] | None = None,
             revoked_by_root: dict[int, datetime | None] | None = None,
             revoked_at: datetime = T0) -> list[x509.CertificateRevocationList]:
        return [make_crl(self.root, revoked_by_root, revoked_at=revoked_at),
                make_crl(self.ca, revoked_by_ca, revoked_at=revoked_at)]


def world() -> World:
    root = issue("Test Root CA", None, ca=True, days=CA_DAYS)
    ca = issue("Test Issuing CA", root, ca=True, days=CA_DAYS)
    leaf = issue("acme/release v1", ca, eku=ExtendedKeyUsageOID.CODE_SIGNING)
    tsa = issue("Test TSA", root, eku=ExtendedKeyUsageOID.TIME_STAMPING, days=CA_DAYS)
    return World(root, ca, leaf, tsa)
