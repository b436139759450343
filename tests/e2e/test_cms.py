"""Detached CMS: `sign --format cms` writes FILE.p7s that `openssl cms -verify` accepts
against signgate's root (code-signing certificates need `-purpose any`: openssl's default
purpose is S/MIME), with the certificate chain and an RFC 3161 timestamp inside."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import unique
from tests.support.server import Server


def cms_verify(p7s: Path, content: Path, root: Path, *extra: str
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(p7s), "-content", str(content), "-CAfile", str(root),
                           "-out", "/dev/null", *extra], capture_output=True, text=True)


def test_cms_signatures_verify_with_openssl(server: Server, tmp_path: Path) -> None:
    project = unique("cms")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 5000)
    keys = [("ecdsa-p256", "pss", "sha256"), ("ecdsa-p384", "pss", "sha384"),
            ("rsa-3072", "pss", "sha256"), ("rsa-3072", "pkcs1v15", "sha512")]
    for i, (alg, padding, digest) in enumerate(keys):
        ref = f"{project}/k{i}"
        server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
        receipt = server.cli("sign", str(artifact), "--key", ref, "--format", "cms",
                             "--digest", digest, "--json").json()
        p7s = Path(receipt["signature_file"])
        assert p7s.name == "release.tar.gz.p7s"
        assert receipt["format"] == "cms"
        ok = cms_verify(p7s, artifact, root, "-purpose", "any")
        assert "CMS Verification successful" in ok.stderr, (alg, padding, ok)
        printed = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER",
                                  "-in", str(p7s)], capture_output=True, text=True).stdout
        assert "id-smime-aa-timeStampToken" in printed  # timestamped inside
        escaped = ref.replace("/", "\\/")  # openssl prints '/' in a name as '\/'
        assert f"CN={escaped} v1" in printed  # the signer certificate travels with it
        # The code-signing EKU is not an S/MIME purpose: openssl's default refuses it.
        assert "CMS Verification successful" not in cms_verify(p7s, artifact, root).stderr

    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(artifact.read_bytes() + b"!")
    bad = cms_verify(artifact.with_name("release.tar.gz.p7s"), tampered, root, "-purpose",
                     "any")
    assert bad.returncode != 0
    assert "CMS Verification successful" not in bad.stderr
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other", "-keyout",
                    str(tmp_path / "o.key"), "-out", str(other)], capture_output=True,
                   check=True)
    wrong_root = cms_verify(artifact.with_name("release.tar.gz.p7s"), artifact, other,
                            "-purpose", "any")
    assert "CMS Verification successful" not in wrong_root.stderr

    server.cli("key", "create", f"{project}/ed", "--algorithm", "ed25519")
    refused = server.cli("sign", str(artifact), "--key", f"{project}/ed", "--format", "cms",
                         check=False)
    assert refused.returncode == 7
    assert "ed25519" in refused.stderr
