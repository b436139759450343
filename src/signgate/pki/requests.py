"""PKCS#10 certification requests (RFC 2986) signed through a DigestSigner, and checks for
certificate chains issued by someone else's CA ("bring your own CA")."""

from __future__ import annotations

import hashlib
import itertools

from asn1crypto import csr, pem, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.pki.certs import public_key_info, signature_algorithm
from signgate.pki.cms import DigestSigner


def build_csr(signer: DigestSigner, subject: x509.Name, public_key_pem: str) -> bytes:
    """A DER CertificationRequest for ``public_key_pem``, signed by its own key (the
    proof of possession, RFC 2986 §3)."""
    info = csr.CertificationRequestInfo({
        "version": "v1",
        "subject": subject,
        "subject_pk_info": public_key_info(public_key_pem),
        "attributes": [],
    })
    if signer.algorithm is KeyAlgorithm.ED25519:
        # RFC 8410 §6: Ed25519 signs the message itself. The key store's Ed25519 primitive
        # signs the bytes it is given, so the whole CertificationRequestInfo goes in.
        sig_name = "ed25519"
        signature = signer.sign_digest(DigestAlgorithm.SHA512, info.dump())
    else:
        sig_name, digest_alg = signature_algorithm(signer.algorithm)
        digest = hashlib.new(digest_alg.value, info.dump()).digest()
        signature = signer.sign_digest(digest_alg, digest)
    request = csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": {"algorithm": sig_name},
        "signature": signature,
    })
    return bytes(request.dump())


def csr_pem(der: bytes) -> str:
    return str(pem.armor("CERTIFICATE REQUEST", der).decode("ascii"))


def parse_chain(text: bytes) -> list[cx509.Certificate]:
    """Certificates from PEM (leaf first); a clear error for anything else."""
    try:
        chain = cx509.load_pem_x509_certificates(text)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput("not a PEM certificate chain", code=ErrorCode.BAD_CERTIFICATE) from None
    if not chain:
        raise InvalidInput("no certificate in the chain", code=ErrorCode.BAD_CERTIFICATE)
    if len(chain) > 10:
        raise InvalidInput("a chain of more than 10 certificates", code=ErrorCode.BAD_CERTIFICATE)
    return chain


def check_imported_chain(chain: list[cx509.Certificate], public_key_der: bytes) -> None:
    """The leaf must hold ``public_key_der``, allow code signing, and each certificate must
    be signed by the next one in the chain."""
    from cryptography.hazmat.primitives import serialization

    leaf = chain[0]
    leaf_key = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf_key != public_key_der:
        raise InvalidInput("the certificate is for another key than this key version",
                           code=ErrorCode.CERTIFICATE_KEY_MISMATCH)
    try:
        eku = leaf.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    except cx509.ExtensionNotFound:
        raise InvalidInput("the certificate has no extended key usage; code signing needs "
                           "codeSigning", code=ErrorCode.CERTIFICATE_NOT_CODE_SIGNING) from None
    if cx509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise InvalidInput("the certificate does not allow code signing (no codeSigning "
                           "extended key usage)", code=ErrorCode.CERTIFICATE_NOT_CODE_SIGNING)
    try:
        ku = leaf.extensions.get_extension_for_class(cx509.KeyUsage).value
        if not ku.digital_signature:
            raise InvalidInput("the certificate's key usage lacks digitalSignature",
                               code=ErrorCode.CERTIFICATE_NOT_CODE_SIGNING)
    except cx509.ExtensionNotFound:
        pass
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise InvalidInput(
                f"'{child.subject.rfc4514_string()}' is not issued by the next certificate "
                f"in the chain ('{parent.subject.rfc4514_string()}')",
                code=ErrorCode.BROKEN_CHAIN) from None
