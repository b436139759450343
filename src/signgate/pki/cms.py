"""The one place signgate builds what it signs: ASN.1 times, the digest-signer protocol,
and CMS ``SignedData`` (RFC 5652) for any encapsulated content type and version.

Every builder sits on top of this module: X.509 certificates and CRLs (``certs.py``,
``crl.py``) take their times from :func:`x509_time` and their signatures from a
:class:`DigestSigner`; detached CMS, Authenticode and JAR blocks (``formats/``) and RFC 3161
tokens (``tsa.py``) take their signed attributes, ``SignerInfo`` and ``SignedData`` from
here. Checking what was built is the other half, ``signed_data.py``.

Pure: no I/O, no key material. A :class:`DigestSigner` is told a digest and returns the
signature value; the key behind it never leaves the key store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from asn1crypto import algos, cms, x509

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput

# RFC 5280 §4.1.2.5 (certificate validity, and CRL times by §5.1.2.4-6) and RFC 5652
# §11.3 (signingTime) share one rule: UTCTime for dates through 2049, GeneralizedTime
# from 2050 on, both in UTC ("Z") with whole seconds.
_UTC_TIME_LIMIT = datetime(2050, 1, 1, tzinfo=UTC)


class SignatureScheme(Protocol):
    """How a key signs: its algorithm and, for RSA, its padding. Together with the digest
    algorithm this names the signature algorithm identifier (:func:`signer_info_algorithm`).
    A format's :class:`signgate.formats.base.SignerKey` is one."""

    @property
    def algorithm(self) -> KeyAlgorithm: ...

    @property
    def rsa_padding(self) -> RsaPadding: ...


class DigestSigner(SignatureScheme, Protocol):
    """Signs a digest with a key that stays in the key store: the one signer protocol of
    certificates, CRLs, CSRs and time-stamp tokens (and of the key store primitive under
    the formats, which the signing batch calls itself)."""

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes: ...


# --- the one time encoder -------------------------------------------------------------------

def whole_second(value: datetime) -> datetime:
    """UTC, whole seconds: what an X.509 or CMS time holds (RFC 5280 §4.1.2.5.1-2)."""
    if value.tzinfo is None:
        raise InvalidInput("certificate times must carry a time zone")
    return value.astimezone(UTC).replace(microsecond=0)


def uses_utc_time(value: datetime) -> bool:
    """True when ``value`` (with a time zone) is encoded as UTCTime, False when as
    GeneralizedTime: the year in UTC decides (a 2049 local time may be 2050 in UTC)."""
    return whole_second(value) < _UTC_TIME_LIMIT


def x509_time(value: datetime) -> x509.Time:
    """An RFC 5280 ``Time`` (asn1crypto calls its alternatives utc_time / general_time)."""
    value = whole_second(value)
    return x509.Time(name="utc_time" if uses_utc_time(value) else "general_time",
                     value=value)


def cms_time(value: datetime) -> cms.Time:
    """An RFC 5652 ``Time`` for signingTime (asn1crypto: utc_time / generalized_time)."""
    value = whole_second(value)
    return cms.Time(name="utc_time" if uses_utc_time(value) else "generalized_time",
                    value=value)


# --- signature algorithm identifiers --------------------------------------------------------

def signer_info_algorithm(scheme: SignatureScheme,
                          digest: DigestAlgorithm) -> algos.SignedDigestAlgorithm:
    """The ``SignerInfo`` signatureAlgorithm of a format signature: ``ecdsa-with-SHA*``,
    ``rsaEncryption`` for PKCS#1 v1.5 (RFC 3370 §3.2, what signtool and jarsigner write) or
    ``RSASSA-PSS`` with MGF1 over the same hash and salt = hash length (RFC 4056)."""
    if scheme.algorithm.is_ecdsa:
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest.value}_ecdsa"})
    if scheme.rsa_padding is RsaPadding.PKCS1V15:
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    return algos.SignedDigestAlgorithm({
        "algorithm": "rsassa_pss",
        "parameters": {
            "hash_algorithm": {"algorithm": digest.value},
            "mask_gen_algorithm": {"algorithm": "mgf1",
                                   "parameters": {"algorithm": digest.value}},
            "salt_length": digest.size,
            "trailer_field": "trailer_field_bc",
        },
    })


# --- SignedData -----------------------------------------------------------------------------

def signed_attributes(content_type: str, message_digest: bytes, signing_time: datetime,
                      extra: Sequence[cms.CMSAttribute] = ()) -> cms.CMSAttributes:
    """content-type, signing-time and message-digest (RFC 5652 §11.1-3), then a builder's
    own (Authenticode's SpcSpOpusInfo, the TSA's signingCertificateV2, ...).
    ``content_type`` names the encapsulated content (id-data for detached CMS and JAR,
    SpcIndirectDataContent for Authenticode, id-ct-TSTInfo for a time-stamp token).

    What is signed is the DER of this ``SET OF`` (tag 0x31, elements in DER order, which
    asn1crypto's SetOf keeps), not the ``[0] IMPLICIT`` field of the SignerInfo (§5.4).
    """
    return cms.CMSAttributes([
        {"type": "content_type", "values": [content_type]},
        {"type": "signing_time", "values": [cms_time(signing_time)]},
        {"type": "message_digest", "values": [message_digest]},
        *extra,
    ])


def sign_attributes(signer: DigestSigner, digest: DigestAlgorithm,
                    attributes: cms.CMSAttributes) -> bytes:
    """The signature value over ``attributes`` (RFC 5652 §5.4), through ``signer``."""
    return signer.sign_digest(digest, hashlib.new(digest.value, attributes.dump()).digest())


def signer_info(issuer: x509.Name, serial: int, digest: DigestAlgorithm,
                attributes: cms.CMSAttributes, algorithm: algos.SignedDigestAlgorithm,
                signature: bytes,
                unsigned: cms.CMSAttributes | None = None) -> cms.SignerInfo:
    """A version 1 ``SignerInfo`` naming its certificate by issuer and serial (§5.3)."""
    info: dict[str, object] = {
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": issuer, "serial_number": serial}),
        "digest_algorithm": {"algorithm": digest.value},
        "signed_attrs": attributes,
        "signature_algorithm": algorithm,
        "signature": signature,
    }
    if unsigned is not None:
        info["unsigned_attrs"] = unsigned
    return cms.SignerInfo(info)


def timestamp_attribute(token_der: bytes,
                        attribute: str = "signature_time_stamp_token") -> cms.CMSAttributes:
    """The unsigned attribute carrying an RFC 3161 token over the signature value (RFC 3161
    Appendix A; Authenticode names it ``microsoft_time_stamp_token``, 1.3.6.1.4.1.311.3.3.1)."""
    return cms.CMSAttributes([{"type": attribute,
                               "values": [cms.ContentInfo.load(token_der)]}])


def signed_data(signer_infos: Sequence[cms.SignerInfo], digest: DigestAlgorithm,
                certificates: Sequence[bytes] = (),
                encapsulated: cms.EncapsulatedContentInfo | cms.ContentInfo | None = None,
                version: str | None = None) -> cms.ContentInfo:
    """A ``ContentInfo`` holding a ``SignedData``.

    ``encapsulated`` is the content: None for a detached signature (id-data without
    eContent), an ``EncapsulatedContentInfo`` (a TSTInfo in an OCTET STRING) or a PKCS#7
    v1.5 ``ContentInfo`` (Authenticode's SpcIndirectDataContent, [0] EXPLICIT without an
    OCTET STRING). ``version`` defaults to RFC 5652 §5.1's rule for issuer-and-serial
    signers without attribute certificates: v1 for id-data, v3 otherwise; Authenticode
    asks for v1 whatever its content, as its spec requires (asn1crypto then reads the
    content as a PKCS#7 ``ContentInfo``, so v1 goes with None or a ``ContentInfo``).
    ``certificates`` are DER, the
    signer's first; none leaves the field out (a TSA answering ``certReq`` FALSE).
    """
    content_type = "data" if encapsulated is None else encapsulated["content_type"].native
    fields: dict[str, object] = {
        "version": version or ("v1" if content_type == "data" else "v3"),
        "digest_algorithms": [{"algorithm": digest.value}],
        "encap_content_info": ({"content_type": "data"} if encapsulated is None
                               else encapsulated),
        "signer_infos": list(signer_infos),
    }
    if certificates:
        fields["certificates"] = [cms.CertificateChoices.load(d) for d in certificates]
    return cms.ContentInfo({"content_type": "signed_data",
                            "content": cms.SignedData(fields)})


def one_signer(attributes: cms.CMSAttributes, signature: bytes, scheme: SignatureScheme,
               digest: DigestAlgorithm, signer_der: bytes, chain_der: Sequence[bytes],
               timestamp_token_der: bytes | None = None, *,
               encapsulated: cms.ContentInfo | None = None, version: str | None = None,
               timestamp_attribute_type: str = "signature_time_stamp_token") -> bytes:
    """The DER SignedData of a format signature: one signer (``signer_der``) with its
    issuing CAs, the signature over ``attributes``, the optional RFC 3161 token."""
    signer = x509.Certificate.load(signer_der)
    unsigned = (None if timestamp_token_der is None
                else timestamp_attribute(timestamp_token_der, timestamp_attribute_type))
    info = signer_info(signer.issuer, signer.serial_number, digest, attributes,
                       signer_info_algorithm(scheme, digest), signature, unsigned)
    return bytes(signed_data([info], digest, [signer_der, *chain_der], encapsulated,
                             version).dump())
