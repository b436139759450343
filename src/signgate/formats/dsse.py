"""``dsse``: an in-toto Statement v1 about the artifact, signed in a DSSE envelope.

The client sends only the artifact's digest and name; the **server** writes the in-toto
Statement (``_type`` https://in-toto.io/Statement/v1, one subject: the artifact name and
its digest, predicate :data:`PREDICATE_TYPE` naming the signing key) so the key only ever
signs statements signgate wrote. The key signs the DSSE pre-authentication encoding of the
Statement (DSSE protocol.md, "Signature definition")::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

hashed with the *key's* hash for ECDSA and RSA (:func:`signature_hash`: P-256 SHA-256,
P-384 SHA-384, RSA SHA-256), signed as is by Ed25519. The request's digest algorithm
(``--digest``) names only the subject digest in the Statement. An envelope carries no
algorithm identifier, so DSSE verifiers take the hash from the key: securesystemslib (the
DSSE library in-toto uses) verifies ``ecdsa-sha2-nistp256`` with SHA-256 and
``ecdsa-sha2-nistp384`` with SHA-384, and its default RSA scheme is ``rsassa-pss-sha256``
(``rsa-pkcs1v15-sha256`` for a PKCS#1 v1.5 key). The envelope (DSSE envelope.md) is written
as one JSON line, ``FILE.intoto.jsonl``; the RFC 3161 token over the signature value stays
beside it (``FILE.intoto.jsonl.tsr``).

Envelopes from signgate before this rule hashed with ``--digest`` (P-256 with sha384 or
sha512, P-384 with sha256 or sha512, RSA with sha384 or sha512): DSSE verifiers reject them,
and so does :class:`DsseVerifier`, saying that they must be signed again.

A signature's ``keyid`` is the hex SHA-256 of the key version's DER SubjectPublicKeyInfo:
stable per key version, and computable by a verifier from the signer's certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.crypto.canonical import canonical_json
from signgate.crypto.signatures import PublicKey, verify_digest
from signgate.errors import ErrorCode, InvalidInput, PayloadTooLarge, VerificationFailed
from signgate.formats.base import Chain, Evidence, FormatRequest, SignerKey, ToBeSigned
from signgate.formats.files import hash_path, sidecar_token
from signgate.formats.raw import DetachedDigest

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# What the predicate asserts: "signgate signed this subject with this key version".
PREDICATE_TYPE = "https://signgate.dev/attestation/signature/v1"
SUFFIX = ".intoto.jsonl"
# An envelope file is a few KiB; refuse to parse anything far larger.
MAX_ENVELOPE_BYTES = 4 << 20


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (protocol.md): lengths are ASCII decimal byte
    counts, SP is one space."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def signature_hash(algorithm: KeyAlgorithm) -> DigestAlgorithm:
    """The hash a DSSE signature of this key type is over: the curve's for ECDSA (FIPS 186-5
    and securesystemslib's ecdsa-sha2-nistp256/384 schemes), SHA-256 for RSA (the default
    schemes of securesystemslib); Ed25519 hashes nothing itself (the answer is unused)."""
    if algorithm is KeyAlgorithm.ECDSA_P384:
        return DigestAlgorithm.SHA384
    return DigestAlgorithm.SHA256


def _hash_of_key(key: PublicKey) -> DigestAlgorithm | None:
    """:func:`signature_hash` for a certificate's public key (P-521, which signgate does not
    make, hashes with SHA-512 as securesystemslib's ecdsa-sha2-nistp521 does); None for a
    curve no DSSE verifier defines a hash for."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": DigestAlgorithm.SHA256, "secp384r1": DigestAlgorithm.SHA384,
                "secp521r1": DigestAlgorithm.SHA512}.get(key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return DigestAlgorithm.SHA256
    return None


def spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def keyid_of(public_key: PublicKey) -> str:
    """The envelope ``keyid``: hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def _keyid_of_pem(public_key_pem: str) -> str:
    key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    return hashlib.sha256(key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )).hexdigest()


def statement(key: SignerKey, request: FormatRequest) -> bytes:
    """The in-toto Statement v1 (in-toto attestation spec, statement.md) signgate signs:
    canonical JSON, so the same request always yields the same bytes."""
    when = request.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return canonical_json({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": request.artifact_name,
                     "digest": {request.digest_algorithm.value: request.digest.hex()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"signer": "signgate", "key": key.ref, "keyVersion": key.version,
                      "keyid": _keyid_of_pem(key.public_key_pem), "signedAt": when},
    })


class DsseBuilder:
    """Server half: Statement, PAE to sign, envelope."""

    name = "dsse"
    needs_chain = False
    embeds_timestamp = False

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        pass  # every key type signs a message: ECDSA and RSA its hash, Ed25519 itself

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        body = statement(key, request)
        return ToBeSigned(pae(PAYLOAD_TYPE, body), prehashed=False, state=body,
                          hash_algorithm=signature_hash(key.algorithm))

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        envelope = {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(tbs.state).decode("ascii"),
            "signatures": [{"keyid": _keyid_of_pem(key.public_key_pem),
                            "sig": base64.b64encode(signature).decode("ascii")}],
        }
        return json.dumps(envelope, separators=(",", ":")).encode("utf-8") + b"\n"


# -- verifying ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature value)


def _b64(value: object, what: str) -> bytes:
    """DSSE allows standard or URL-safe base64 (envelope.md)."""
    if not isinstance(value, str):
        raise VerificationFailed(f"the envelope's {what} is not a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed(f"the envelope's {what} is not valid base64") from None


def parse_envelope(line: str) -> Envelope:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise VerificationFailed(f"not a DSSE envelope: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("payloadType"), str):
        raise VerificationFailed("not a DSSE envelope: no payloadType")
    sigs = data.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise VerificationFailed("the DSSE envelope has no signatures")
    signatures: list[tuple[str, bytes]] = []
    for sig in sigs:
        if not isinstance(sig, dict):
            raise VerificationFailed("a DSSE signature entry is not an object")
        keyid = sig.get("keyid", "")
        signatures.append((keyid if isinstance(keyid, str) else "", _b64(sig.get("sig"), "sig")))
    return Envelope(data["payloadType"], _b64(data.get("payload"), "payload"),
                    tuple(signatures))


def _verify_hashed(key: PublicKey, algorithm: DigestAlgorithm, message: bytes,
                   signature: bytes) -> bool:
    digest = hashlib.new(algorithm.value, message).digest()
    return verify_digest(key, None, algorithm, digest, signature)


def _verify_message(key: PublicKey, message: bytes, signature: bytes) -> bool:
    """Ed25519 over the message itself; ECDSA and RSA (PSS or PKCS#1 v1.5) over its hash,
    the key's (:func:`signature_hash`), as DSSE verifiers check it."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        try:
            key.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True
    expected = _hash_of_key(key)
    return expected is not None and _verify_hashed(key, expected, message, signature)


def _wrong_hash(key: PublicKey, message: bytes, signature: bytes) -> DigestAlgorithm | None:
    """The other hash a signature that fails :func:`_verify_message` is over, if any: older
    signgates hashed with ``--digest``. Such envelopes are refused (no DSSE verifier accepts
    them); this only lets the refusal say why."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    expected = _hash_of_key(key)
    return next((other for other in DigestAlgorithm if other is not expected
                 and _verify_hashed(key, other, message, signature)), None)


def _subject_digests(payload: bytes) -> tuple[dict[str, Any], list[tuple[str, dict[str, str]]]]:
    try:
        stmt = json.loads(payload)
    except ValueError:
        raise VerificationFailed("the DSSE payload is not JSON") from None
    if not isinstance(stmt, dict) or stmt.get("_type") not in (
            STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1"):
        raise VerificationFailed("the DSSE payload is not an in-toto Statement")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list):
        raise VerificationFailed("the in-toto Statement has no subject list")
    out = [(str(s.get("name", "")), s["digest"]) for s in subjects
           if isinstance(s, dict) and isinstance(s.get("digest"), dict)]
    return stmt, out


_KNOWN = {a.value: a for a in DigestAlgorithm}


def _algorithms(subjects: list[tuple[str, dict[str, str]]]) -> list[DigestAlgorithm]:
    """The digest algorithms the subjects name that signgate knows (``--digest``)."""
    found: list[DigestAlgorithm] = []
    for _, digests in subjects:
        for name in digests:
            alg = _KNOWN.get(name)
            if alg is not None and alg not in found:
                found.append(alg)
    if not found:
        raise VerificationFailed("the in-toto Statement names no sha256, sha384 or sha512 "
                                 "subject digest")
    return found


def _signer(envelope: Envelope, certificates: tuple[bytes, ...]) -> tuple[bytes, bytes, str]:
    """The first (certificate DER, signature, keyid) whose key verifies the PAE. A keyid
    picks the certificate; an empty keyid tries every certificate."""
    loaded: list[tuple[bytes, PublicKey, str]] = []
    for der in certificates:
        try:
            key = x509.load_der_x509_certificate(der).public_key()
        except ValueError as exc:
            raise InvalidInput(f"not a DER certificate: {exc}",
                               code=ErrorCode.BAD_CERTIFICATE) from exc
        if isinstance(key, PublicKey):
            loaded.append((der, key, keyid_of(key)))
    if not loaded:
        raise InvalidInput("a DSSE envelope carries no certificate: give the signer's "
                           "certificate (signgate key cert PROJECT/NAME)",
                           code=ErrorCode.CERTIFICATE_REQUIRED)
    message = pae(envelope.payload_type, envelope.payload)
    tried: list[tuple[PublicKey, bytes]] = []
    for keyid, signature in envelope.signatures:
        for der, key, candidate in loaded:
            if keyid and keyid != candidate:
                continue
            tried.append((key, signature))
            if _verify_message(key, message, signature):
                return der, signature, candidate
    if not tried:
        raise VerificationFailed("no given certificate matches the envelope's keyid "
                                 f"({', '.join(k for k, _ in envelope.signatures)})")
    for key, signature in tried:
        wrong = _wrong_hash(key, message, signature)
        if wrong is not None:
            raise VerificationFailed(
                f"the DSSE signature is over the {wrong.value} hash of the envelope, not the "
                "hash DSSE verifiers (securesystemslib, in-toto) use for this key "
                f"({_hash_of_key(key) or 'none'}): an older signgate made it with --digest "
                f"{wrong.value}; those verifiers reject it, and so does signgate: sign it again")
    raise VerificationFailed("the DSSE signature does not verify under the signer's key "
                             "(the envelope was altered or signed by another key)")


class DsseVerifier:
    """Parse the envelope, verify the PAE signature with the user's certificate (matched by
    keyid), then check that a subject digest is FILE's digest."""

    name = "dsse"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        if signature is None:
            raise InvalidInput("a DSSE envelope is detached: give the .intoto.jsonl file",
                               code=ErrorCode.SIGNATURE_REQUIRED)
        try:
            if signature.stat().st_size > MAX_ENVELOPE_BYTES:
                raise PayloadTooLarge(f"{signature} is over {MAX_ENVELOPE_BYTES} bytes: not an "
                                      "envelope signgate wrote")
            lines = [ln for ln in signature.read_text("utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {signature}: {exc}") from exc
        if len(lines) != 1:
            raise VerificationFailed(f"{signature.name} holds {len(lines)} envelopes; "
                                     "signgate verifies a file with exactly one")
        envelope = parse_envelope(lines[0])
        if envelope.payload_type != PAYLOAD_TYPE:
            raise VerificationFailed(f"payloadType is {envelope.payload_type!r}, not an "
                                     f"in-toto Statement ({PAYLOAD_TYPE})")
        # Nothing in the payload is trusted before its signature verifies; the subject's
        # algorithm only chooses which hash to try.
        stmt, subjects = _subject_digests(envelope.payload)
        algorithms = _algorithms(subjects)
        signer, value, keyid = _signer(envelope, certificates)
        for alg in algorithms:
            actual = hash_path(path, alg).hex()
            for name, digests in subjects:
                if str(digests.get(alg.value, "")).lower() == actual:
                    return Evidence(
                        format=self.name, signer=signer, signature_value=value,
                        timestamp_token=sidecar_token(signature),
                        details={"subject": name, "digest": f"{alg.value}:{actual}",
                                 "keyid": keyid,
                                 "predicateType": str(stmt.get("predicateType", ""))})
        raise VerificationFailed(f"the in-toto subject digest does not match {path.name}: "
                                 "the file was changed after signing, or the envelope is "
                                 "for another file")


BUILDER = DsseBuilder()
CLIENT = DetachedDigest("dsse", SUFFIX)
VERIFIER = DsseVerifier()
