"""``authenticode``: Windows files signed the way signtool and osslsigncode do.

Microsoft's "Windows Authenticode Portable Executable Signature Format", for every kind
of file Authenticode signs (PE executables, CAB archives, PowerShell scripts, MSI
packages: ``authenticode_files.py`` and one module per kind):

- the client detects the file's kind, computes its digest (for a PE, the *image hash*,
  ``pe.py``) and sends only that digest, with the kind as the parameter ``kind`` (none
  for PE, as before there were kinds);
- the server wraps it in an ``SpcIndirectDataContent`` (the kind's data, e.g.
  ``SpcPeImageData``, + DigestInfo; ``authenticode_asn1.py``),
  the encapsulated content of a PKCS#7 SignedData whose signed attributes are
  content-type ``SPC_INDIRECT_DATA_OBJID``, ``messageDigest`` = hash of the
  SpcIndirectDataContent *contents octets* (its DER value without tag and length, as the
  spec defines), ``SpcSpOpusInfo`` (the program name) and ``SpcStatementType``
  (individual code signing). The RFC 3161 token over the signature value goes into
  Microsoft's unsigned attribute 1.3.6.1.4.1.311.3.3.1 (RFC 3161 countersignature);
- the client puts the SignedData where the kind keeps it (a PE's WIN_CERTIFICATE, a
  CAB's reserved header area, a script's signature block), refusing a signature whose
  indirect data is of another kind.

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

from asn1crypto import cms

from signgate.crypto.algorithms import DigestAlgorithm, RsaPadding
from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.formats import authenticode_files
from signgate.formats import cms as cms_format
from signgate.formats.authenticode_asn1 import (
    SPC_INDIRECT_DATA,
    SPC_INDIVIDUAL_SP_KEY_PURPOSE,
    SPC_NESTED_SIGNATURE,
    SPC_SP_OPUS_INFO,
    SPC_STATEMENT_TYPE,
    TIMESTAMP_ATTRIBUTE,
    SpcContentInfo,
    SpcIndirectDataContent,
    SpcSpOpusInfo,
    SpcStatementType,
    SpcString,
)
from signgate.formats.authenticode_files import AuthenticodeFile
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


def indirect_data(algorithm: DigestAlgorithm, image_digest: bytes,
                  kind: str = authenticode_files.DEFAULT) -> SpcIndirectDataContent:
    """SpcIndirectDataContent over a file's digest, for the file kind ``kind``."""
    return authenticode_files.kind(kind).indirect_data(algorithm, image_digest)


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
    """The server half: SignedData over the client's digest of the file, whose kind the
    ``kind`` parameter names (``pe`` without it)."""

    name = "authenticode"
    needs_chain = True
    embeds_timestamp = True

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        _refuse(key)
        kind = authenticode_files.of_request(request.params)
        if len(request.digest) != request.digest_algorithm.size:
            raise InvalidInput(f"a {request.digest_algorithm.value} {kind.label} hash is "
                               f"{request.digest_algorithm.size} bytes, got "
                               f"{len(request.digest)}")

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        kind = authenticode_files.of_request(request.params)
        content = kind.indirect_data(request.digest_algorithm, request.digest)
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


def _indirect_data_of(signed: cms.SignedData, kind: AuthenticodeFile
                      ) -> SpcIndirectDataContent:
    """The signature's SpcIndirectDataContent, refused unless it is over a file of
    ``kind``."""
    info = signed["encap_content_info"]
    if info["content_type"].dotted != SPC_INDIRECT_DATA:
        raise VerificationFailed("the signature's content is not an Authenticode "
                                 "SpcIndirectDataContent")
    try:
        parsed = info["content"].parse(SpcIndirectDataContent)
        parsed.native  # noqa: B018  (parse it all now, so errors surface here)
    except (ValueError, TypeError, KeyError) as exc:
        raise sd.malformed("SpcIndirectDataContent", exc) from exc
    if not kind.describes(parsed):
        raise VerificationFailed(f"the signature is not over a {kind.label} (its indirect "
                                 f"data is of type {parsed['data']['type'].dotted})")
    content: SpcIndirectDataContent = parsed
    return content


class AuthenticodeClient:
    """The client half: detect the file's kind, hash it as that kind does, then write the
    signature into a copy."""

    name = "authenticode"
    embedded = True
    suffix = ""

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        kind = authenticode_files.detect(path)
        # The signed file will be exactly the bytes hashed here: copied on the way.
        hashed = kind.digest(path, algorithm, progress, keep_copy=True)
        # No parameter for PE: servers from before the kinds refuse unknown parameters.
        params = {} if kind.name == authenticode_files.DEFAULT else {"kind": kind.name}
        return Prepared(algorithm, hashed.digest, params, state=(kind, hashed))

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        # The server wraps what we sent; refuse to embed anything else.
        kind, hashed = prepared.state
        content = _indirect_data_of(sd.load_signed_data(result), kind)
        if bytes(content["message_digest"]["digest"].native) != prepared.digest:
            raise VerificationFailed("the server's signature is not over this file's "
                                     f"{kind.label} hash")
        kind.write_signed(path, hashed, result, output)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        return authenticode_files.of_request(params).digest(path, algorithm).digest


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
    """signgate's own check of an Authenticode-signed file of any kind: the kind's digest,
    the digest chain, the signature."""

    name = "authenticode"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        try:
            return self._verify(path, certificates)
        except InvalidInput as exc:
            if exc.code is ErrorCode.INVALID_PE:
                # A malformed PE is a failed verification (exit 8), not a refusal to sign.
                raise VerificationFailed(
                    f"not a validly signed PE file: {exc.details['reason']}",
                    code=ErrorCode.MALFORMED_PE) from exc
            if "reason" in exc.details:  # the same for the other kinds
                raise VerificationFailed(f"{path.name} is not a validly signed file: "
                                         f"{exc.details['reason']}") from exc
            raise  # could not read the file: missing input, not a verdict

    def _verify(self, path: Path, certificates: tuple[bytes, ...]) -> Evidence:
        kind = authenticode_files.detect(path)
        blob = kind.signature(path)
        if blob is None:
            raise VerificationFailed(f"{path.name} carries no Authenticode signature")
        signed = sd.load_signed_data(blob)
        content = _indirect_data_of(signed, kind)
        digest_info = content["message_digest"]
        name = sd.digest_name(digest_info["digest_algorithm"])
        actual = kind.digest(path, DigestAlgorithm(name)).digest
        if actual != bytes(digest_info["digest"].native):
            raise VerificationFailed(f"{path.name} was modified after it was signed: its "
                                     f"{kind.label} hash does not match the signature")
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
            details=({"image_digest": f"{name}:{actual.hex()}"}
                     if kind.name == authenticode_files.DEFAULT else
                     {"kind": kind.name, "digest": f"{name}:{actual.hex()}"}))


BUILDER = AuthenticodeBuilder()
CLIENT = AuthenticodeClient()
VERIFIER = AuthenticodeVerifier()
