"""Detached CMS SignedData (RFC 5652) built on the sign-a-digest primitive.

The artifact never reaches the server: the client sends its digest, which becomes the
``message-digest`` signed attribute; the signature covers the DER ``SET OF`` signed
attributes (RFC 5652 §5.4). The signer's certificate and its issuing CA travel in
``certificates``; an RFC 3161 token over the signature value goes into the unsigned
attribute ``id-aa-signatureTimeStampToken`` (RFC 3161 Appendix A). The same builder
serves Authenticode and JAR signatures (see ``authenticode.py`` and ``jar.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from asn1crypto import algos, cms, x509

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput
from signgate.formats.base import Chain, FormatRequest, SignerKey, ToBeSigned
from signgate.formats.raw import DetachedDigest


def signed_attributes(message_digest: bytes, signing_time: datetime) -> cms.CMSAttributes:
    """content-type id-data, signing-time and message-digest (RFC 5652 §11)."""
    when = signing_time.astimezone(UTC).replace(microsecond=0)
    time_value = (cms.Time({"utc_time": when}) if when.year < 2050
                  else cms.Time({"generalized_time": when}))
    return cms.CMSAttributes([
        {"type": "content_type", "values": ["data"]},
        {"type": "signing_time", "values": [time_value]},
        {"type": "message_digest", "values": [message_digest]},
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


def detached(
    attributes: cms.CMSAttributes,
    signature: bytes,
    key: KeyAlgorithm,
    padding: RsaPadding,
    digest: DigestAlgorithm,
    signer_der: bytes,
    chain_der: list[bytes],
    timestamp_token_der: bytes | None = None,
) -> bytes:
    """A DER ContentInfo holding a detached SignedData."""
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
            "type": "signature_time_stamp_token",
            "values": [cms.ContentInfo.load(timestamp_token_der)],
        }])
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": digest.value}],
        "encap_content_info": {"content_type": "data"},  # detached: no eContent
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
                           "use an ECDSA or RSA key", code="unsupported_format")


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
        return detached(tbs.state, signature, key.algorithm, key.rsa_padding,
                        request.digest_algorithm, chain.leaf, list(chain.issuers),
                        timestamp_token)


BUILDER = CmsBuilder()
CLIENT = DetachedDigest("cms", ".p7s")
