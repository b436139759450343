"""Authenticode: `sign --format authenticode` embeds a PKCS#7 signature with an RFC 3161
countersignature into a PE that `osslsigncode verify` accepts against signgate's root, for
the signer and the timestamp. osslsigncode prints its verdicts line by line (and some
checks fail without changing its exit code), so the tests read the lines."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique
from tests.support.pe import hello_exe
from tests.support.server import Server


@dataclass(frozen=True)
class Trust:
    root: Path
    crls: Path  # PEM: the root's CRL and the project's issuing CA's


def trust(server: Server, project: str, tmp: Path) -> Trust:
    root = tmp / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    pems = []
    for path in ("/ca/root.crl", f"/crl/{project}.crl"):
        der = httpx.get(server.url + path, timeout=30).content
        pems.append(subprocess.run(["openssl", "crl", "-inform", "DER"], input=der,
                                   capture_output=True, check=True).stdout.decode())
    crls = tmp / "crls.pem"
    crls.write_text("".join(pems))
    return Trust(root, crls)


def verify(exe: Path, t: Trust, ca: Path | None = None) -> str:
    ca = ca or t.root
    out = subprocess.run(["osslsigncode", "verify", "-in", str(exe), "-CAfile", str(ca),
                          "-TSA-CAfile", str(ca), "-CRLfile", str(t.crls),
                          "-TSA-CRLfile", str(t.crls)],
                         capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def digests(printed: str) -> tuple[str, str]:
    current = re.search(r"Current message digest\s*:\s*([0-9A-F]+)", printed)
    calculated = re.search(r"Calculated message digest\s*:\s*([0-9A-F]+)", printed)
    assert current, printed
    assert calculated, printed
    return current.group(1), calculated.group(1)


@pytest.fixture(scope="module")
def project(sqlite_server: Server) -> str:
    name = unique("pe")
    sqlite_server.cli("project", "create", name)
    sqlite_server.cli("grant", "add", "admin", "signer", name)
    return name


@pytest.mark.parametrize(("alg", "padding", "digest"), [
    ("ecdsa-p256", "pkcs1v15", "sha256"),
    ("ecdsa-p384", "pkcs1v15", "sha384"),
    ("rsa-3072", "pkcs1v15", "sha256"),
])
def test_signed_pe_verifies_with_osslsigncode(sqlite_server: Server, project: str,
                                              tmp_path: Path, alg: str, padding: str,
                                              digest: str) -> None:
    ref = f"{project}/{unique('k')}"
    sqlite_server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
    exe = hello_exe(tmp_path / "hello.exe", overlay=b"odd overlay")  # not 8-aligned
    signed = tmp_path / "signed.exe"
    receipt = sqlite_server.cli("sign", str(exe), "--key", ref, "--format", "authenticode",
                                "--digest", digest, "-o", str(signed), "--json").json()
    assert receipt["signature_file"] == str(signed)
    assert receipt["timestamp_time"]
    t = trust(sqlite_server, project, tmp_path)
    printed = verify(signed, t)
    current, calculated = digests(printed)
    assert current == calculated, printed
    assert f"Message digest algorithm  : {digest.upper()}" in printed
    assert "Signature verification: ok" in printed, printed
    assert "Timestamp Server Signature verification: ok" in printed, printed
    assert "Signature CRL verification: ok" in printed
    assert "Text description: hello.exe" in printed  # SpcSpOpusInfo
    assert "Microsoft Individual Code Signing purpose" in printed  # SpcStatementType
    assert re.search(r"^PE checksum\s*: [0-9A-F]{8}$", printed, re.M)  # one value: they match
    assert "invalid PE checksum" not in printed  # its warning when they differ
    assert "Number of verified signatures: 1" in printed
    assert "Succeeded" in printed
    assert exe.read_bytes() == hello_exe(tmp_path / "again.exe", b"odd overlay").read_bytes()


def test_tampered_pe_and_another_root_fail(sqlite_server: Server, project: str,
                                          tmp_path: Path) -> None:
    ref = f"{project}/{unique('k')}"
    sqlite_server.cli("key", "create", ref, "--algorithm", "ecdsa-p256")
    exe = hello_exe(tmp_path / "app.exe")
    sqlite_server.cli("sign", str(exe), "--key", ref, "--format", "authenticode")  # in place
    t = trust(sqlite_server, project, tmp_path)
    assert "Signature verification: ok" in verify(exe, t)

    data = bytearray(exe.read_bytes())
    data[0x400] ^= 0x01  # a byte of the first section
    tampered = tmp_path / "tampered.exe"
    tampered.write_bytes(bytes(data))
    printed = verify(tampered, t)
    current, calculated = digests(printed)
    assert current != calculated
    assert "Succeeded" not in printed
    assert "Failed" in printed

    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other", "-keyout",
                    str(tmp_path / "o.key"), "-out", str(other)], capture_output=True,
                   check=True)
    printed = verify(exe, t, ca=other)
    assert "Signature verification: ok" not in printed
    assert "Timestamp Server Signature verification: ok" not in printed
    assert "Succeeded" not in printed


def test_resigning_replaces_the_signature(sqlite_server: Server, project: str,
                                          tmp_path: Path) -> None:
    first, second = (f"{project}/{unique('k')}" for _ in range(2))
    sqlite_server.cli("key", "create", first, "--algorithm", "ecdsa-p256")
    sqlite_server.cli("key", "create", second, "--algorithm", "rsa-3072", "--rsa-padding",
                      "pkcs1v15")
    exe = hello_exe(tmp_path / "app.exe", overlay=b"x" * 13)
    sqlite_server.cli("sign", str(exe), "--key", first, "--format", "authenticode")
    once = exe.read_bytes()
    sqlite_server.cli("sign", str(exe), "--key", second, "--format", "authenticode")
    printed = verify(exe, trust(sqlite_server, project, tmp_path))
    assert "Number of verified signatures: 1" in printed
    assert "Signature Index: 1" not in printed
    assert f"CN={second.replace('/', chr(92) + '/')} v1" in printed, printed
    assert "Signature verification: ok" in printed
    assert "Timestamp Server Signature verification: ok" in printed
    current, calculated = digests(printed)
    assert current == calculated
    assert len(exe.read_bytes()) != len(once)  # P-256 and RSA-3072 signatures differ


def test_bad_input_is_refused_cleanly(sqlite_server: Server, project: str,
                                      tmp_path: Path) -> None:
    ref = f"{project}/{unique('k')}"
    sqlite_server.cli("key", "create", ref, "--algorithm", "ecdsa-p256")
    good = hello_exe(tmp_path / "good.exe").read_bytes()
    e_lfanew = int.from_bytes(good[0x3C:0x40], "little")
    cert_dir = e_lfanew + 24 + 112 + 4 * 8  # PE32+: data directory entry 4
    outside = bytearray(good)
    outside[cert_dir:cert_dir + 8] = (len(good) + 4096).to_bytes(4, "little") + \
        (64).to_bytes(4, "little")
    cases = {
        "notpe.exe": (b"#!/bin/sh\necho not a PE\n" * 10, "no MZ signature"),
        "truncated.exe": (good[:e_lfanew + 40], "truncated"),
        "outside.exe": (bytes(outside), "points outside the file"),
    }
    for name, (content, why) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        out = tmp_path / f"signed-{name}"
        for extra in ([], ["-o", str(out)]):
            result = sqlite_server.cli("sign", str(path), "--key", ref, "--format",
                                       "authenticode", *extra, check=False)
            assert result.returncode == 7, (name, result)
            assert why in result.stderr, (name, result.stderr)
            assert "Traceback" not in result.stderr
            assert path.read_bytes() == content
            assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()
                      if p.name.startswith(".")) == []  # no temporary file left


def test_rsa_pss_and_ed25519_keys_are_refused(sqlite_server: Server, project: str,
                                              tmp_path: Path) -> None:
    exe = hello_exe(tmp_path / "hello.exe")
    before = exe.read_bytes()
    for alg, padding, word in [("rsa-3072", "pss", "PSS"), ("ed25519", "pss", "ed25519")]:
        ref = f"{project}/{unique('refused')}"
        sqlite_server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
        refused = sqlite_server.cli("sign", str(exe), "--key", ref, "--format",
                                    "authenticode", check=False)
        assert refused.returncode == 7, refused
        assert word in refused.stderr
    assert exe.read_bytes() == before
