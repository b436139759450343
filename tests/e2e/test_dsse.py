"""DSSE: `sign --format dsse` writes FILE.intoto.jsonl, an in-toto Statement v1 in a DSSE
envelope. Checked independently of signgate's code: the test recomputes the PAE itself and
has openssl verify the signature with the key's public key (ECDSA, RSA-PSS, RSA PKCS#1 v1.5
over the PAE's hash; Ed25519 over the PAE itself)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signgate.errors import VerificationFailed
from signgate.formats import dsse
from tests.conftest import unique
from tests.support.server import Server


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE protocol.md, written out again here so the test does not trust signgate's."""
    kind = payload_type.encode()
    return f"DSSEv1 {len(kind)} ".encode() + kind + f" {len(body)} ".encode() + body


def openssl_verify(algorithm: str, padding: str, digest: str, public_key: Path,
                   message: bytes, signature: bytes, tmp: Path) -> str:
    (tmp / "msg.bin").write_bytes(message)
    (tmp / "sig.bin").write_bytes(signature)
    if algorithm == "ed25519":
        cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public_key),
               "-rawin", "-in", str(tmp / "msg.bin"), "-sigfile", str(tmp / "sig.bin")]
    else:
        cmd = ["openssl", "dgst", f"-{digest}", "-verify", str(public_key),
               "-signature", str(tmp / "sig.bin")]
        if algorithm.startswith("rsa") and padding == "pss":
            cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
        cmd.append(str(tmp / "msg.bin"))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.stdout + proc.stderr


def verified(output: str) -> bool:
    return "Verified OK" in output or "Signature Verified Successfully" in output


def envelope_of(path: Path) -> dict[str, Any]:
    lines = path.read_text().splitlines()
    assert len(lines) == 1  # JSON Lines: one envelope
    data: dict[str, Any] = json.loads(lines[0])
    return data


def pem_to_der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(
        serialization.Encoding.DER)


def test_dsse_envelopes_verify_with_openssl(sqlite_server: Server, tmp_path: Path) -> None:
    server = sqlite_server
    project = unique("dsse")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 5000)
    keys = [("ecdsa-p256", "pss", "sha256"), ("ecdsa-p384", "pss", "sha384"),
            ("rsa-3072", "pss", "sha256"), ("rsa-3072", "pkcs1v15", "sha512"),
            ("ed25519", "pss", "sha256")]
    for i, (alg, padding, digest) in enumerate(keys):
        ref = f"{project}/k{i}"
        server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
        public = tmp_path / f"k{i}.pem"
        public.write_text(server.cli("key", "public", ref).stdout)
        receipt = server.cli("sign", str(artifact), "--key", ref, "--format", "dsse",
                             "--digest", digest, "--json").json()
        out = Path(receipt["signature_file"])
        assert out.name == "release.tar.gz.intoto.jsonl"
        assert Path(receipt["timestamp_file"]).name == "release.tar.gz.intoto.jsonl.tsr"

        envelope = envelope_of(out)
        assert envelope["payloadType"] == "application/vnd.in-toto+json"
        [signature] = envelope["signatures"]
        spki = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(public), "-outform",
                               "DER"], capture_output=True, check=True).stdout
        assert signature["keyid"] == hashlib.sha256(spki).hexdigest()
        body = base64.b64decode(envelope["payload"])
        statement = json.loads(body)
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert statement["subject"] == [{
            "name": "release.tar.gz",
            "digest": {digest: hashlib.new(digest, artifact.read_bytes()).hexdigest()}}]
        assert statement["predicate"]["key"] == ref
        sig = base64.b64decode(signature["sig"])
        ok = openssl_verify(alg, padding, digest, public, pae(envelope["payloadType"], body),
                            sig, tmp_path)
        assert verified(ok), (alg, padding, ok)

        # A payload changed after signing (another subject) no longer verifies.
        statement["subject"][0]["name"] = "evil.tar.gz"
        forged = json.dumps(statement).encode()
        bad = openssl_verify(alg, padding, digest, public,
                             pae(envelope["payloadType"], forged), sig, tmp_path)
        assert not verified(bad), (alg, bad)

        # signgate's own verifier, with the certificate of the key version.
        cert = pem_to_der(server.cli("key", "cert", ref).stdout)
        evidence = dsse.VERIFIER.verify(artifact, out, (cert,))
        assert evidence.signer == cert
        assert evidence.timestamp_token is not None  # from the .tsr beside it
        assert evidence.signature_value == sig

    # The last envelope (ed25519) against a changed file: the subject digest differs.
    out = artifact.with_name("release.tar.gz.intoto.jsonl")
    cert = pem_to_der(server.cli("key", "cert", f"{project}/k4").stdout)
    tampered = tmp_path / "tampered" / "release.tar.gz"
    tampered.parent.mkdir()
    tampered.write_bytes(artifact.read_bytes() + b"!")
    envelope = envelope_of(out)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] != \
        hashlib.sha256(tampered.read_bytes()).hexdigest()
    with pytest.raises(VerificationFailed, match="subject digest does not match"):
        dsse.VERIFIER.verify(tampered, out, (cert,))

    # A changed payload in the file: signgate's verifier refuses the signature.
    statement["subject"][0]["name"] = "evil.tar.gz"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged_path = tmp_path / "forged.intoto.jsonl"
    forged_path.write_text(json.dumps(envelope) + "\n")
    with pytest.raises(VerificationFailed, match="does not verify"):
        dsse.VERIFIER.verify(artifact, forged_path, (cert,))
    # Another key's certificate does not match the keyid.
    other = pem_to_der(server.cli("key", "cert", f"{project}/k0").stdout)
    with pytest.raises(VerificationFailed, match="keyid"):
        dsse.VERIFIER.verify(artifact, out, (other,))


def test_dsse_without_timestamp_has_no_sidecar(sqlite_server: Server, tmp_path: Path) -> None:
    project = unique("dsse-nots")
    sqlite_server.cli("project", "create", project)
    sqlite_server.cli("grant", "add", "admin", "signer", project)
    sqlite_server.cli("key", "create", f"{project}/k")
    artifact = tmp_path / "a.txt"
    artifact.write_text("a")
    receipt = sqlite_server.cli("sign", str(artifact), "--key", f"{project}/k", "--format",
                                "dsse", "--no-timestamp", "--json").json()
    assert "timestamp_file" not in receipt
    assert not artifact.with_name("a.txt.intoto.jsonl.tsr").exists()
    assert envelope_of(Path(receipt["signature_file"]))["signatures"]
