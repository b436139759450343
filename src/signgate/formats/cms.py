"""Detached CMS SignedData (RFC 5652) built on the sign-a-digest primitive.

The artifact never reaches the server: the client sends its digest, which becomes the
``message-digest`` signed attribute; the signature covers the DER ``SET OF`` signed
attributes (RFC 5652 §5.4). The signer's certificate and its issuing CA travel in
``certificates``; an RFC 3161 token over the signature value goes into the unsigned
attribute ``id-aa-signatureTimeStampToken`` (RFC 3161 Appendix A). The attributes, the
SignerInfo and the SignedData come from ``pki/cms.py``, the one CMS assembler, which
Authenticode, JAR and the TSA share; this module only says what a ``cms`` signature holds.
"""

from __future__ import annotations

from signgate.crypto.algorithms import KeyAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats.base import Chain, FormatRequest, SignerKey, ToBeSigned
from signgate.formats.cms_verify import CmsVerifier
from signgate.formats.raw import DetachedDigest
from signgate.pki import cms as pki_cms


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
        attributes = pki_cms.signed_attributes("data", request.digest, request.now)
        return ToBeSigned(attributes.dump(), prehashed=False, state=attributes)

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        assert chain is not None
        return pki_cms.one_signer(tbs.state, signature, key, request.digest_algorithm,
                                  chain.leaf, chain.issuers, timestamp_token)


BUILDER = CmsBuilder()
CLIENT = DetachedDigest("cms", ".p7s")
VERIFIER = CmsVerifier()
