"""`signgate verify` offline: signature, chain to the trust anchor, codeSigning, timestamp
and CRLs, for every format that can name its signer; each failure mode says what failed."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signgate.client.offline_verify import verify_file
from signgate.pki.certs import to_pem
from tests.conftest import unique
from tests.support.server import Server


@pytest.fixture(scope="module")
def setup(sqlite_server: Server, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Server, str, Path]:
    server = sqlite_server
    project = unique("verify")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    root = tmp_path_factory.mktemp("anchors") / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    return server, project, root


def other_root(tmp_path: Path) -> Path:
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other", "-keyout",
                    str(tmp_path / "o.key"), "-out", str(other)], capture_output=True,
                   check=True)
    return other


def test_cms_and_raw_verify_offline(setup: tuple[Server, str, Path], tmp_path: Path) -> None:
    server, project, root = setup
    ref = f"{project}/{unique('k')}"
    server.cli("key", "create", ref, "--algorithm", "rsa-3072")
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release" * 10000)
    server.cli("sign", str(artifact), "--key", ref, "--format", "cms")
    server.cli("sign", str(artifact), "--key", ref, "--format", "raw", "--digest", "sha384")
    cert = tmp_path / "k.pem"
    cert.write_text(server.cli("key", "cert", ref).stdout)

    out = server.cli("verify", str(artifact), "--ca", str(root), "--json").json()
    assert out["valid"] is True, out
    assert out["format"] == "cms"  # chosen over .sig: it names its signer
    assert (out["key"], out["key_version"]) == (ref, 1)
    assert out["timestamped_at"]
    assert out["timestamp_authority"].startswith("CN=signgate time")
    assert len(out["chain"]) == 3
    assert out["chain"][-1].startswith("CN=signgate root CA")
    assert len(out["crls"]) == 2  # the issuing CA's CRL and the root's, both fetched

    text = server.cli("verify", str(artifact), "--signature", str(artifact) + ".sig",
                      "--certificate", str(cert), "--ca", str(root)).stdout
    assert text.startswith(f"app.tar.gz: valid: signed by {ref} version 1, timestamped ")
    assert "digest_algorithm: sha384" in text

    # A raw signature does not name its signer: without it, input is missing (exit 7).
    nameless = server.cli("verify", str(artifact), "--signature", str(artifact) + ".sig",
                          "--ca", str(root), check=False)
    assert nameless.returncode == 7
    assert "--certificate" in nameless.stderr

    # Tampered file: both fail, saying why.
    tampered = tmp_path / "t.tar.gz"
    tampered.write_bytes(artifact.read_bytes() + b"!")
    for sig, extra in ((".p7s", []), (".sig", ["--certificate", str(cert)])):
        bad = server.cli("verify", str(tampered), "--signature", str(artifact) + sig,
                         "--ca", str(root), *extra, check=False)
        assert bad.returncode == 8, bad
        assert bad.stderr.startswith("signgate: INVALID t.tar.gz: ")

    # Another trust anchor: not trusted.
    wrong = server.cli("verify", str(artifact), "--ca", str(other_root(tmp_path)),
                       check=False)
    assert wrong.returncode == 8
    assert "not trusted" in wrong.stderr

    # Without a reachable CRL the check fails closed, unless explicitly skipped.
    # (the certificates name the server's public URL, :8080, where nothing listens here; the
    # fallback to the configured server is pointed at a closed port too).
    nowhere = "http://127.0.0.1:9"
    no_crl = server.cli("verify", str(artifact), "--ca", str(root), "--url", nowhere,
                        check=False)
    assert no_crl.returncode == 8, no_crl
    assert "no CRL from" in no_crl.stderr
    skipped = server.cli("verify", str(artifact), "--ca", str(root), "--url", nowhere,
                         "--no-revocation-check", "--json")
    assert "revocation not checked" in skipped.stdout


def test_revoked_key_judged_by_timestamp(setup: tuple[Server, str, Path],
                                        tmp_path: Path) -> None:
    server, project, root = setup
    ref = f"{project}/{unique('leak')}"
    server.cli("key", "create", ref)
    before, after = tmp_path / "before.bin", tmp_path / "after.bin"
    before.write_bytes(b"before the leak")
    after.write_bytes(b"after the leak")
    server.cli("sign", str(before), "--key", ref, "--format", "cms")
    time.sleep(1.1)  # timestamps have one-second resolution
    compromised = datetime.now(UTC)
    time.sleep(1.1)
    server.cli("sign", str(after), "--key", ref, "--format", "cms")
    server.cli("key", "revoke", ref, "--compromised-at",
               compromised.isoformat().replace("+00:00", "Z"))

    good = server.cli("verify", str(before), "--ca", str(root), "--json").json()
    assert good["valid"] is True, good
    assert any(ref in r for r in good["revoked_later"])  # said, but not held against it
    bad = server.cli("verify", str(after), "--ca", str(root), check=False)
    assert bad.returncode == 8
    assert "is revoked as of" in bad.stderr


def test_one_time_certificate_outlived_by_its_timestamp(setup: tuple[Server, str, Path],
                                                        tmp_path: Path) -> None:
    """A one-time key's certificate lives minutes; its timestamped signature stays valid."""
    server, project, root = setup
    ref = f"{project}/{unique('once')}"
    server.cli("key", "create", ref, "--one-time")
    artifact = tmp_path / "once.bin"
    artifact.write_bytes(b"one-time")
    server.cli("sign", str(artifact), "--key", ref, "--format", "cms")
    anchors = [_der(root)]
    later = datetime.now(UTC) + timedelta(hours=2)
    crls = [_crl(server, "/ca/root.crl"), _crl(server, f"/crl/{project}.crl")]
    report = verify_file(artifact, Path(str(artifact) + ".p7s"), "cms", anchors, crls=crls,
                         now=later)
    assert report.valid, report.reason
    assert report.key == ref
    # The same CRLs once past their nextUpdate (7 days): revocation cannot be known, and
    # the check fails closed.
    stale = verify_file(artifact, Path(str(artifact) + ".p7s"), "cms", anchors, crls=crls,
                        now=datetime.now(UTC) + timedelta(days=8))
    assert not stale.valid
    assert "expired" in stale.reason
    assert "fetch a fresh one" in stale.reason


def _der(pem_path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    assert to_pem(cert.public_bytes(Encoding.DER)).strip() == pem_path.read_text().strip()
    return cert.public_bytes(Encoding.DER)


def _crl(server: Server, path: str) -> object:
    from cryptography import x509

    with server.http() as http:
        return x509.load_der_x509_crl(http.get(path).content)


def _artifact(fmt: str, tmp_path: Path) -> Path:
    if fmt == "authenticode":
        from tests.support.pe import hello_exe

        return hello_exe(tmp_path / "app.exe")
    if fmt == "jar":
        import zipfile

        path = tmp_path / "app.jar"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            z.writestr("com/example/App.class", b"\xca\xfe\xba\xbe" + bytes(range(256)) * 8)
            z.writestr("app.properties", "name=app\n")
        return path
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"release" * 3000)
    return path


def _tamper(fmt: str, path: Path) -> None:
    data = bytearray(path.read_bytes())
    if fmt == "jar":
        import zipfile

        with zipfile.ZipFile(path) as z:
            entries = {n: z.read(n) for n in z.namelist()}
        entries["app.properties"] = b"name=evil\n"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, content in entries.items():
                z.writestr(name, content)
        return
    index = 0x200 if fmt == "authenticode" else 10  # inside the PE's first section
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["cms", "authenticode", "jar", "openpgp", "dsse", "sigstore"])
def test_every_format_verifies_offline(setup: tuple[Server, str, Path], tmp_path: Path,
                                       fmt: str) -> None:
    """One verifier for all formats: found from the file itself or the signature beside it;
    formats that carry no certificate get the key version's certificate."""
    server, project, root = setup
    ref = f"{project}/{unique(fmt[:4])}"
    server.cli("key", "create", ref, "--algorithm", "rsa-3072", "--rsa-padding", "pkcs1v15")
    artifact = _artifact(fmt, tmp_path)
    server.cli("sign", str(artifact), "--key", ref, "--format", fmt)
    cert = tmp_path / "cert.pem"
    cert.write_text(server.cli("key", "cert", ref).stdout)
    extra = ["--certificate", str(cert)] if fmt in ("openpgp", "dsse") else []

    if fmt == "sigstore":  # a v0.3 bundle carries only the leaf: the trusted root the rest
        trusted = tmp_path / "trusted_root.json"
        trusted.write_text(server.cli("ca", "trusted-root").stdout)
        extra = ["--ca", str(trusted)]
    else:
        extra += ["--ca", str(root)]
    out = server.cli("verify", str(artifact), *extra, "--json").json()
    assert out["valid"] is True, out
    assert out["format"] == fmt
    assert (out["key"], out["key_version"]) == (ref, 1)
    assert out["timestamped_at"], out  # inside the signature, or the .tsr beside it
    assert len(out["crls"]) == 2

    _tamper(fmt, artifact)
    bad = server.cli("verify", str(artifact), *extra, "--format", fmt, check=False)
    assert bad.returncode == 8, bad
    assert bad.stderr.startswith(f"signgate: INVALID {artifact.name}: "), bad.stderr


def test_crl_files_holding_several_crls(setup: tuple[Server, str, Path], tmp_path: Path) -> None:
    """Item 9: every CRL in a --crl file counts: a PEM bundle (root CRL, then the project
    CA's) and concatenated DER. No CRL can be fetched here (closed ports), so a CRL that is
    not read fails the check closed."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    server, project, root = setup
    ref = f"{project}/{unique('crls')}"
    server.cli("key", "create", ref)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"app" * 100)
    server.cli("sign", str(artifact), "--key", ref, "--format", "cms")
    with server.http() as http:
        crls = [x509.load_der_x509_crl(http.get(path).content)
                for path in ("/ca/root.crl", f"/crl/{project}.crl")]
    pem = tmp_path / "all.crl.pem"
    pem.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in crls))
    der = tmp_path / "all.crl"
    der.write_bytes(b"".join(c.public_bytes(Encoding.DER) for c in crls))
    nowhere = "http://127.0.0.1:9"
    for path in (pem, der):
        out = server.cli("verify", str(artifact), "--ca", str(root), "--url", nowhere,
                         "--crl", str(path), "--json", check=False)
        assert out.returncode == 0, (path.name, out)
        report = out.json()
        assert report["valid"] is True, report
        assert len(report["crls"]) == 2, report

    # Only the root's CRL: the project CA's is missing and cannot be fetched.
    (tmp_path / "root.crl.pem").write_bytes(crls[0].public_bytes(Encoding.PEM))
    one = server.cli("verify", str(artifact), "--ca", str(root), "--url", nowhere,
                     "--crl", str(tmp_path / "root.crl.pem"), check=False)
    assert one.returncode == 8, one
    assert "no CRL from" in one.stderr
    # A file with a CRL and then garbage is refused, not half-read.
    (tmp_path / "junk.pem").write_bytes(
        crls[0].public_bytes(Encoding.PEM)
        + b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    junk = server.cli("verify", str(artifact), "--ca", str(root), "--url", nowhere,
                      "--crl", str(tmp_path / "junk.pem"), check=False)
    assert junk.returncode == 7, junk
    assert "is not a CRL" in junk.stderr


P256_OID = bytes.fromhex("06082a8648ce3d030107")  # prime256v1, in a certificate's SPKI
SHA2_OID = bytes.fromhex("0609608648016503040201")[:-1]  # id-sha256/384/512 but the last arc


def _bad_tag(data: bytes) -> bytes:
    """The first SHA-2 algorithm identifier (SignedData.digestAlgorithms) tagged as a
    private-class value: asn1crypto fails deep inside, and says so over several lines."""
    at = data.index(SHA2_OID)
    return data[:at] + b"\xf9" + data[at + 1:]


def _garbled_bundle(path: Path) -> None:
    """The same inside the bundle's timestamp token (its base64 still valid)."""
    import base64
    import json

    bundle = json.loads(path.read_text())
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    token = base64.b64decode(stamps[0]["signedTimestamp"])
    stamps[0]["signedTimestamp"] = base64.b64encode(_bad_tag(token)).decode()
    path.write_text(json.dumps(bundle))


def _other_curve(path: Path) -> None:
    """The signer certificate's curve OID changed to one cryptography does not know."""
    data = path.read_bytes()
    at = data.index(P256_OID)
    path.write_bytes(data[:at + len(P256_OID) - 1] + b"\x7f" + data[at + len(P256_OID):])


@pytest.mark.parametrize(("fmt", "damaged", "damage"), [
    ("cms", ".p7s", lambda p: p.write_bytes(_bad_tag(p.read_bytes()))),
    ("cms", ".p7s", lambda p: p.write_bytes(b"\x30\x82\x05\x00" + b"\x06\x09garbage!")),
    ("cms", ".p7s", _other_curve),
    ("cms", ".p7s", lambda p: p.write_bytes(p.read_bytes() + b"\0trailing")),
    ("raw", ".sig.tsr", lambda p: p.write_bytes(_bad_tag(p.read_bytes()))),
    ("raw", ".sig", lambda p: p.write_bytes(b"\x30\x82\xff\xff" + b"\x02" * 40)),
    ("sigstore", ".sigstore.json", _garbled_bundle),
], ids=["p7s-bad-tag", "p7s-garbage", "p7s-unknown-curve", "p7s-trailing-bytes",
        "tsr-bad-tag", "sig-garbage", "bundle-token-bad-tag"])
def test_malformed_signature_fails_in_one_line(setup: tuple[Server, str, Path],
                                              tmp_path: Path, fmt: str, damaged: str,
                                              damage: object) -> None:
    """A damaged signature beside a genuine one's file is a failed verification: exit 8
    and one line on stderr, whatever the parser said (asn1crypto's traces are several
    lines; cryptography raises on unknown curves)."""
    server, project, root = setup
    ref = f"{project}/{unique('bad')}"
    server.cli("key", "create", ref, "--algorithm", "ecdsa-p256")
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release" * 3000)
    server.cli("sign", str(artifact), "--key", ref, "--format", fmt)
    cert = tmp_path / "cert.pem"
    cert.write_text(server.cli("key", "cert", ref).stdout)
    suffix = {"cms": ".p7s", "raw": ".sig", "sigstore": ".sigstore.json"}[fmt]
    signature = Path(f"{artifact}{suffix}")
    args = ["verify", str(artifact), "--signature", str(signature), "--no-revocation-check"]
    if fmt == "sigstore":
        trusted = tmp_path / "trusted_root.json"
        trusted.write_text(server.cli("ca", "trusted-root").stdout)
        args += ["--ca", str(trusted)]
    else:
        args += ["--ca", str(root), "--certificate", str(cert)]
    assert server.cli(*args).returncode == 0  # genuine: valid

    damage(Path(f"{artifact}{damaged}"))  # type: ignore[operator]
    bad = server.cli(*args, check=False)
    assert bad.returncode == 8, bad
    assert "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith(f"signgate: INVALID {artifact.name}: "), bad.stderr
    as_json = server.cli(*args, "--json", check=False)
    assert as_json.returncode == 8, as_json
    assert "\n" not in as_json.json()["reason"]
