"""Authenticode beyond PE: PowerShell scripts and CAB archives signed by `sign --format
authenticode` (the kind detected from the file) verify with `osslsigncode verify`
against signgate's root, signer and timestamp, and with `signgate verify`; a file changed
after signing fails both. osslsigncode prints its verdicts (some failures exit 0), so
the tests read its lines. One key algorithm: the PE tests cover the matrix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.e2e.test_authenticode import Trust, digests, trust, verify
from tests.support.server import Server

BEGIN = "# SIG # Begin signature block"
END = "# SIG # End signature block"


@pytest.fixture(scope="module")
def key(sqlite_server: Server) -> str:
    project = unique("kinds")
    sqlite_server.cli("project", "create", project)
    sqlite_server.cli("grant", "add", "admin", "signer", project)
    ref = f"{project}/{unique('k')}"
    sqlite_server.cli("key", "create", ref, "--algorithm", "ecdsa-p256")
    return ref


@pytest.fixture(scope="module")
def trusted(sqlite_server: Server, key: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Trust:
    return trust(sqlite_server, key.split("/")[0], tmp_path_factory.mktemp("trust"))


def assert_verified(path: Path, t: Trust) -> None:
    printed = verify(path, t)
    current, calculated = digests(printed)
    assert current == calculated, printed
    assert "Signature verification: ok" in printed, printed
    assert "Timestamp Server Signature verification: ok" in printed, printed
    assert "Number of verified signatures: 1" in printed, printed
    assert "Succeeded" in printed, printed


def assert_refused(path: Path, t: Trust, server: Server, *words: str) -> None:
    printed = verify(path, t)
    assert "Succeeded" not in printed, printed
    assert "Failed" in printed, printed
    ours = server.cli("verify", str(path), "--ca", str(t.root), check=False)
    assert ours.returncode == 8, ours
    assert "Traceback" not in ours.stderr
    assert ours.stderr.count("\n") == 1, ours.stderr
    for word in words:
        assert word in ours.stderr, ours.stderr


def signgate_verifies(server: Server, path: Path, t: Trust) -> dict[str, object]:
    out: dict[str, object] = server.cli("verify", str(path), "--ca", str(t.root),
                                        "--json").json()
    assert out["valid"] is True, out
    assert out["format"] == "authenticode"
    return out


def test_powershell_scripts(sqlite_server: Server, key: str, trusted: Trust,
                            tmp_path: Path) -> None:
    script = tmp_path / "deploy.ps1"
    body = 'Write-Host "Grüße from signgate"\r\n$x = 1\r\n'.encode()
    script.write_bytes(body)
    module = tmp_path / "Tools.psm1"
    module.write_bytes(b"function Get-Answer { 42 }\nExport-ModuleMember Get-Answer\n")
    receipts = sqlite_server.cli("sign", str(script), str(module), "--key", key,
                                 "--format", "authenticode", "--json").json()
    assert all(r["timestamp_time"] for r in receipts), receipts

    signed = script.read_bytes()
    assert signed.startswith(body)  # the text kept, the block appended with its CRLF
    assert signed[len(body):].startswith(f"\r\n{BEGIN}\r\n# ".encode())
    assert signed.endswith(f"\r\n{END}\r\n".encode())
    assert b"\n" not in signed.replace(b"\r\n", b"")
    lf = module.read_bytes()  # an LF module gets an LF block
    assert b"\r" not in lf
    assert lf.endswith(f"\n{END}\n".encode())
    for path in (script, module):
        assert_verified(path, trusted)
        out = signgate_verifies(sqlite_server, path, trusted)
        assert out["details"]["kind"] == "script", out  # type: ignore[index]

    # Signing again replaces the block, in the same place.
    sqlite_server.cli("sign", str(script), "--key", key, "--format", "authenticode")
    again = script.read_bytes().decode()
    assert again.count(BEGIN) == 1
    assert again.startswith(body.decode())
    assert_verified(script, trusted)

    tampered = tmp_path / "tampered.ps1"
    tampered.write_bytes(script.read_bytes().replace(b"$x = 1", b"$x = 2"))
    assert_refused(tampered, trusted, sqlite_server, "was modified after it was signed")
    # Text after the block is covered by no signature: refused, though osslsigncode
    # does not hash it either.
    appended = tmp_path / "appended.ps1"
    appended.write_bytes(script.read_bytes() + b"Remove-Item -Recurse C:\\\r\n")
    ours = sqlite_server.cli("verify", str(appended), "--ca", str(trusted.root), check=False)
    assert ours.returncode == 8, ours
    assert "covered by no signature" in ours.stderr, ours


def gcab(out: Path, *files: Path, compress: bool = False) -> Path:
    subprocess.run(["gcab", "-c" + ("z" if compress else ""), str(out),
                    *(f.name for f in files)], cwd=out.parent, check=True,
                   capture_output=True)
    return out


def test_cab_archives(sqlite_server: Server, key: str, trusted: Trust,
                      tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello from a cabinet\n")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 64)
    archive = gcab(tmp_path / "app.cab", tmp_path / "readme.txt", tmp_path / "data.bin",
                   compress=True)
    unsigned = archive.read_bytes()
    signed = tmp_path / "signed.cab"
    receipt = sqlite_server.cli("sign", str(archive), "--key", key, "--format",
                                "authenticode", "-o", str(signed), "--json").json()
    assert receipt["timestamp_time"]
    assert archive.read_bytes() == unsigned
    assert_verified(signed, trusted)
    assert signgate_verifies(sqlite_server, signed, trusted)["details"]["kind"] == "cab"  # type: ignore[index]
    # Still a cabinet: gcab extracts the same files from the signed archive.
    listed = subprocess.run(["gcab", "-t", str(signed)], capture_output=True, text=True,
                            check=True).stdout
    assert "readme.txt" in listed, listed
    assert "data.bin" in listed, listed
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["gcab", "-x", str(signed), "-C", str(out)], check=True,
                   capture_output=True)
    assert (out / "data.bin").read_bytes() == (tmp_path / "data.bin").read_bytes()

    # Signing the signed archive again reuses its reserved area.
    sqlite_server.cli("sign", str(signed), "--key", key, "--format", "authenticode")
    assert_verified(signed, trusted)

    data = bytearray(signed.read_bytes())
    data[len(unsigned) // 2] ^= 0x01  # a byte of the compressed data
    tampered = tmp_path / "tampered.cab"
    tampered.write_bytes(bytes(data))
    assert_refused(tampered, trusted, sqlite_server, "was modified after it was signed")
