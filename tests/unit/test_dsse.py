"""DSSE: the pre-authentication encoding against the spec's example, the Statement signgate
writes, and the offline verifier on envelopes built here with a local key."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats import dsse
from signgate.formats.base import FormatRequest, SignerKey

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_pae_matches_the_dsse_spec_example() -> None:
    # DSSE protocol.md, "Test Vectors".
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


def _certificate(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p/k v1")])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
            .sign(key, algorithm))
    return cert.public_bytes(serialization.Encoding.DER)


def _sign(tmp_path: Path, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
          algorithm: KeyAlgorithm, content: bytes = b"artifact") -> tuple[Path, Path]:
    """An envelope over ``content`` made the way the batch makes it: builder, key, assemble."""
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(content)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = SignerKey("p/k", 1, algorithm, RsaPadding.PSS, pem.decode(), NOW)
    request = FormatRequest(DigestAlgorithm.SHA256, hashlib.sha256(content).digest(),
                            "a.bin", NOW)
    tbs = dsse.BUILDER.prepare(signer, request)
    assert not tbs.prehashed
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(tbs.message)
    else:
        signature = key.sign(tbs.message, ec.ECDSA(hashes.SHA256()))
    envelope = tmp_path / "a.bin.intoto.jsonl"
    envelope.write_bytes(dsse.BUILDER.assemble(signer, request, tbs, signature, None, None))
    return artifact, envelope


def test_statement_is_in_toto_v1_about_the_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = SignerKey("p/k", 3, KeyAlgorithm.ECDSA_P256, RsaPadding.PSS, pem.decode(), NOW)
    digest = hashlib.sha384(b"x").digest()
    stmt = json.loads(dsse.statement(signer, FormatRequest(DigestAlgorithm.SHA384, digest,
                                                           "dist/x.whl", NOW)))
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"] == [{"name": "dist/x.whl", "digest": {"sha384": digest.hex()}}]
    assert stmt["predicateType"] == dsse.PREDICATE_TYPE
    assert stmt["predicate"]["key"] == "p/k"
    assert stmt["predicate"]["keyVersion"] == 3
    assert stmt["predicate"]["signedAt"] == "2025-03-01T12:00:00Z"
    assert stmt["predicate"]["keyid"] == dsse.keyid_of(key.public_key())


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ED25519])
def test_verifier_accepts_a_good_envelope(tmp_path: Path, algorithm: KeyAlgorithm) -> None:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if algorithm is KeyAlgorithm.ED25519
        else ec.generate_private_key(ec.SECP256R1()))
    artifact, envelope = _sign(tmp_path, key, algorithm)
    other = _certificate(ec.generate_private_key(ec.SECP256R1()))
    cert = _certificate(key)
    evidence = dsse.VERIFIER.verify(artifact, envelope, (other, cert))
    assert evidence.signer == cert
    assert evidence.details["subject"] == "a.bin"
    assert evidence.timestamp_token is None  # no .tsr beside it


def test_verifier_rejects(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    artifact, envelope = _sign(tmp_path, key, KeyAlgorithm.ECDSA_P256)
    cert = _certificate(key)

    artifact.write_bytes(b"artifact!")
    with pytest.raises(VerificationFailed, match="subject digest does not match"):
        dsse.VERIFIER.verify(artifact, envelope, (cert,))
    artifact.write_bytes(b"artifact")

    with pytest.raises(VerificationFailed, match="keyid"):
        dsse.VERIFIER.verify(artifact, envelope,
                             (_certificate(ec.generate_private_key(ec.SECP256R1())),))
    with pytest.raises(InvalidInput, match="certificate"):
        dsse.VERIFIER.verify(artifact, envelope, ())

    data = json.loads(envelope.read_text())
    stmt = json.loads(base64.b64decode(data["payload"]))
    stmt["subject"][0]["name"] = "evil.bin"
    data["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    envelope.write_text(json.dumps(data))
    with pytest.raises(VerificationFailed, match="does not verify"):
        dsse.VERIFIER.verify(artifact, envelope, (cert,))

    for bad in ["", "{", "[]", '{"payloadType": "x"}',
                '{"payloadType": "application/vnd.in-toto+json", "payload": "!!",'
                ' "signatures": [{"sig": "AA=="}]}', "{}\n{}"]:
        envelope.write_text(bad)
        with pytest.raises(VerificationFailed):
            dsse.VERIFIER.verify(artifact, envelope, (cert,))
