"""Authenticode: `sign --format authenticode` embeds a PKCS#7 signature with an RFC 3161
countersignature into a PE that `osslsigncode verify` accepts against signgate's root, for
the signer and the timestamp. osslsigncode prints its verdicts line by line (and some
checks fail without changing its exit code), so the tests read the lines."""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signgate.client.offline_verify import verify_file
from tests.conftest import unique
from tests.support.pe import (
    certificate_table,
    hello_exe,
    win_certificate,
    with_certificate_table,
)
from tests.support.server import CliResult, Server


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


def verify(exe: Path, t: Trust, ca: Path | None = None, *extra: str) -> str:
    ca = ca or t.root
    out = subprocess.run(["osslsigncode", "verify", "-in", str(exe), "-CAfile", str(ca),
                          "-TSA-CAfile", str(ca), "-CRLfile", str(t.crls),
                          "-TSA-CRLfile", str(t.crls), *extra],
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


# The attack corpus: each case is built from a genuine signgate signature, and
# osslsigncode's verdict is asserted beside signgate's (osslsigncode exits 0 on some
# failures, so its printed lines are read).

@dataclass(frozen=True)
class Genuine:
    exe: Path  # signed by signgate, verified by both tools
    signed_data: bytes  # its PKCS#7 SignedData, exactly
    trust: Trust


@pytest.fixture(scope="module")
def genuine(sqlite_server: Server, project: str,
            tmp_path_factory: pytest.TempPathFactory) -> Genuine:
    tmp = tmp_path_factory.mktemp("genuine")
    ref = f"{project}/{unique('corpus')}"
    sqlite_server.cli("key", "create", ref, "--algorithm", "ecdsa-p256")
    exe = hello_exe(tmp / "genuine.exe")
    sqlite_server.cli("sign", str(exe), "--key", ref, "--format", "authenticode")
    t = trust(sqlite_server, project, tmp)
    assert "Succeeded" in verify(exe, t)
    table = certificate_table(exe)
    (length,) = struct.unpack_from("<I", table)
    der = table[8:length]
    der = der[:len(cms.ContentInfo.load(der).dump())]  # without the zero padding
    return Genuine(exe, der, t)


def signgate_verify(server: Server, exe: Path, t: Trust) -> CliResult:
    return server.cli("verify", str(exe), "--ca", str(t.root), check=False)


def assert_one_line(result: CliResult, exit_code: int, *words: str) -> None:
    assert result.returncode == exit_code, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("signgate: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def assert_not_resigned(server: Server, exe: Path, project: str) -> None:
    """Signing the file again is refused before any key is used, and it is left as is."""
    before = exe.read_bytes()
    ref = f"{project}/{unique('resign')}"
    server.cli("key", "create", ref, "--algorithm", "ecdsa-p256")
    refused = server.cli("sign", str(exe), "--key", ref, "--format", "authenticode",
                         check=False)
    assert_one_line(refused, 7, "is not a PE file signgate can sign")
    assert exe.read_bytes() == before


def test_second_win_certificate_is_refused(sqlite_server: Server, project: str,
                                           genuine: Genuine, tmp_path: Path) -> None:
    """V4: a junk WIN_CERTIFICATE after the genuine one, which no signature covers."""
    exe = with_certificate_table(
        genuine.exe, certificate_table(genuine.exe) + win_certificate(b"\x30\x03\x02\x01\x01"),
        tmp_path / "second.exe")
    printed = verify(exe, genuine.trust)
    assert "Corrupted attribute certificate table" in printed, printed
    assert "Failed" in printed
    assert "Succeeded" not in printed
    assert_one_line(signgate_verify(sqlite_server, exe, genuine.trust), 8,
                    "INVALID second.exe: not a validly signed PE file",
                    "holds 16 bytes after the signature's padded WIN_CERTIFICATE")
    assert_not_resigned(sqlite_server, exe, project)


def test_data_appended_inside_the_win_certificate_is_refused(
        sqlite_server: Server, project: str, genuine: Genuine, tmp_path: Path) -> None:
    """V5, the CVE-2013-3900 pattern: bytes after the PKCS#7 inside its WIN_CERTIFICATE
    (dwLength and the directory entry grown to match, checksum fixed). osslsigncode, like
    Windows without EnableCertPaddingCheck, accepts the file; signgate refuses it."""
    payload = b"MZ payload smuggled past the signature" * 4
    exe = with_certificate_table(genuine.exe, win_certificate(genuine.signed_data, payload),
                                 tmp_path / "appended.exe")
    printed = verify(exe, genuine.trust)
    assert "Signature verification: ok" in printed, printed
    assert "Succeeded" in printed  # osslsigncode does not look: the reason for this check
    assert "invalid PE checksum" not in printed
    assert_one_line(signgate_verify(sqlite_server, exe, genuine.trust), 8,
                    "not a validly signed PE file", "CVE-2013-3900",
                    "bytes after its SignedData")
    assert_not_resigned(sqlite_server, exe, project)

    # Non-zero bytes in the alignment padding: the same, within the 8-byte padding.
    padded = win_certificate(genuine.signed_data)
    if len(padded) > 8 + len(genuine.signed_data):
        exe = with_certificate_table(genuine.exe, padded[:-1] + b"\x01",
                                     tmp_path / "padding.exe")
        assert_one_line(signgate_verify(sqlite_server, exe, genuine.trust), 8,
                        "padding after its signature is not zeros")


def test_nested_signature_from_a_foreign_key_is_refused(
        sqlite_server: Server, genuine: Genuine, tmp_path: Path) -> None:
    """A second, nested signature (SPC_NESTED_SIGNATURE, 1.3.6.1.4.1.311.2.4.1) by a
    self-signed key, added by osslsigncode to the genuine one: signgate verifies one
    signature and refuses a file carrying another it has not judged."""
    key, cert = tmp_path / "foreign.key", tmp_path / "foreign.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=foreign", "-keyout",
                    str(key), "-out", str(cert), "-addext", "extendedKeyUsage=codeSigning"],
                   capture_output=True, check=True)
    exe = tmp_path / "nested.exe"
    subprocess.run(["osslsigncode", "sign", "-nest", "-certs", str(cert), "-key", str(key),
                    "-in", str(genuine.exe), "-out", str(exe)], capture_output=True,
                   check=True)
    printed = verify(exe, genuine.trust)
    primary, _, nested = printed.partition("Signature Index: 1")
    assert "Signature verification: ok" in primary, printed
    assert nested, printed  # osslsigncode sees the nested signature ...
    assert "Signature verification: failed" in nested, printed  # ... and fails it
    assert_one_line(signgate_verify(sqlite_server, exe, genuine.trust), 8,
                    "INVALID nested.exe", "nested signature (1.3.6.1.4.1.311.2.4.1)")


def test_malformed_signed_pe_fails_verification_in_one_line(
        sqlite_server: Server, genuine: Genuine, tmp_path: Path) -> None:
    """V7: a signed PE whose headers or signature are damaged is a failed verification
    (exit 8, one line), not "not a PE file signgate can sign" (7) nor a parser trace."""
    data = genuine.exe.read_bytes()
    truncated = tmp_path / "truncated.exe"
    truncated.write_bytes(data[:-100])  # the table now points past the end
    garbled = bytearray(genuine.signed_data)
    garbled[30] ^= 0xFF  # inside digestAlgorithms: a tag that is not one
    cases = [(truncated, "not a validly signed PE file: certificate table"),
             (with_certificate_table(genuine.exe, win_certificate(bytes(garbled)),
                                     tmp_path / "garbled.exe"), "malformed CMS signature"),
             (with_certificate_table(genuine.exe,
                                     win_certificate(genuine.signed_data[:-50]),
                                     tmp_path / "cut.exe"), "not a validly signed PE file")]
    for exe, why in cases:
        printed = verify(exe, genuine.trust)
        assert "Failed" in printed, printed
        assert "Succeeded" not in printed
        assert_one_line(signgate_verify(sqlite_server, exe, genuine.trust), 8,
                        f"INVALID {exe.name}: ", why)


def test_certificate_expired_at_verification_time(
        sqlite_server: Server, project: str, tmp_path: Path) -> None:
    """A one-time key's certificate lives minutes. Two hours later, its signature with a
    timestamp from before expiry is valid; the same signature with the timestamp removed
    is not (nothing proves it was made while the certificate was valid). osslsigncode
    verifying at the same time (-time) agrees."""
    ref = f"{project}/{unique('once')}"
    sqlite_server.cli("key", "create", ref, "--one-time", "--algorithm", "ecdsa-p256")
    stamped = hello_exe(tmp_path / "stamped.exe")
    sqlite_server.cli("sign", str(stamped), "--key", ref, "--format", "authenticode")
    t = trust(sqlite_server, project, tmp_path)
    table = certificate_table(stamped)
    info = cms.ContentInfo.load(table[8:struct.unpack_from("<I", table)[0]])
    signed = info["content"]
    signer = signed["signer_infos"][0]
    assert signer["unsigned_attrs"].native  # the timestamp
    signer["unsigned_attrs"] = None
    signed["signer_infos"] = cms.SignerInfos([signer])
    info["content"] = signed
    unstamped = with_certificate_table(stamped, win_certificate(info.dump()),
                                       tmp_path / "unstamped.exe")

    later = datetime.now(UTC) + timedelta(hours=2)
    anchors = [x509.load_pem_x509_certificate(t.root.read_bytes()).public_bytes(Encoding.DER)]
    crls = [x509.load_pem_x509_crl(b"-----BEGIN" + pem)
            for pem in t.crls.read_bytes().split(b"-----BEGIN")[1:]]
    at = str(int(later.timestamp()))

    good = verify_file(stamped, None, "authenticode", anchors, crls=crls, now=later)
    assert good.valid, good.reason
    assert good.timestamped_at is not None
    assert good.timestamped_at < later
    assert "Succeeded" in verify(stamped, t, None, "-time", at)

    # Unstamped, but otherwise intact: valid now, while the certificate is ...
    now = verify_file(unstamped, None, "authenticode", anchors, crls=crls)
    assert now.valid, now.reason
    assert now.timestamped_at is None
    assert "Succeeded" in verify(unstamped, t)
    # ... and not two hours later.
    expired = verify_file(unstamped, None, "authenticode", anchors, crls=crls, now=later)
    assert not expired.valid
    assert "the certificate chain is not trusted" in expired.reason, expired.reason
    printed = verify(unstamped, t, None, "-time", at)
    assert "certificate has expired" in printed, printed
    assert "Failed" in printed
    assert "Succeeded" not in printed
