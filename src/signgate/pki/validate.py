"""Is a signer trusted? Chain, purpose, revocation and timestamps (RFC 5280, RFC 3161).

Path building and RFC 5280 checks are cryptography's (``x509.verification``); signgate adds
the code-signing / time-stamping purpose, and revocation with RFC 5280 §5.3.2 invalidity
dates: a key revoked for compromise invalidates what was signed since the compromise, not
what was provably signed before it (a timestamp proves "before").
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID

from signgate.errors import VerificationFailed
from signgate.pki import signed_data

ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


def _purpose_check(purpose: x509.ObjectIdentifier, *, required: bool) -> Any:
    def check(policy: Any, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        if eku is None:
            if required:
                raise ValueError(f"no extended key usage (need {purpose.dotted_string})")
            return
        if purpose not in eku and ANY_EKU not in eku:
            raise ValueError(f"extended key usage does not include {purpose.dotted_string}")
    return check


def _ca_checks(policy: Any, cert: x509.Certificate, bc: x509.BasicConstraints | None) -> None:
    if bc is None or not bc.ca:
        raise ValueError("an issuer in the chain is not a CA")


def _key_usage_ca(policy: Any, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("an issuer in the chain may not sign certificates")


def _key_usage_ee(policy: Any, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        raise ValueError("the signer's key usage does not allow signatures")


def validate_chain(leaf: bytes, others: Sequence[bytes], anchors: Sequence[bytes],
                   at: datetime, purpose: x509.ObjectIdentifier) -> list[x509.Certificate]:
    """The path leaf → … → anchor valid at ``at`` for ``purpose`` (leaf first), or
    VerificationFailed saying why not."""
    store = v.Store([x509.load_der_x509_certificate(a) for a in anchors])
    ee = (v.ExtensionPolicy.permit_all()
          .require_present(x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC,
                           _purpose_check(purpose, required=True))
          .may_be_present(x509.KeyUsage, v.Criticality.AGNOSTIC, _key_usage_ee))
    ca = (v.ExtensionPolicy.permit_all()
          .require_present(x509.BasicConstraints, v.Criticality.CRITICAL, _ca_checks)
          .may_be_present(x509.KeyUsage, v.Criticality.AGNOSTIC, _key_usage_ca)
          .may_be_present(x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC,
                          _purpose_check(purpose, required=False)))
    verifier = (v.PolicyBuilder().store(store).time(at.astimezone(UTC).replace(tzinfo=None))
                .max_chain_depth(6).extension_policies(ca_policy=ca, ee_policy=ee)
                .build_client_verifier())
    try:
        verified = verifier.verify(x509.load_der_x509_certificate(leaf),
                                   [x509.load_der_x509_certificate(d) for d in others])
    except v.VerificationError as exc:
        raise VerificationFailed(f"the certificate chain is not trusted: {exc}") from None
    except ValueError as exc:
        raise VerificationFailed("cannot check the certificate chain: "
                                 f"{signed_data.parser_message(exc)}") from exc
    return list(verified.chain)


@dataclass(frozen=True)
class RevocationStatus:
    checked: tuple[str, ...]  # the CRLs used: "issuer #number"
    revoked_later: tuple[str, ...]  # certificates revoked after the signature's proven time


def _crl_for(cert: x509.Certificate, issuer: x509.Certificate,
             crls: Sequence[x509.CertificateRevocationList]
             ) -> x509.CertificateRevocationList | None:
    key = issuer.public_key()
    for crl in crls:
        if crl.issuer != cert.issuer:
            continue
        if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                      | ed25519.Ed25519PublicKey) and crl.is_signature_valid(key):
            return crl
    return None


def check_revocation(chain: Sequence[x509.Certificate],
                     crls: Sequence[x509.CertificateRevocationList],
                     proven_at: datetime, now: datetime) -> RevocationStatus:
    """Every certificate below the anchor against a current CRL of its issuer.

    A certificate counts as revoked from its invalidity date (RFC 5280 §5.3.2) if the CRL
    gives one, else from its revocation date; the signature fails if that is at or before
    ``proven_at`` (the timestamp's time, or now when there is no timestamp).
    """
    checked: list[str] = []
    later: list[str] = []
    for cert, issuer in itertools.pairwise(chain):
        crl = _crl_for(cert, issuer, crls)
        name = cert.subject.rfc4514_string()
        if crl is None:
            raise VerificationFailed(f"no CRL from {issuer.subject.rfc4514_string()} to check "
                                     f"{name} (give one with --crl)")
        next_update = crl.next_update_utc
        if next_update is not None and next_update < now:
            raise VerificationFailed(f"the CRL of {issuer.subject.rfc4514_string()} expired "
                                     f"at {next_update.isoformat()}; fetch a fresh one")
        try:
            number = str(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        except x509.ExtensionNotFound:
            number = "?"
        checked.append(f"{issuer.subject.rfc4514_string()} #{number}")
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is None:
            continue
        effective = entry.revocation_date_utc
        with contextlib.suppress(x509.ExtensionNotFound):
            effective = entry.extensions.get_extension_for_class(
                x509.InvalidityDate).value.invalidity_date_utc
        if effective <= proven_at:
            raise VerificationFailed(f"{name} is revoked as of {effective.isoformat()}, "
                                     f"and the signature is not proven older "
                                     f"({proven_at.isoformat()})")
        later.append(f"{name} (revoked as of {effective.isoformat()})")
    return RevocationStatus(tuple(checked), tuple(later))


@dataclass(frozen=True)
class Timestamp:
    time: datetime
    tsa: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    serial: int


def verify_timestamp(token_der: bytes, signature_value: bytes, anchors: Sequence[bytes]
                     ) -> Timestamp:
    """An RFC 3161 TimeStampToken over ``signature_value``: its imprint, its signature, and
    its TSA's chain (timeStamping purpose) to one of ``anchors`` at the token's genTime."""
    signed = signed_data.load_signed_data(token_der)
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise VerificationFailed("the timestamp is not an RFC 3161 token")
    try:
        content = bytes(encap["content"].contents)
        info = tsp.TSTInfo.load(content)
        imprint = info["message_imprint"]
        algorithm = signed_data.digest_name(imprint["hash_algorithm"])
        gen_time: datetime = info["gen_time"].native
        serial = int(info["serial_number"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise signed_data.malformed("timestamp token", exc) from exc
    if imprint["hashed_message"].native != hashlib.new(algorithm, signature_value).digest():
        raise VerificationFailed("the timestamp does not cover this signature")
    signer = signed_data.only_signer(signed)
    carried = signed_data.certificates_of(signed)
    tsa = signed_data.find_signer(signer, carried)
    digest = signed_data.digest_name(signer["digest_algorithm"])
    signed_data.verify_signer_info(signer, tsa, hashlib.new(digest, content).digest(),
                                   "tst_info")
    chain = validate_chain(tsa, [c for c in carried if c != tsa], anchors, gen_time,
                           ExtendedKeyUsageOID.TIME_STAMPING)
    return Timestamp(gen_time, chain[0], tuple(chain), serial)


def token_from_response(der: bytes) -> bytes:
    """The TimeStampToken inside a DER TimeStampResp (a ``.tsr`` file), or the token itself."""
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native == "signed_data":
            return der
    except (ValueError, TypeError):
        pass
    from signgate.pki.tsa import TimeStampResp

    try:
        return bytes(TimeStampResp.load(der)["time_stamp_token"].dump())
    except (ValueError, TypeError, KeyError):
        raise VerificationFailed("not an RFC 3161 timestamp response or token") from None
