"""X.509 certificates built as TBS structures and signed through the key store primitive.

No private key object is ever needed here: a :class:`signgate.pki.cms.DigestSigner` is told
the digest of the DER ``TBSCertificate`` and returns the signature value (RFC 5280
§4.1.1.3); the validity times come from the one time encoder, :func:`cms.x509_time`. The profiles
follow RFC 5280: a self-signed root, one issuing CA per project (``pathLenConstraint 0``,
extended key usage limited to code signing), and code-signing leaves
(``digitalSignature`` critical, ``codeSigning``).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import keys, pem, x509
from cryptography.hazmat.primitives import serialization

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput
from signgate.pki.cms import DigestSigner, whole_second
from signgate.pki.cms import x509_time as x509_time  # re-exported: callers know it here


class Profile(enum.StrEnum):
    ROOT = "root"
    ISSUING = "issuing"
    CODE_SIGNING = "code-signing"
    TIMESTAMPING = "timestamping"


def signature_algorithm(algorithm: KeyAlgorithm) -> tuple[str, DigestAlgorithm]:
    """The X.509 signature algorithm a CA key of ``algorithm`` signs with, and its digest.

    CA keys sign through the digest primitive, so Ed25519 (which signs messages, not
    digests, in X.509: RFC 8410) cannot be a CA key; RSA CA keys use PKCS#1 v1.5, which
    every verifier accepts in certificates and CRLs.
    """
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return "sha256_ecdsa", DigestAlgorithm.SHA256
    if algorithm is KeyAlgorithm.ECDSA_P384:
        return "sha384_ecdsa", DigestAlgorithm.SHA384
    if algorithm.is_rsa:
        return "sha256_rsa", DigestAlgorithm.SHA256
    raise InvalidInput(f"{algorithm.value} keys cannot sign certificates; use ECDSA or RSA")


def new_serial() -> int:
    """A positive serial of 127 random bits (RFC 5280 §4.1.2.2: at most 20 octets)."""
    return secrets.randbits(127) | 1


def name(organization: str, common_name: str, unit: str | None = None) -> x509.Name:
    parts = {"organization_name": organization}
    if unit:
        parts["organizational_unit_name"] = unit
    parts["common_name"] = common_name
    return x509.Name.build(parts)


def public_key_info(public_key_pem: str) -> keys.PublicKeyInfo:
    key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return keys.PublicKeyInfo.load(der)


def key_identifier(info: keys.PublicKeyInfo) -> bytes:
    """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits."""
    return hashlib.sha1(info["public_key"].contents[1:], usedforsecurity=False).digest()


@dataclass(frozen=True)
class CertificateSpec:
    profile: Profile
    subject: x509.Name
    public_key_pem: str
    not_before: datetime
    not_after: datetime
    serial: int = field(default_factory=new_serial)
    crl_url: str | None = None


@dataclass(frozen=True)
class Issuer:
    """Who signs: the issuing certificate (None for a self-signed root) and its key."""

    signer: DigestSigner
    certificate: x509.Certificate | None = None


def _extensions(spec: CertificateSpec, info: keys.PublicKeyInfo,
                issuer_key_id: bytes) -> list[dict[str, object]]:
    ext: list[dict[str, object]] = []
    if spec.profile in (Profile.ROOT, Profile.ISSUING):
        constraints: dict[str, object] = {"ca": True}
        if spec.profile is Profile.ISSUING:
            constraints["path_len_constraint"] = 0
        ext.append({"extn_id": "basic_constraints", "critical": True,
                    "extn_value": constraints})
        ext.append({"extn_id": "key_usage", "critical": True,
                    "extn_value": {"key_cert_sign", "crl_sign"}})
    else:
        ext.append({"extn_id": "basic_constraints", "critical": True,
                    "extn_value": {"ca": False}})
        ext.append({"extn_id": "key_usage", "critical": True,
                    "extn_value": {"digital_signature"}})
    if spec.profile is Profile.ISSUING or spec.profile is Profile.CODE_SIGNING:
        ext.append({"extn_id": "extended_key_usage", "critical": False,
                    "extn_value": ["code_signing"]})
    elif spec.profile is Profile.TIMESTAMPING:
        # RFC 3161 §2.3: the TSA certificate has exactly this EKU, marked critical.
        ext.append({"extn_id": "extended_key_usage", "critical": True,
                    "extn_value": ["time_stamping"]})
    ext.append({"extn_id": "key_identifier", "critical": False,
                "extn_value": key_identifier(info)})
    if spec.profile is not Profile.ROOT:
        ext.append({"extn_id": "authority_key_identifier", "critical": False,
                    "extn_value": {"key_identifier": issuer_key_id}})
    if spec.crl_url and spec.profile is not Profile.ROOT:
        ext.append({"extn_id": "crl_distribution_points", "critical": False,
                    "extn_value": [{"distribution_point": {"full_name": [
                        x509.GeneralName(name="uniform_resource_identifier",
                                         value=spec.crl_url)]}}]})
    return ext


def issue(spec: CertificateSpec, issuer: Issuer) -> x509.Certificate:
    """Build the TBSCertificate for ``spec`` and have ``issuer`` sign it."""
    if whole_second(spec.not_after) <= whole_second(spec.not_before):
        raise InvalidInput("a certificate must end after it begins")
    info = public_key_info(spec.public_key_pem)
    if issuer.certificate is None:
        if spec.profile is not Profile.ROOT:
            raise InvalidInput("only a root certificate is self-signed")
        issuer_name, issuer_key_id = spec.subject, key_identifier(info)
    else:
        issuer_name = issuer.certificate.subject
        issuer_key_id = issuer.certificate.key_identifier or b""
        not_after = issuer.certificate["tbs_certificate"]["validity"]["not_after"].native
        if spec.not_after > not_after:
            raise InvalidInput("a certificate cannot outlive the CA certificate that issues it")
    sig_name, digest_alg = signature_algorithm(issuer.signer.algorithm)
    if issuer.signer.algorithm.is_rsa and issuer.signer.rsa_padding is not RsaPadding.PKCS1V15:
        # The certificate says sha256WithRSAEncryption: a PSS signature would not verify.
        raise InvalidInput("RSA CA keys sign certificates with PKCS#1 v1.5 padding")
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": spec.serial,
        "signature": {"algorithm": sig_name},
        "issuer": issuer_name,
        "validity": {"not_before": x509_time(spec.not_before),
                     "not_after": x509_time(spec.not_after)},
        "subject": spec.subject,
        "subject_public_key_info": info,
        "extensions": _extensions(spec, info, issuer_key_id),
    })
    data = tbs.dump()
    digest = hashlib.new(digest_alg.value, data).digest()
    signature = issuer.signer.sign_digest(digest_alg, digest)
    return x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": {"algorithm": sig_name},
        "signature_value": signature,
    })


def to_pem(cert: x509.Certificate | bytes) -> str:
    der = cert if isinstance(cert, bytes) else cert.dump()
    return str(pem.armor("CERTIFICATE", der).decode("ascii"))


def load_der(der: bytes) -> x509.Certificate:
    return x509.Certificate.load(der)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()
