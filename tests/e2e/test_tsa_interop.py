"""The JDK's jarsigner timestamps a JAR with signgate's TSA (`-tsa URL/tsa`) and, given
a truststore holding signgate's root, accepts the TSA's chain. jarsigner exits 0 either
way, so these tests read what it prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.conftest import unique

# SQLite alone: jarsigner and osslsigncode judge the TSA, which the database does not shape
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server

PASS = "changeit"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=120)
    assert out.returncode == 0, out
    return out


def test_jarsigner_timestamps_with_our_tsa(server: Server, tmp_path: Path) -> None:
    alias = unique("dev")
    run("keytool", "-genkeypair", "-alias", alias, "-keyalg", "EC", "-groupname",
        "secp256r1", "-keystore", "signer.p12", "-storetype", "PKCS12", "-storepass", PASS,
        "-dname", "CN=jar developer", "-validity", "2", cwd=tmp_path)
    (tmp_path / "hello.txt").write_text("hello\n")
    run("jar", "cf", "app.jar", "hello.txt", cwd=tmp_path)
    before = len(server.cli("audit", "log", "--action", "timestamp.issue", "--json").json())
    run("jarsigner", "-keystore", "signer.p12", "-storepass", PASS, "-tsa",
        f"{server.url}/tsa", "app.jar", alias, cwd=tmp_path)
    after = server.cli("audit", "log", "--action", "timestamp.issue", "--json").json()
    assert len(after) == before + 1  # the token jarsigner embedded is on the record
    assert after[-1]["outcome"] == "allowed"

    (tmp_path / "root.pem").write_text(server.cli("ca", "cert").stdout)
    run("keytool", "-importcert", "-alias", "signgate-root", "-file", "root.pem",
        "-keystore", "trust.p12", "-storetype", "PKCS12", "-storepass", PASS, "-noprompt",
        cwd=tmp_path)
    trusted = run("jarsigner", "-verify", "-verbose", "-certs", "-keystore", "trust.p12",
                  "-storepass", PASS, "app.jar", cwd=tmp_path).stdout
    assert 'Timestamped by "CN=signgate time-stamp authority, O=signgate"' in trusted
    assert "jar verified." in trusted
    assert "Invalid TSA certificate chain" not in trusted

    untrusted = run("jarsigner", "-verify", "-verbose", "-certs", "app.jar",
                    cwd=tmp_path).stdout
    assert "Invalid TSA certificate chain" in untrusted  # the root is what makes it valid


def test_osslsigncode_timestamps_with_our_tsa(server: Server, tmp_path: Path) -> None:
    """osslsigncode -ts URL/tsa on a PowerShell script (Authenticode for scripts); its
    verify prints 'Succeeded' even when the timestamp check failed, so read the line."""
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "dev.key",
        "-out", "dev.pem", "-subj", "/CN=script developer", "-days", "2", "-addext",
        "extendedKeyUsage=codeSigning", "-addext", "keyUsage=digitalSignature", cwd=tmp_path)
    (tmp_path / "hello.ps1").write_bytes(b'Write-Host "hello"\r\n')
    run("osslsigncode", "sign", "-certs", "dev.pem", "-key", "dev.key", "-ts",
        f"{server.url}/tsa", "-in", "hello.ps1", "-out", "signed.ps1", cwd=tmp_path)
    (tmp_path / "root.pem").write_text(server.cli("ca", "cert").stdout)
    crl = tmp_path / "root-crl.der"
    crl.write_bytes(httpx.get(f"{server.url}/ca/root.crl", timeout=30).content)
    run("openssl", "crl", "-inform", "DER", "-in", str(crl), "-out", "root-crl.pem",
        cwd=tmp_path)
    base = ["osslsigncode", "verify", "-CAfile", "dev.pem", "-TSA-CRLfile", "root-crl.pem",
            "-in", "signed.ps1"]
    good = subprocess.run([*base, "-TSA-CAfile", "root.pem"], capture_output=True,
                          text=True, cwd=tmp_path)
    out = good.stdout + good.stderr
    assert "Timestamp Server Signature verification: ok" in out, out
    assert "Signature verification: ok" in out
    wrong = subprocess.run([*base, "-TSA-CAfile", "dev.pem"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert "Timestamp Server Signature verification: failed" in wrong.stdout + wrong.stderr
