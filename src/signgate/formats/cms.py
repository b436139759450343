"""Detached CMS SignedData (RFC 5652) built on the sign-a-digest primitive.

The artifact never reaches the server: the client sends its digest, which becomes the
``message-digest`` signed attribute; the signature covers the DER ``SET OF`` signed
attributes (RFC 5652 §5.4). The signer's certificate and its issuing CA travel in
``certificates``; an RFC 3161 token over the signature value goes into the unsigned
attribute ``id-aa-signatureTimeStampToken`` (RFC 3161 Appendix A). The same builder
serves Authenticode and JAR signatures (see ``authenticode.py`` and ``jar.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from asn1crypto import algos, cms, x509

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats.base import Chain, FormatRequest, SignerKey, ToBeSigned
from signgate.formats.cms_verify import CmsVerifier
from signgate.formats.raw import DetachedDigest


def signed_attributes(message_digest: bytes, signing_time: datetime,
                      content_type: str = "data",
                      extra: Sequence[cms.CMSAttribute] = ()) -> cms.CMSAttributes:
    """content-type, signing-time and message-digest (RFC 5652 §11), plus a format's own
    (Authenticode's SpcSpOpusInfo, ...). ``content_type`` names the encapsulated content
    (id-data for detached CMS and JAR, SpcIndirectDataContent for Authenticode)."""
    when = signing_time.astimezone(UTC).replace(microsecond=0)
    time_value = (cms.Time({"utc_time": when}) if when.year < 2050
                  else cms.Time({"generalized_time": when}))
    return cms.CMSAttributes([
        {"type": "content_type", "values": [content_type]},
        {"type": "signing_time", "values": [time_value]},
        {"type": "message_digest", "values": [message_digest]},
        *extra,
    ])


def signature_algorithm(key: KeyAlgorithm, padding: RsaPadding,
                        digest: DigestAlgorithm) -> algos.SignedDigestAlgorithm:
    """The SignerInfo signatureAlgorithm for how the key store signs."""
    if key.is_ecdsa:
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest.value}_ecdsa"})
    if padding is RsaPadding.PKCS1V15:
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    # RFC 4056: RSASSA-PSS with MGF1 over the same hash and salt = hash length.
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


def signed_data(
    attributes: cms.CMSAttributes,
    signature: bytes,
    key: KeyAlgorithm,
    padding: RsaPadding,
    digest: DigestAlgorithm,
    signer_der: bytes,
    chain_der: list[bytes],
    timestamp_token_der: bytes | None = None,
    *,
    content: cms.ContentInfo | None = None,
    timestamp_attribute: str = "signature_time_stamp_token",
) -> bytes:
    """A DER ContentInfo holding a SignedData: detached (id-data, no eContent) unless
    ``content`` gives the encapsulated content (PKCS#7 v1.5 style, as Authenticode's
    SpcIndirectDataContent). The RFC 3161 token goes into the unsigned attribute
    ``timestamp_attribute`` (Authenticode uses Microsoft's 1.3.6.1.4.1.311.3.3.1)."""
    signer = x509.Certificate.load(signer_der)
    info: dict[str, object] = {
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": signer.issuer, "serial_number": signer.serial_number}),
        "digest_algorithm": {"algorithm": digest.value},
        "signed_attrs": attributes,
        "signature_algorithm": signature_algorithm(key, padding, digest),
        "signature": signature,
    }
    if timestamp_token_der is not None:
        info["unsigned_attrs"] = cms.CMSAttributes([{
            "type": timestamp_attribute,
            "values": [cms.ContentInfo.load(timestamp_token_der)],
        }])
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": digest.value}],
        # detached: id-data without eContent
        "encap_content_info": content or {"content_type": "data"},
        "certificates": [cms.CertificateChoices.load(d) for d in [signer_der, *chain_der]],
        "signer_infos": [info],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data",
                                  "content": signed_data}).dump())


def token_of(response_der: bytes) -> bytes:
    """The TimeStampToken (a ContentInfo) inside a DER TimeStampResp."""
    from signgate.pki.tsa import TimeStampResp

    return bytes(TimeStampResp.load(response_der)["time_stamp_token"].dump())



def refuse_ed25519(key: SignerKey, what: str) -> None:
    """RFC 8419 CMS with Ed25519 is not verified by OpenSSL 3.0's cms tool (nor by
    osslsigncode or jarsigner built on it): refuse rather than hand out what the ecosystem
    cannot check."""
    if key.algorithm is KeyAlgorithm.ED25519:
        raise InvalidInput(f"{what} signatures with ed25519 keys are not supported; "
                           "use an ECDSA or RSA key", code=ErrorCode.UNSUPPORTED_FORMAT)


class CmsBuilder:
    """``cms``: detached SignedData over the client's digest of the artifact."""

    name = "cms"
    needs_chain = True
    embeds_timestamp = True

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        refuse_ed25519(key, "CMS")

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        attributes = signed_attributes(request.digest, request.now)
        return ToBeSigned(attributes.dump(), prehashed=False, state=attributes)

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        assert chain is not None
        return signed_data(tbs.state, signature, key.algorithm, key.rsa_padding,
                           request.digest_algorithm, chain.leaf, list(chain.issuers),
                           timestamp_token)


BUILDER = CmsBuilder()
CLIENT = DetachedDigest("cms", ".p7s")
VERIFIER = CmsVerifier()
