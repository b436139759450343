"""DSSE: `sign --format dsse` writes FILE.intoto.jsonl, an in-toto Statement v1 in a DSSE
envelope. Checked independently of signgate's code: the test recomputes the PAE itself and
has openssl verify the signature with the key's public key (ECDSA, RSA-PSS, RSA PKCS#1 v1.5
over the PAE's hash, the key's; Ed25519 over the PAE itself), and securesystemslib (the DSSE
library in-toto uses) verify envelopes whatever --digest was."""

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
        # The PAE is hashed with the key's hash, whatever --digest (item 10).
        sig_hash = "sha384" if alg == "ecdsa-p384" else "sha256"
        ok = openssl_verify(alg, padding, sig_hash, public,
                            pae(envelope["payloadType"], body), sig, tmp_path)
        assert verified(ok), (alg, padding, ok)

        # A payload changed after signing (another subject) no longer verifies.
        statement["subject"][0]["name"] = "evil.tar.gz"
        forged = json.dumps(statement).encode()
        bad = openssl_verify(alg, padding, sig_hash, public,
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


def sslib_verify(envelope_path: Path, public_pem: str) -> str:
    """securesystemslib (the DSSE library in-toto uses) verifying the envelope with the key's
    default scheme: ECDSA schemes fix the hash by curve (ecdsa-sha2-nistp256 -> SHA-256,
    nistp384 -> SHA-384), RSA's default is rsassa-pss-sha256. "OK" or the error."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    data = envelope_of(envelope_path)
    public = serialization.load_pem_public_key(public_pem.encode())
    key = SSlibKey.from_crypto(public, keyid=data["signatures"][0]["keyid"])
    try:
        Envelope.from_dict(data).verify([key], 1)
    except VerificationError as exc:
        return f"FAILED: {type(exc).__name__}: {exc}"
    return "OK"


def test_dsse_signature_hash_follows_the_key(sqlite_server: Server, tmp_path: Path) -> None:
    """Item 10: the PAE is hashed with the key's hash (P-256: SHA-256, P-384: SHA-384, RSA:
    SHA-256), whatever --digest says; --digest names only the subject digest. securesystemslib
    verifies every envelope; signgate verifies them too."""
    server = sqlite_server
    project = unique("dsse-hash")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 3000)
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    cases = [("ecdsa-p256", "sha384"), ("ecdsa-p256", "sha512"), ("ecdsa-p384", "sha256"),
             ("rsa-3072", "sha512")]
    for i, (alg, digest) in enumerate(cases):
        ref = f"{project}/k{i}"
        server.cli("key", "create", ref, "--algorithm", alg)
        public = server.cli("key", "public", ref).stdout
        out = tmp_path / f"k{i}.intoto.jsonl"
        server.cli("sign", str(artifact), "--key", ref, "--format", "dsse", "--digest",
                   digest, "-o", str(out))
        statement = json.loads(base64.b64decode(envelope_of(out)["payload"]))
        assert list(statement["subject"][0]["digest"]) == [digest]  # --digest: the subject
        assert sslib_verify(out, public) == "OK", (alg, digest, sslib_verify(out, public))
        cert = tmp_path / f"k{i}.pem"
        cert.write_text(server.cli("key", "cert", ref).stdout)
        mine = server.cli("verify", str(artifact), "--signature", str(out), "--ca", str(root),
                          "--certificate", str(cert), "--json").json()
        assert mine["valid"] is True, (alg, digest, mine)

    # An envelope made the old way (P-256 signing the SHA-384 of the PAE), from a genuine
    # signgate signature: securesystemslib rejects it, and so does signgate, saying why.
    ref = f"{project}/k0"
    body = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [
        {"name": artifact.name,
         "digest": {"sha384": hashlib.sha384(artifact.read_bytes()).hexdigest()}}],
        "predicateType": dsse.PREDICATE_TYPE, "predicate": {}}).encode()
    message = tmp_path / "pae.bin"
    message.write_bytes(pae(dsse.PAYLOAD_TYPE, body))
    server.cli("sign", str(message), "--key", ref, "--format", "raw", "--digest", "sha384",
               "--no-timestamp")
    sig = (tmp_path / "pae.bin.sig").read_bytes()
    keyid = envelope_of(tmp_path / "k0.intoto.jsonl")["signatures"][0]["keyid"]
    old = tmp_path / "old.intoto.jsonl"
    old.write_text(json.dumps({"payloadType": dsse.PAYLOAD_TYPE,
                               "payload": base64.b64encode(body).decode(),
                               "signatures": [{"keyid": keyid,
                                               "sig": base64.b64encode(sig).decode()}]}) + "\n")
    verdict = sslib_verify(old, server.cli("key", "public", ref).stdout)
    assert verdict.startswith("FAILED:"), verdict
    refused = server.cli("verify", str(artifact), "--signature", str(old), "--ca", str(root),
                         "--certificate", str(tmp_path / "k0.pem"), check=False)
    assert refused.returncode == 8, refused
    assert "sha384" in refused.stderr
    assert "sign it again" in refused.stderr
