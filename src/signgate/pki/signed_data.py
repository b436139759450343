"""Checking one CMS SignerInfo (RFC 5652 §5.4, §5.6): the verifier's half of ``formats/cms.py``.

Shared by every CMS-based format (cms, Authenticode, JAR) and by RFC 3161 token checks.
Only the cryptographic binding is checked here; whether the signer's certificate is
trusted is ``pki/validate.py``'s question.

Signatures are untrusted input: every parser error (asn1crypto's, cryptography's) becomes
a one-line VerificationFailed here, with the parser's exception as its cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from signgate.errors import ErrorCode, VerificationFailed

_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


_MAX_REASON = 200  # a parser's complaint, cut short (lengths of garbage run to 300 digits)


def parser_message(exc: BaseException) -> str:
    """One line from a parser's exception. asn1crypto appends its parse stack, one
    ``while parsing asn1crypto.x509.Certificate`` line per level: the innermost structure
    is named, the rest dropped (``signgate: …`` errors are one line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0]
    if len(first) > _MAX_REASON:
        first = first[:_MAX_REASON] + "..."
    stack = [line.removeprefix("while parsing ") for line in lines[1:]
             if line.startswith("while parsing ")]
    rest = [line for line in lines[1:] if not line.startswith("while parsing ")]
    text = "; ".join([first, *rest])
    return f"{text} (in {stack[0].rsplit('.', 1)[-1]})" if stack else text


def malformed(what: str, exc: BaseException) -> VerificationFailed:
    """``malformed <what>: <the parser's complaint, one line>``; raise it ``from exc``."""
    return VerificationFailed(f"malformed {what}: {parser_message(exc)}",
                              code=ErrorCode.MALFORMED_SIGNATURE)


def digest_name(algorithm: cms.DigestAlgorithm) -> str:
    """sha256 | sha384 | sha512 (what signgate and its peers use; nothing weaker)."""
    name = str(algorithm["algorithm"].native)
    if name not in _HASHES:
        raise VerificationFailed(f"digest algorithm {name} is not accepted")
    return name


def load_signed_data(der: bytes) -> cms.SignedData:
    """A DER ContentInfo holding SignedData, or VerificationFailed.

    What the checks here read is parsed now, so that malformed input fails here: version,
    algorithms, certificates, and each signer's identifier, algorithms, signature and
    attribute types. Not the encapsulated content nor attribute values, which the format
    interprets itself (asn1crypto cannot parse Microsoft's Authenticode structures
    generically)."""
    try:
        # strict: bytes after the SignedData are covered by nothing; refuse them.
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise VerificationFailed("not a CMS SignedData")
        signed = info["content"]
        for part in ("version", "digest_algorithms", "certificates"):
            signed[part].native  # noqa: B018
        for signer in signed["signer_infos"]:
            for part in ("sid", "digest_algorithm", "signature_algorithm", "signature"):
                signer[part].native  # noqa: B018
            for attribute in [*(signer["signed_attrs"] or []),
                              *(signer["unsigned_attrs"] or [])]:
                attribute["type"].native  # noqa: B018
    except (ValueError, TypeError, KeyError) as exc:
        raise malformed("CMS signature", exc) from exc
    if not isinstance(signed, cms.SignedData):
        raise VerificationFailed("not a CMS SignedData")
    return signed


def certificates_of(signed: cms.SignedData) -> list[bytes]:
    """DER of every X.509 certificate carried in ``certificates``."""
    out = []
    for choice in signed["certificates"] or []:
        if choice.name == "certificate":
            out.append(bytes(choice.chosen.dump()))
    return out


def only_signer(signed: cms.SignedData) -> cms.SignerInfo:
    infos = signed["signer_infos"]
    if len(infos) != 1:
        raise VerificationFailed(f"expected one signer, found {len(infos)}")
    info: cms.SignerInfo = infos[0]
    return info


def find_signer(info: cms.SignerInfo, candidates: Iterable[bytes]) -> bytes:
    """The certificate (DER) named by the SignerInfo's sid."""
    sid = info["sid"]
    for der in candidates:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise malformed("certificate in the signature", exc) from exc
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (cert.serial_number == wanted["serial_number"].native
                    and cert.issuer.public_bytes() == wanted["issuer"].dump()):
                return der
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.chosen.native:
                return der
    raise VerificationFailed("the signer's certificate is not in the signature")


def signed_attribute(info: cms.SignerInfo, name: str) -> object:
    for attribute in info["signed_attrs"] or []:
        if attribute["type"].native == name:
            try:
                values = attribute["values"]
                if len(values) != 1:
                    raise VerificationFailed(f"signed attribute {name} must have one value")
                return values[0].native
            except (ValueError, TypeError, KeyError) as exc:  # parsed only now
                raise malformed(f"signed attribute {name}", exc) from exc
    return None


def verify_signer_info(info: cms.SignerInfo, signer_der: bytes, content_digest: bytes,
                       content_type: str | None = None) -> str:
    """Check that ``info`` signs content whose digest (under the SignerInfo's digest
    algorithm) is ``content_digest``; returns that algorithm's name.

    With signed attributes (always, for signgate and its peers), the message-digest
    attribute must equal ``content_digest`` and the signature covers the DER SET OF the
    attributes (RFC 5652 §5.4: the [0] IMPLICIT tag is replaced by SET's).
    """
    algorithm = digest_name(info["digest_algorithm"])
    attributes = info["signed_attrs"]
    if not attributes or len(attributes) == 0:
        raise VerificationFailed("the signature has no signed attributes")
    found = signed_attribute(info, "message_digest")
    if found != content_digest:
        raise VerificationFailed("the signed message digest does not match the content")
    if content_type is not None and signed_attribute(info, "content_type") != content_type:
        raise VerificationFailed(f"the signed content type is not {content_type}")
    signed_bytes = b"\x31" + attributes.dump()[1:]
    check_signature(info["signature_algorithm"], algorithm, signer_der,
                    bytes(info["signature"].native), signed_bytes)
    return algorithm


def check_signature(signature_algorithm: object, digest: str, signer_der: bytes,
                    signature: bytes, message: bytes) -> None:
    """``signature`` over ``message`` by ``signer_der``'s key, as the CMS
    SignedDigestAlgorithm says (PKCS#1 v1.5, PSS with its parameters, ECDSA, Ed25519)."""
    try:
        key = x509.load_der_x509_certificate(signer_der).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise malformed("signer's certificate", exc) from exc
    name = str(signature_algorithm["algorithm"].native)  # type: ignore[index]
    hash_ = _HASHES[digest]()
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hash_))
        elif isinstance(key, rsa.RSAPublicKey):
            if name == "rsassa_pss":
                params = signature_algorithm["parameters"]  # type: ignore[index]
                pss_hash = _HASHES[str(params["hash_algorithm"]["algorithm"].native)]()
                key.verify(signature, message,
                           padding.PSS(padding.MGF1(pss_hash), params["salt_length"].native),
                           pss_hash)
            else:
                key.verify(signature, message, padding.PKCS1v15(), hash_)
        else:
            raise VerificationFailed("unsupported signer key type")
    except InvalidSignature:
        raise VerificationFailed("the signature does not verify with the signer's "
                                 "certificate") from None
    except (ValueError, KeyError, UnsupportedAlgorithm) as exc:
        raise VerificationFailed(f"cannot check the signature: {parser_message(exc)}"
                                 ) from exc


def content_digest(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).digest()
