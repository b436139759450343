"""Authenticode for MSI packages: `sign --format authenticode app.msi` on an MSI made by
msitools' `wixl` writes a package that `osslsigncode verify` accepts against signgate's
root (signer and timestamp), that `signgate verify` accepts, and that msitools still reads
(its streams listed by `msiinfo`, its file extracted by `msiextract`). A tampered package
fails both verifiers. osslsigncode prints its verdicts line by line (and exits 0 on some
failures), so the tests read the lines."""

from __future__ import annotations

import os
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import olefile
import pytest

from tests.conftest import unique
from tests.e2e.test_authenticode import Trust, trust
from tests.support.server import CliResult, Server

WXS = """<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="Hello" Language="1033" Version="1.0.0" Manufacturer="signgate tests"
           UpgradeCode="6b1f5c2e-3f4a-4c8e-9a51-1f0e2d3c4b5a">
    <Package InstallerVersion="200" Compressed="yes" />
    <Media Id="1" Cabinet="app.cab" EmbedCab="yes" />
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="Hello">
          <Component Id="Main" Guid="0c4c5f1a-7d8e-4b2a-9f3c-2e1d0a9b8c7d">
            <File Id="HelloBin" Name="hello.bin" Source="hello.bin" />
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="All" Level="1"><ComponentRef Id="Main" /></Feature>
  </Product>
</Wix>
"""


@dataclass(frozen=True)
class Setup:
    key: str
    trust: Trust
    payload: bytes  # hello.bin, the one file the package installs


@pytest.fixture(scope="module")
def setup(sqlite_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    project = unique("msi")
    sqlite_server.cli("project", "create", project)
    sqlite_server.cli("grant", "add", "admin", "signer", project)
    key = f"{project}/release"
    sqlite_server.cli("key", "create", key, "--algorithm", "ecdsa-p256")
    # Random, so the embedded cabinet stays over the 4096-byte mini-stream cutoff and
    # lies in regular sectors (where the tampering test flips a byte).
    return Setup(key, trust(sqlite_server, project, tmp_path_factory.mktemp("trust")),
                 os.urandom(20_000))


def build_msi(directory: Path, payload: bytes, name: str = "app.msi") -> Path:
    """A real MSI, made by wixl from a one-component, one-file .wxs that installs
    ``payload`` as hello.bin."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hello.bin").write_bytes(payload)
    (directory / "app.wxs").write_text(WXS)
    subprocess.run(["wixl", "-o", name, "app.wxs"], cwd=directory, check=True,
                   capture_output=True, timeout=60)
    return directory / name


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """Another signer's code-signing certificate and key (PEM), for osslsigncode sign."""
    cert, key = tmp / "other.pem", tmp / "other.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other", "-addext",
                    "extendedKeyUsage=codeSigning", "-keyout", str(key), "-out", str(cert)],
                   capture_output=True, check=True)
    return cert, key


def osslsigncode(msi: Path, t: Trust) -> str:
    out = subprocess.run(["osslsigncode", "verify", "-in", str(msi), "-CAfile", str(t.root),
                          "-TSA-CAfile", str(t.root), "-CRLfile", str(t.crls),
                          "-TSA-CRLfile", str(t.crls)],
                         capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def digests(printed: str) -> tuple[str, str]:
    current = re.search(r"Current DigitalSignature\s*:\s*([0-9A-F]+)", printed)
    calculated = re.search(r"Calculated DigitalSignature\s*:\s*([0-9A-F]+)", printed)
    assert current, printed
    assert calculated, printed
    return current.group(1), calculated.group(1)


def streams(msi: Path) -> list[str]:
    out = subprocess.run(["msiinfo", "streams", str(msi)], capture_output=True, text=True,
                         check=True, timeout=60)
    return sorted(out.stdout.split())


def signgate_verify(server: Server, msi: Path, t: Trust) -> CliResult:
    return server.cli("verify", str(msi), "--ca", str(t.root), check=False)


def sign(server: Server, setup: Setup, msi: Path, *extra: str, check: bool = True
         ) -> CliResult:
    return server.cli("sign", str(msi), "--key", setup.key, "--format", "authenticode",
                      *extra, check=check)


def test_signed_msi_verifies_with_osslsigncode_signgate_and_msitools(
        sqlite_server: Server, setup: Setup, tmp_path: Path) -> None:
    msi = build_msi(tmp_path / "build", setup.payload)
    before = msi.read_bytes()
    signed = tmp_path / "signed.msi"
    receipt = sign(sqlite_server, setup, msi, "-o", str(signed), "--json").json()
    assert receipt["signature_file"] == str(signed)
    assert receipt["timestamp_time"]
    assert msi.read_bytes() == before  # -o: the input is left alone

    printed = osslsigncode(signed, setup.trust)
    current, calculated = digests(printed)
    assert current == calculated, printed
    assert "Signature verification: ok" in printed, printed
    assert "Timestamp Server Signature verification: ok" in printed, printed
    assert "Signature CRL verification: ok" in printed, printed
    assert "Text description: app.msi" in printed  # SpcSpOpusInfo
    assert "Number of verified signatures: 1" in printed
    assert "Succeeded" in printed

    result = signgate_verify(sqlite_server, signed, setup.trust)
    assert result.returncode == 0, result
    assert "signed.msi: valid: signed by " + setup.key in result.stdout, result.stdout

    assert streams(signed) == sorted([*streams(msi), "\x05DigitalSignature"])
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["msiextract", "-C", str(extracted), str(signed)], check=True,
                   capture_output=True, timeout=60)
    [installed] = list(extracted.rglob("hello.bin"))
    assert installed.read_bytes() == setup.payload


def test_a_package_over_7_mb_is_written_with_a_difat(sqlite_server: Server, setup: Setup,
                                                     tmp_path: Path) -> None:
    """Past 109 FAT sectors (about 7 MB) the FAT is listed by DIFAT sectors too: the
    signed copy osslsigncode and msiextract read is one. The package was first signed by
    osslsigncode, which writes a file that size as version 4 (4096-byte sectors): signgate
    reads that and replaces the signature."""
    payload = os.urandom(7_500_000)
    unsigned = build_msi(tmp_path / "build", payload)
    cert, key = self_signed(tmp_path)
    msi = tmp_path / "app.msi"
    subprocess.run(["osslsigncode", "sign", "-certs", str(cert), "-key", str(key), "-in",
                    str(unsigned), "-out", str(msi)], capture_output=True, check=True,
                   timeout=60)
    (major,) = struct.unpack_from("<H", msi.read_bytes()[:512], 0x1A)
    assert major == 4
    sign(sqlite_server, setup, msi)
    header = msi.read_bytes()[:512]
    assert struct.unpack_from("<H", header, 0x1A) == (3,)
    (difat_sectors,) = struct.unpack_from("<I", header, 0x48)
    assert difat_sectors >= 1
    printed = osslsigncode(msi, setup.trust)
    assert "Signature verification: ok" in printed, printed
    assert "Succeeded" in printed
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["msiextract", "-C", str(extracted), str(msi)], check=True,
                   capture_output=True, timeout=60)
    [installed] = list(extracted.rglob("hello.bin"))
    assert installed.read_bytes() == payload


def test_tampered_msi_fails_both_verifiers(sqlite_server: Server, setup: Setup,
                                          tmp_path: Path) -> None:
    msi = build_msi(tmp_path, setup.payload)
    sign(sqlite_server, setup, msi)  # in place
    assert "Signature verification: ok" in osslsigncode(msi, setup.trust)

    # One byte of the embedded cabinet, found by an independent reader (olefile).
    with olefile.OleFileIO(str(msi)) as ole:
        [cab] = [e for e in ole.direntries if e is not None and e.entry_type == 2
                 and e.size >= 4096 and not e.name.startswith("\x05")]
        at = (cab.isectStart + 1) * ole.sectorsize + 100
    data = bytearray(msi.read_bytes())
    data[at] ^= 0x01
    tampered = tmp_path / "tampered.msi"
    tampered.write_bytes(bytes(data))

    printed = osslsigncode(tampered, setup.trust)
    current, calculated = digests(printed)
    assert current != calculated, printed
    assert "Signature verification: ok" not in printed
    assert "Succeeded" not in printed
    result = signgate_verify(sqlite_server, tampered, setup.trust)
    assert result.returncode == 8, result
    assert "was modified after it was signed" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_resigning_replaces_the_signature(sqlite_server: Server, setup: Setup,
                                          tmp_path: Path) -> None:
    other = f"{setup.key.split('/')[0]}/{unique('k')}"
    sqlite_server.cli("key", "create", other, "--algorithm", "rsa-3072", "--rsa-padding",
                      "pkcs1v15")
    msi = build_msi(tmp_path, setup.payload)
    sign(sqlite_server, setup, msi)
    sqlite_server.cli("sign", str(msi), "--key", other, "--format", "authenticode")
    printed = osslsigncode(msi, setup.trust)
    assert "Number of verified signatures: 1" in printed, printed
    assert f"CN={other.replace('/', chr(92) + '/')} v1" in printed, printed
    assert "Signature verification: ok" in printed
    assert streams(msi).count("\x05DigitalSignature") == 1
    result = signgate_verify(sqlite_server, msi, setup.trust)
    assert result.returncode == 0, result
    assert f"signed by {other}" in result.stdout


def test_bad_packages_are_refused_in_one_line(sqlite_server: Server, setup: Setup,
                                              tmp_path: Path) -> None:
    good = build_msi(tmp_path / "build", setup.payload).read_bytes()
    cases = {
        "truncated.msi": (good[:1000], "is not an MSI package signgate can sign"),
        "header.msi": (good[:8] + bytes(504) + good[512:], "is not an MSI package"),
    }
    for name, (content, why) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        out = tmp_path / f"signed-{name}"
        result = sign(sqlite_server, setup, path, "-o", str(out), check=False)
        assert result.returncode == 7, (name, result)
        assert why in result.stderr, (name, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert path.read_bytes() == content
        assert not out.exists()
        checked = signgate_verify(sqlite_server, path, setup.trust)
        assert checked.returncode == 8, checked
        assert checked.stderr.count("\n") == 1, checked.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_msi_digital_signature_ex_is_verified_and_kept(sqlite_server: Server, setup: Setup,
                                                     tmp_path: Path) -> None:
    """signtool (and osslsigncode -add-msi-dse) also sign the streams' names, sizes and
    times through \\x05MsiDigitalSignatureEx: signgate verifies such a package, refuses
    one whose metadata changed, and re-signs it keeping the stream (computed anew)."""
    msi = build_msi(tmp_path / "build", setup.payload)
    cert, key = self_signed(tmp_path)
    dse = tmp_path / "dse.msi"
    subprocess.run(["osslsigncode", "sign", "-add-msi-dse", "-certs", str(cert), "-key",
                    str(key), "-in", str(msi), "-out", str(dse)],
                   capture_output=True, check=True, timeout=60)
    assert "\x05MsiDigitalSignatureEx" in streams(dse)
    theirs = sqlite_server.cli("verify", str(dse), "--ca", str(cert), check=False)
    assert theirs.returncode == 0, theirs
    assert "dse.msi: valid: signed by CN=other" in theirs.stdout

    # A stream's modified time (directory entry 1, offset 0x6C), covered only by the Ex.
    with olefile.OleFileIO(str(dse)) as ole:
        at = (ole.first_dir_sector + 1) * ole.sectorsize + 128 + 0x6C
    data = bytearray(dse.read_bytes())
    data[at] ^= 0x01
    touched = tmp_path / "touched.msi"
    touched.write_bytes(bytes(data))
    printed = subprocess.run(["osslsigncode", "verify", "-CAfile", str(cert), "-in",
                              str(touched)], capture_output=True, text=True, timeout=60)
    assert "Succeeded" not in printed.stdout + printed.stderr
    refused = sqlite_server.cli("verify", str(touched), "--ca", str(cert), check=False)
    assert refused.returncode == 8, refused
    assert "MsiDigitalSignatureEx is not the sha256 pre-hash" in refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr

    sign(sqlite_server, setup, dse)  # in place: signgate's signature, the Ex kept
    printed_ours = osslsigncode(dse, setup.trust)
    current = re.search(r"Current MsiDigitalSignatureEx\s*:\s*(\w+)", printed_ours)
    calculated = re.search(r"Calculated MsiDigitalSignatureEx\s*:\s*(\w+)", printed_ours)
    assert current, printed_ours
    assert calculated, printed_ours
    assert current.group(1) == calculated.group(1)
    assert "Signature verification: ok" in printed_ours, printed_ours
    assert "Succeeded" in printed_ours
    ours = signgate_verify(sqlite_server, dse, setup.trust)
    assert ours.returncode == 0, ours
    assert f"signed by {setup.key}" in ours.stdout
