"""``authenticode``: Windows PE executables signed the way signtool and osslsigncode do.

Microsoft's "Windows Authenticode Portable Executable Signature Format":

- the client computes the PE *image hash* (``pe.py``) and sends only that digest;
- the server wraps it in an ``SpcIndirectDataContent`` (``SpcPeImageData`` + DigestInfo),
  the encapsulated content of a PKCS#7 SignedData whose signed attributes are
  content-type ``SPC_INDIRECT_DATA_OBJID``, ``messageDigest`` = hash of the
  SpcIndirectDataContent *contents octets* (its DER value without tag and length, as the
  spec defines), ``SpcSpOpusInfo`` (the program name) and ``SpcStatementType``
  (individual code signing). The RFC 3161 token over the signature value goes into
  Microsoft's unsigned attribute 1.3.6.1.4.1.311.3.3.1 (RFC 3161 countersignature);
- the client appends the SignedData to the PE as a WIN_CERTIFICATE.

RSA-PSS is refused: osslsigncode (OpenSSL's PKCS#7 code) and Windows verify Authenticode
with PKCS#1 v1.5 or ECDSA only. Ed25519 is refused like every CMS-based format.

The verifier checks one signature and refuses what it cannot account for: a certificate
table other than one WIN_CERTIFICATE and its padding (``pe.py``), and any unsigned
attribute other than one RFC 3161 token. Unsigned attributes are covered by no signature,
so a nested signature (``SPC_NESTED_SIGNATURE``, which signtool ``/as`` and osslsigncode
``-nest`` add) could name any signer; signgate never writes one and does not judge one, so
a file carrying one is not valid to signgate, whoever made it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from asn1crypto import algos, cms, core

from signgate.crypto.algorithms import DigestAlgorithm, RsaPadding
from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.formats import cms as cms_format
from signgate.formats import pe
from signgate.formats.base import (
    Chain,
    Evidence,
    FormatRequest,
    KeyLookup,
    Prepared,
    Progress,
    SignerKey,
    ToBeSigned,
)
from signgate.pki import cms as pki_cms
from signgate.pki import signed_data as sd

# Authenticode spec, "Authenticode-Specific Structures"
SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
SPC_SP_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
SPC_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
SPC_INDIVIDUAL_SP_KEY_PURPOSE = "1.3.6.1.4.1.311.2.1.21"
# Microsoft's unsigned attribute for an RFC 3161 token (asn1crypto knows it by this name)
TIMESTAMP_ATTRIBUTE = "microsoft_time_stamp_token"
# A whole second SignedData as an unsigned attribute (dual signing)
SPC_NESTED_SIGNATURE = "1.3.6.1.4.1.311.2.4.1"
OBSOLETE = "<<<Obsolete>>>"  # what signtool puts in SpcPeImageData.file


class SpcString(core.Choice):  # type: ignore[misc]
    _alternatives = [  # noqa: RUF012 -- asn1crypto style
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcSerializedObject(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("class_id", core.OctetString),
        ("serialized_data", core.OctetString),
    ]


class SpcLink(core.Choice):  # type: ignore[misc]
    _alternatives = [  # noqa: RUF012 -- asn1crypto style
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", SpcSerializedObject, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageFlags(core.BitString):  # type: ignore[misc]
    _map = {  # noqa: RUF012 -- asn1crypto style
        0: "include_resources", 1: "include_debug_info", 2: "include_import_address_table",
    }


class SpcPeImageData(core.Sequence):  # type: ignore[misc]
    # Encoded as signtool does: the flags explicitly (empty), the file as [0] SpcLink.
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("flags", SpcPeImageFlags),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("type", core.ObjectIdentifier),
        ("value", core.Any, {"optional": True}),
    ]
    _oid_pair = ("type", "value")
    _oid_specs = {SPC_PE_IMAGE_DATA: SpcPeImageData}  # noqa: RUF012 -- asn1crypto style


class SpcIndirectDataContent(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("data", SpcAttributeTypeAndOptionalValue),
        ("message_digest", algos.DigestInfo),
    ]


class SpcContentInfo(core.Sequence):  # type: ignore[misc]
    """PKCS#7 ContentInfo holding SpcIndirectDataContent ([0] EXPLICIT, no OCTET STRING).
    asn1crypto's ContentInfo cannot tag an unregistered content type, so it is encoded
    with this and loaded back as a ContentInfo."""

    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("content_type", core.ObjectIdentifier),
        ("content", SpcIndirectDataContent, {"explicit": 0}),
    ]


class SpcSpOpusInfo(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("program_name", SpcString, {"explicit": 0, "optional": True}),
        ("more_info", SpcLink, {"explicit": 1, "optional": True}),
    ]


class SpcStatementType(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.ObjectIdentifier


def indirect_data(algorithm: DigestAlgorithm, image_digest: bytes) -> SpcIndirectDataContent:
    """SpcIndirectDataContent for a PE image hash."""
    image = SpcPeImageData({
        "flags": SpcPeImageFlags(set()),
        "file": SpcLink(name="file", value=SpcString(name="unicode", value=OBSOLETE)),
    })
    content = SpcIndirectDataContent({
        "data": {"type": SPC_PE_IMAGE_DATA, "value": image},
        "message_digest": {
            "digest_algorithm": {"algorithm": algorithm.value, "parameters": core.Null()},
            "digest": image_digest,
        },
    })
    # Reload so that .contents is the DER we will embed, byte for byte.
    loaded: SpcIndirectDataContent = SpcIndirectDataContent.load(content.dump())
    return loaded


def _authenticode_attributes(program_name: str) -> list[cms.CMSAttribute]:
    opus = SpcSpOpusInfo({"program_name": SpcString(name="unicode", value=program_name)})
    statement = SpcStatementType([SPC_INDIVIDUAL_SP_KEY_PURPOSE])
    return [cms.CMSAttribute({"type": SPC_SP_OPUS_INFO, "values": [opus]}),
            cms.CMSAttribute({"type": SPC_STATEMENT_TYPE, "values": [statement]})]


def _refuse(key: SignerKey) -> None:
    cms_format.refuse_ed25519(key, "Authenticode")
    if key.algorithm.is_rsa and key.rsa_padding is RsaPadding.PSS:
        raise InvalidInput(
            f"Authenticode signatures with RSA-PSS keys are not supported ({key.ref} uses "
            "PSS): Windows and osslsigncode verify Authenticode RSA signatures with PKCS#1 "
            "v1.5 only; use an ECDSA key or an RSA key created with --rsa-padding pkcs1v15",
            code=ErrorCode.UNSUPPORTED_FORMAT)


class AuthenticodeBuilder:
    """The server half: SignedData over the client's PE image hash."""

    name = "authenticode"
    needs_chain = True
    embeds_timestamp = True

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        _refuse(key)
        if len(request.digest) != request.digest_algorithm.size:
            raise InvalidInput(f"a {request.digest_algorithm.value} PE image hash is "
                               f"{request.digest_algorithm.size} bytes, got "
                               f"{len(request.digest)}")

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        content = indirect_data(request.digest_algorithm, request.digest)
        digest = hashlib.new(request.digest_algorithm.value, content.contents).digest()
        attributes = pki_cms.signed_attributes(
            SPC_INDIRECT_DATA, digest, request.now,
            _authenticode_attributes(request.artifact_name))
        return ToBeSigned(attributes.dump(), prehashed=False, state=(attributes, content))

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        assert chain is not None
        attributes, content = tbs.state
        return pki_cms.one_signer(
            attributes, signature, key, request.digest_algorithm, chain.leaf, chain.issuers,
            timestamp_token,
            encapsulated=cms.ContentInfo.load(SpcContentInfo({
                "content_type": SPC_INDIRECT_DATA, "content": content}).dump()),
            # Authenticode spec: SignedData version 1, whatever the content type.
            version="v1", timestamp_attribute_type=TIMESTAMP_ATTRIBUTE)


def _indirect_data_of(signed: cms.SignedData) -> SpcIndirectDataContent:
    info = signed["encap_content_info"]
    if info["content_type"].dotted != SPC_INDIRECT_DATA:
        raise VerificationFailed("the signature's content is not an Authenticode "
                                 "SpcIndirectDataContent")
    try:
        parsed = info["content"].parse(SpcIndirectDataContent)
        parsed.native  # noqa: B018  (parse it all now, so errors surface here)
    except (ValueError, TypeError, KeyError) as exc:
        raise sd.malformed("SpcIndirectDataContent", exc) from exc
    if parsed["data"]["type"].dotted != SPC_PE_IMAGE_DATA:
        raise VerificationFailed("the signature is not over a PE image (SpcPeImageData)")
    content: SpcIndirectDataContent = parsed
    return content


class AuthenticodeClient:
    """The client half: hash the PE image, then append the signature to a copy."""

    name = "authenticode"
    embedded = True
    suffix = ""

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        # The signed file will be exactly the bytes hashed here: copied on the way.
        image = pe.image_digest(path, algorithm, progress, keep_copy=True)
        return Prepared(algorithm, image.digest, state=image)

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        # The server wraps what we sent; refuse to embed anything else.
        content = _indirect_data_of(sd.load_signed_data(result))
        if bytes(content["message_digest"]["digest"].native) != prepared.digest:
            raise VerificationFailed("the server's signature is not over this file's "
                                     "image hash")
        pe.write_signed(path, prepared.state, result, output)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        return pe.image_digest(path, algorithm, None).digest


def _timestamp_token(info: cms.SignerInfo) -> bytes | None:
    """The one RFC 3161 token among the unsigned attributes; any other unsigned attribute
    (a nested signature above all) is refused, since no signature covers it."""
    token = None
    for attribute in info["unsigned_attrs"] or []:
        kind = attribute["type"]
        if kind.dotted == SPC_NESTED_SIGNATURE:
            raise VerificationFailed(
                "the signature carries a nested signature (1.3.6.1.4.1.311.2.4.1), which "
                "signgate does not verify: a file signed twice is not valid to signgate; "
                "remove the nested signature (re-sign with signgate)",
                code=ErrorCode.NESTED_SIGNATURE)
        if kind.native != TIMESTAMP_ATTRIBUTE:
            raise VerificationFailed(f"the signature carries an unsigned attribute "
                                     f"{kind.dotted} that signgate cannot check")
        if token is not None:
            raise VerificationFailed("the signature carries more than one timestamp")
        if len(attribute["values"]) != 1:
            raise VerificationFailed(f"the signature's timestamp attribute holds "
                                     f"{len(attribute['values'])} tokens, not one")
        token = bytes(attribute["values"][0].dump())
    return token


class AuthenticodeVerifier:
    """signgate's own check of an Authenticode PE: image hash, digest chain, signature."""

    name = "authenticode"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        try:
            return self._verify(path, certificates)
        except InvalidInput as exc:
            if exc.code is not ErrorCode.INVALID_PE:
                raise  # could not read the file: missing input, not a verdict
            # A malformed PE is a failed verification (exit 8), not a refusal to sign.
            raise VerificationFailed(f"not a validly signed PE file: {exc.details['reason']}",
                                     code=ErrorCode.MALFORMED_PE) from exc

    def _verify(self, path: Path, certificates: tuple[bytes, ...]) -> Evidence:
        _, blob = pe.certificate_table(path)
        if blob is None:
            raise VerificationFailed(f"{path.name} carries no Authenticode signature")
        signed = sd.load_signed_data(blob)
        content = _indirect_data_of(signed)
        digest_info = content["message_digest"]
        name = sd.digest_name(digest_info["digest_algorithm"])
        actual = pe.image_digest(path, DigestAlgorithm(name)).digest
        if actual != bytes(digest_info["digest"].native):
            raise VerificationFailed(f"{path.name} was modified after it was signed: its "
                                     "PE image hash does not match the signature")
        info = sd.only_signer(signed)
        carried = sd.certificates_of(signed)
        signer = sd.find_signer(info, [*carried, *certificates])
        algorithm = sd.digest_name(info["digest_algorithm"])
        sd.verify_signer_info(info, signer, sd.content_digest(algorithm, content.contents),
                              SPC_INDIRECT_DATA)
        token = _timestamp_token(info)
        when = sd.signed_attribute(info, "signing_time")
        return Evidence(
            format="authenticode", signer=signer,
            certificates=tuple(c for c in carried if c != signer),
            signature_value=bytes(info["signature"].native), timestamp_token=token,
            signing_time=when if isinstance(when, datetime) else None,
            details={"image_digest": f"{name}:{actual.hex()}"})


BUILDER = AuthenticodeBuilder()
CLIENT = AuthenticodeClient()
VERIFIER = AuthenticodeVerifier()
