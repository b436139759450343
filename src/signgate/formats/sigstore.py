"""``sigstore``: a Sigstore bundle v0.3 holding a message signature over the artifact.

The bundle (sigstore protobuf-specs ``sigstore_bundle.proto``, in its protobuf JSON form:
bytes as standard base64, enums by name) carries:

- ``verificationMaterial.certificate``: the key version's certificate (v0.3 bundles carry
  the leaf only; its issuing CA and signgate's root come from the verifier's trusted root,
  see ``service/trusted_root.py``);
- ``verificationMaterial.timestampVerificationData.rfc3161Timestamps``: signgate's RFC 3161
  token over the signature value, as a DER ``TimeStampResp`` (RFC 3161 §2.4.2: the proto's
  ``signed_timestamp`` is the response, status and token, not the bare token). Without a
  transparency log it is the only proof of *when* the certificate was used, so a Sigstore
  verifier needs it: a bundle is never made without;
- ``verificationMaterial.tlogEntries``: empty (signgate runs no transparency log);
- ``messageSignature``: the artifact digest and the signature over it (the key signs the
  digest as it is: ``prehashed``).

Ed25519 keys are refused: Sigstore verifiers check an Ed25519 message signature over the
artifact itself, not over its digest, and the artifact never reaches the server (a DSSE
envelope signs a message; use ``dsse``). RSA keys must use PKCS#1 v1.5: Sigstore verifiers
take the padding from the certificate's key type (rsaEncryption), which means PKCS#1 v1.5.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import PublicKey, verify_digest
from signgate.errors import ErrorCode, InvalidInput, PayloadTooLarge, VerificationFailed
from signgate.formats.base import Chain, Evidence, FormatRequest, SignerKey, ToBeSigned
from signgate.formats.cms import token_of
from signgate.formats.files import hash_path
from signgate.formats.raw import DetachedDigest
from signgate.pki.tsa import TimeStampResp

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# The older spelling of the same version (protobuf-specs, "Bundle.media_type").
MEDIA_TYPES = (MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
SUFFIX = ".sigstore.json"
# sigstore_common.proto HashAlgorithm names.
HASH_NAMES = {DigestAlgorithm.SHA256: "SHA2_256", DigestAlgorithm.SHA384: "SHA2_384",
              DigestAlgorithm.SHA512: "SHA2_512"}
MAX_BUNDLE_BYTES = 4 << 20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def time_stamp_resp(token: bytes) -> bytes:
    """A granted DER ``TimeStampResp`` around a ``TimeStampToken`` (RFC 3161 §2.4.2)."""
    return bytes(TimeStampResp({"status": {"status": "granted"},
                                "time_stamp_token": cms.ContentInfo.load(token)}).dump())


def bundle(request: FormatRequest, signature: bytes, certificate: bytes,
           timestamp_token: bytes) -> dict[str, Any]:
    """The bundle as protobuf JSON (field names in lowerCamelCase)."""
    return {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": _b64(certificate)},
            "tlogEntries": [],
            "timestampVerificationData": {
                "rfc3161Timestamps": [
                    {"signedTimestamp": _b64(time_stamp_resp(timestamp_token))},
                ],
            },
        },
        "messageSignature": {
            "messageDigest": {"algorithm": HASH_NAMES[request.digest_algorithm],
                              "digest": _b64(request.digest)},
            "signature": _b64(signature),
        },
    }


class SigstoreBuilder:
    """Server half: sign the artifact digest, wrap it with certificate and token."""

    name = "sigstore"
    needs_chain = True
    embeds_timestamp = True

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        if not request.timestamp:
            raise InvalidInput(
                "a Sigstore bundle needs an RFC 3161 timestamp (verifiers check the "
                "certificate at the time it proves): sign without --no-timestamp",
                code=ErrorCode.TIMESTAMP_REQUIRED)
        if key.algorithm is KeyAlgorithm.ED25519:
            raise InvalidInput(
                "Sigstore bundles cannot be made with ed25519 keys: Sigstore verifiers check "
                "an Ed25519 message signature over the whole artifact, which never reaches "
                "signgate; use --format dsse (an in-toto attestation) or an ECDSA key",
                code=ErrorCode.UNSUPPORTED_FORMAT)
        if key.algorithm.is_rsa and key.rsa_padding is not RsaPadding.PKCS1V15:
            raise InvalidInput(
                f"Sigstore bundles cannot be made with {key.ref}: its RSA key signs with "
                "PSS, and Sigstore verifiers expect PKCS#1 v1.5 for an RSA certificate; "
                "use an ECDSA key or an RSA key created with --rsa-padding pkcs1v15",
                code=ErrorCode.UNSUPPORTED_FORMAT)

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        return ToBeSigned(request.digest, prehashed=True)

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        if timestamp_token is None:
            # The batch decides on the timestamp after check(): refused here, nothing leaves.
            raise InvalidInput(
                "a Sigstore bundle needs an RFC 3161 timestamp (verifiers check the "
                "certificate at the time it proves): sign without --no-timestamp",
                code=ErrorCode.TIMESTAMP_REQUIRED)
        assert chain is not None  # needs_chain
        document = bundle(request, signature, chain.leaf, timestamp_token)
        return json.dumps(document, indent=2).encode("utf-8") + b"\n"


# -- verifying ---------------------------------------------------------------------------

def _field(data: object, *path: str) -> Any:
    for name in path:
        if not isinstance(data, dict) or name not in data:
            raise VerificationFailed(f"not a Sigstore bundle: no {'.'.join(path)}")
        data = data[name]
    return data


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationFailed(f"the bundle's {what} is not a base64 string")
    text = value.replace("-", "+").replace("_", "/")  # protobuf JSON accepts both alphabets
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed(f"the bundle's {what} is not valid base64") from None


def _certificates(material: dict[str, Any]) -> list[bytes]:
    if "certificate" in material:
        return [_bytes(_field(material, "certificate", "rawBytes"), "certificate")]
    chain = _field(material, "x509CertificateChain", "certificates")
    if not isinstance(chain, list) or not chain:
        raise VerificationFailed("the bundle's certificate chain is empty")
    return [_bytes(_field(c, "rawBytes"), "certificate") for c in chain]


def _tokens(material: dict[str, Any]) -> list[bytes]:
    """The TimeStampTokens inside the bundle's TimeStampResps."""
    data = material.get("timestampVerificationData") or {}
    stamps = data.get("rfc3161Timestamps", []) if isinstance(data, dict) else None
    if not isinstance(stamps, list):
        raise VerificationFailed("the bundle's rfc3161Timestamps is not a list")
    tokens = []
    for stamp in stamps:
        response = _bytes(_field(stamp, "signedTimestamp"), "signedTimestamp")
        try:
            tokens.append(token_of(response))
        except (ValueError, TypeError, KeyError) as exc:
            raise VerificationFailed("the bundle's signedTimestamp is not an RFC 3161 "
                                     "TimeStampResp") from exc
    return tokens


def load_bundle(signature: Path) -> dict[str, Any]:
    try:
        if signature.stat().st_size > MAX_BUNDLE_BYTES:
            raise PayloadTooLarge(f"{signature} is over {MAX_BUNDLE_BYTES} bytes: not a bundle "
                                  "signgate wrote")
        data = json.loads(signature.read_bytes())
    except OSError as exc:
        raise InvalidInput(f"cannot read {signature}: {exc.strerror}") from exc
    except ValueError as exc:
        raise VerificationFailed(f"{signature.name} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("mediaType") not in MEDIA_TYPES:
        raise VerificationFailed(f"{signature.name} is not a Sigstore bundle v0.3 "
                                 f"(mediaType {MEDIA_TYPE})")
    return data


class SigstoreVerifier:
    """The signer is the bundle's certificate: verify the message signature under its key
    and that the message digest is FILE's digest. Chain, EKU and the token are left to the
    checks every format shares (Evidence). The bundle needs its timestamp
    (``needs_timestamp``): with no transparency log it is the only verified time, and
    Sigstore verifiers (e.g. @sigstore/verify) refuse a bundle without one."""

    name = "sigstore"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        if signature is None:
            raise InvalidInput("a Sigstore bundle is detached: give the .sigstore.json file",
                               code=ErrorCode.SIGNATURE_REQUIRED)
        data = load_bundle(signature)
        if "messageSignature" not in data:
            raise VerificationFailed("the bundle holds a DSSE envelope, not a message "
                                     "signature; signgate verifies message signatures")
        material = _field(data, "verificationMaterial")
        if not isinstance(material, dict):
            raise VerificationFailed("the bundle's verificationMaterial is not an object")
        chain = _certificates(material)
        digest_name = _field(data, "messageSignature", "messageDigest", "algorithm")
        algorithm = next((a for a, n in HASH_NAMES.items() if n == digest_name), None)
        if algorithm is None:
            raise VerificationFailed(f"unsupported message digest algorithm {digest_name!r}")
        claimed = _bytes(_field(data, "messageSignature", "messageDigest", "digest"),
                         "messageDigest")
        value = _bytes(_field(data, "messageSignature", "signature"), "signature")
        try:
            key = x509.load_der_x509_certificate(chain[0]).public_key()
        except ValueError as exc:
            raise VerificationFailed(f"the bundle's certificate is not DER: {exc}") from None
        if not isinstance(key, PublicKey) or isinstance(key, ed25519.Ed25519PublicKey):
            # An Ed25519 message signature covers the artifact itself, not a digest.
            raise VerificationFailed("the bundle's certificate holds a key type signgate "
                                     "does not verify message signatures for")
        if not verify_digest(key, None, algorithm, claimed, value):
            raise VerificationFailed("the bundle's signature does not verify under its "
                                     "certificate's key")
        actual = hash_path(path, algorithm)
        if actual != claimed:
            raise VerificationFailed(f"the bundle's message digest does not match "
                                     f"{path.name}: the file was changed after signing, or "
                                     "the bundle is for another file")
        tokens = _tokens(material)
        return Evidence(
            format=self.name, signer=chain[0], certificates=tuple(chain[1:]),
            signature_value=value, timestamp_token=tokens[0] if tokens else None,
            details={"digest": f"{algorithm.value}:{actual.hex()}",
                     "tlog_entries": str(len(material.get("tlogEntries") or []))},
            needs_timestamp=True)


BUILDER = SigstoreBuilder()
CLIENT = DetachedDigest("sigstore", SUFFIX)
VERIFIER = SigstoreVerifier()
