"""Sigstore bundles: `sign --format sigstore` writes FILE.sigstore.json that the Sigstore
reference verifier for JavaScript (@sigstore/verify, tests/interop/sigstore) accepts
offline against `signgate ca trusted-root` (no log entries in the bundle, one RFC 3161
timestamp),
and rejects for a changed file, another signgate's trust root, or a forged signature."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from signgate.errors import VerificationFailed
from signgate.formats import sigstore
from tests.conftest import unique
from tests.support.server import Server, start_server

INTEROP = Path(__file__).resolve().parents[1] / "interop" / "sigstore"


@pytest.fixture(scope="module")
def node_verifier() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed (scripts/test.sh installs it)")
    if not (INTEROP / "node_modules" / "@sigstore" / "verify").is_dir():
        pytest.fail("run 'npm ci --prefix tests/interop/sigstore' (scripts/test.sh does)")
    return INTEROP / "verify.mjs"


def node_verify(script: Path, bundle: Path, artifact: Path, root: Path) -> str:
    proc = subprocess.run(["node", str(script), str(bundle), str(artifact), str(root)],
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == out.startswith("OK:"), out
    return out


def assert_failed(out: str, code: str) -> None:
    """@sigstore/verify's error codes say which check refused."""
    assert out.startswith("FAILED:"), out
    assert code in out, out


def trusted_root(server: Server, path: Path) -> dict[str, Any]:
    printed = server.cli("ca", "trusted-root", "-o", str(path))
    assert f"wrote {path}" in printed.stdout
    document: dict[str, Any] = json.loads(path.read_text())
    assert document == server.cli("ca", "trusted-root", "--json").json()
    return document


def test_sigstore_bundles_verify_with_sigstore_js(sqlite_server: Server, tmp_path: Path,
                                                  node_verifier: Path) -> None:
    server = sqlite_server
    project = unique("sigstore")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    root_path = tmp_path / "trusted_root.json"
    document = trusted_root(server, root_path)
    assert document["mediaType"] == \
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    # The log is listed (its key, the note key ID its checkpoints name); bundles carry no
    # Rekor entries, and the verifier still accepts them (verify.mjs requires none).
    [tlog] = document["tlogs"]
    log_key = server.cli("log", "public-key", "--json", token="").json()
    assert tlog["baseUrl"].endswith("/log")
    assert tlog["publicKey"]["keyDetails"] == "PKIX_ED25519"
    der = base64.b64decode(tlog["publicKey"]["rawBytes"])
    pem_der = base64.b64decode("".join(log_key["public_key_pem"].strip().splitlines()[1:-1]))
    assert der == pem_der
    assert base64.b64decode(tlog["logId"]["keyId"]) == hashlib.sha256(der).digest()
    note_key_id = log_key["verifier_key"].split("+")[1]
    assert base64.b64decode(tlog["checkpointKeyId"]["keyId"]).hex() == note_key_id
    assert document["ctlogs"] == []
    [ca] = [c for c in document["certificateAuthorities"]
            if c["subject"]["commonName"] == f"signgate {project} issuing CA"]
    assert len(ca["certChain"]["certificates"]) == 2  # issuing CA, root
    root_pem = server.cli("ca", "cert").stdout
    root_der = base64.b64decode("".join(root_pem.strip().splitlines()[1:-1]))
    assert base64.b64decode(ca["certChain"]["certificates"][1]["rawBytes"]) == root_der
    assert len(document["timestampAuthorities"]) == 1

    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 5000)
    keys = [("ecdsa-p256", "pss", "sha256"), ("ecdsa-p384", "pss", "sha384"),
            ("rsa-3072", "pkcs1v15", "sha256"), ("rsa-3072", "pkcs1v15", "sha512")]
    for i, (alg, padding, digest) in enumerate(keys):
        ref = f"{project}/k{i}"
        server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
        receipt = server.cli("sign", str(artifact), "--key", ref, "--format", "sigstore",
                             "--digest", digest, "--json").json()
        bundle = Path(receipt["signature_file"])
        assert bundle.name == "release.tar.gz.sigstore.json"
        assert "timestamp_file" not in receipt  # the token is inside the bundle
        content = json.loads(bundle.read_text())
        assert content["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert content["verificationMaterial"]["tlogEntries"] == []
        ok = node_verify(node_verifier, bundle, artifact, root_path)
        assert ok.startswith("OK:"), (alg, digest, ok)
        assert f"CN={ref} v1" in ok  # the verified signer is this key version
        evidence = sigstore.VERIFIER.verify(artifact, bundle, ())
        assert evidence.timestamp_token is not None
        assert evidence.details["digest"].startswith(f"{digest}:")

    # A one-time key: a fresh key and a certificate valid for minutes, from the signing
    # time on; the timestamp falls inside it.
    server.cli("key", "create", f"{project}/once", "--one-time")
    server.cli("sign", str(artifact), "--key", f"{project}/once", "--format", "sigstore",
               "-o", str(tmp_path / "once.sigstore.json"))
    ok = node_verify(node_verifier, tmp_path / "once.sigstore.json", artifact, root_path)
    assert ok.startswith("OK:"), ok
    assert f"CN={project}/once v1" in ok

    bundle = artifact.with_name("release.tar.gz.sigstore.json")  # the last: rsa, sha512
    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(artifact.read_bytes() + b"!")
    bad = node_verify(node_verifier, bundle, tampered, root_path)
    assert_failed(bad, "SIGNATURE_ERROR")
    with pytest.raises(VerificationFailed, match="does not match"):
        sigstore.VERIFIER.verify(tampered, bundle, ())

    # A forged signature value over the right digest fails too.
    forged = json.loads(bundle.read_text())
    sig = bytearray(base64.b64decode(forged["messageSignature"]["signature"]))
    sig[-1] ^= 1
    forged["messageSignature"]["signature"] = base64.b64encode(bytes(sig)).decode()
    forged_path = tmp_path / "forged.sigstore.json"
    forged_path.write_text(json.dumps(forged))
    bad = node_verify(node_verifier, forged_path, artifact, root_path)
    assert bad.startswith("FAILED:"), bad
    with pytest.raises(VerificationFailed, match="does not verify"):
        sigstore.VERIFIER.verify(artifact, forged_path, ())

    # Another signgate's trust root: neither its TSA nor its CAs vouch for this bundle.
    other = start_server(tmp_path / "other" / "data", None)
    try:
        other.cli("project", "create", project)
        other_root = trusted_root(other, tmp_path / "other_root.json")
    finally:
        other.stop()
    bad = node_verify(node_verifier, bundle, artifact, tmp_path / "other_root.json")
    assert_failed(bad, "TIMESTAMP_ERROR")
    # ... and with our TSA but their CAs, the certificate chain is what fails.
    mixed = dict(other_root, timestampAuthorities=document["timestampAuthorities"])
    (tmp_path / "mixed.json").write_text(json.dumps(mixed))
    bad = node_verify(node_verifier, bundle, artifact, tmp_path / "mixed.json")
    assert_failed(bad, "CERTIFICATE_ERROR")


def test_sigstore_refusals(sqlite_server: Server, tmp_path: Path) -> None:
    server = sqlite_server
    project = unique("sigstore-no")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"app")
    out = artifact.with_name("app.bin.sigstore.json")

    server.cli("key", "create", f"{project}/ed", "--algorithm", "ed25519")
    refused = server.cli("sign", str(artifact), "--key", f"{project}/ed", "--format",
                         "sigstore", check=False)
    assert refused.returncode == 7, refused
    assert "ed25519" in refused.stderr
    assert "--format dsse" in refused.stderr

    server.cli("key", "create", f"{project}/pss", "--algorithm", "rsa-3072")
    refused = server.cli("sign", str(artifact), "--key", f"{project}/pss", "--format",
                         "sigstore", check=False)
    assert refused.returncode == 7, refused
    assert "pkcs1v15" in refused.stderr

    # No timestamp, no bundle: a Sigstore verifier cannot check the certificate without one.
    server.cli("key", "create", f"{project}/ec")
    refused = server.cli("sign", str(artifact), "--key", f"{project}/ec", "--format",
                         "sigstore", "--no-timestamp", check=False)
    assert refused.returncode == 7, refused
    assert "timestamp" in refused.stderr
    assert not out.exists()
    history = server.cli("audit", "log", "--key", f"{project}/ec", "--action",
                         "signature.create", "--json").stdout
    assert "timestamp_required" in history  # the refusal is recorded
    assert artifact.read_bytes() == b"app"


def test_bundle_without_timestamp_is_refused_unless_asked(sqlite_server: Server,
                                                          tmp_path: Path,
                                                          node_verifier: Path) -> None:
    """V6: the timestamp is the only proof of when the certificate was used. A genuine
    bundle with its timestamps stripped is refused by @sigstore/verify and by signgate;
    only --insecure-allow-untimestamped makes signgate judge it by the current time, and
    it says so."""
    server = sqlite_server
    project = unique("sigstore-nots")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    server.cli("key", "create", f"{project}/ec")
    root_path = tmp_path / "trusted_root.json"
    trusted_root(server, root_path)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"app" * 1000)
    server.cli("sign", str(artifact), "--key", f"{project}/ec", "--format", "sigstore")
    bundle = artifact.with_name("app.bin.sigstore.json")
    genuine = server.cli("verify", str(artifact), "--ca", str(root_path), "--json").json()
    assert genuine["valid"] is True, genuine
    assert genuine["timestamped_at"], genuine

    content = json.loads(bundle.read_text())
    emptied = json.loads(json.dumps(content))
    emptied["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] = []
    removed = json.loads(json.dumps(content))
    del removed["verificationMaterial"]["timestampVerificationData"]
    for name, stripped in (("emptied", emptied), ("removed", removed)):
        path = tmp_path / f"{name}.sigstore.json"
        path.write_text(json.dumps(stripped))
        node = node_verify(node_verifier, path, artifact, root_path)
        assert node.startswith("FAILED:"), (name, node)

        refused = server.cli("verify", str(artifact), "--signature", str(path),
                             "--ca", str(root_path), check=False)
        assert refused.returncode == 8, (name, refused)
        assert refused.stderr.startswith("signgate: INVALID app.bin: "), refused.stderr
        assert "no RFC 3161 timestamp" in refused.stderr
        assert "--insecure-allow-untimestamped" in refused.stderr
        as_json = server.cli("verify", str(artifact), "--signature", str(path),
                             "--ca", str(root_path), "--json", check=False)
        assert as_json.returncode == 8
        assert as_json.json()["valid"] is False

        allowed = server.cli("verify", str(artifact), "--signature", str(path),
                             "--ca", str(root_path), "--insecure-allow-untimestamped")
        assert allowed.stdout.startswith(
            f"app.bin: valid: signed by {project}/ec version 1, NOT TIMESTAMPED: judged by "
            "the certificate's validity at the current time"), allowed.stdout
        assert "warning" in allowed.stderr
        assert "current time" in allowed.stderr
        report = server.cli("verify", str(artifact), "--signature", str(path), "--ca",
                            str(root_path), "--insecure-allow-untimestamped", "--json").json()
        assert report["valid"] is True
        assert report["timestamped_at"] is None
        assert "judged by the certificate's validity at the current time" in report["reason"]

    # The option does not make a bad bundle good: a changed file still fails.
    tampered = tmp_path / "tampered" / "app.bin"
    tampered.parent.mkdir()
    tampered.write_bytes(artifact.read_bytes() + b"!")
    bad = server.cli("verify", str(tampered), "--signature",
                     str(tmp_path / "removed.sigstore.json"), "--ca", str(root_path),
                     "--insecure-allow-untimestamped", check=False)
    assert bad.returncode == 8, bad
