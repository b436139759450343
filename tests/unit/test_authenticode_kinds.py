"""The Authenticode file kinds (formats/authenticode_files.py and one module per kind),
checked against osslsigncode as the peer: files it signs verify with signgate's verifier
(same digest, same indirect data, byte for byte), and the seam refuses a signature of
another kind or an unknown kind."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats import authenticode, authenticode_files, registry
from signgate.formats.base import Chain, FormatRequest, SignerKey
from signgate.pki import signed_data as sd
from tests.unit.test_pe import _signer

SCRIPTS = {
    "crlf.ps1": 'Write-Host "héllo"\r\n# comment\r\n'.encode(),
    "bom-lf.psm1": b"\xef\xbb\xbffunction F { 1 }\n",
    "utf16.psd1": b"\xff\xfe" + "@{ ModuleVersion = '1.0' }\r\n".encode("utf-16-le"),
}
SIGNER = SignerKey("p/k", 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PKCS1V15, "",
                   datetime.now(UTC))


def osslsigncode_sign(tmp: Path, unsigned: Path) -> tuple[Path, bytes]:
    key, cert = _signer(tmp)
    (tmp / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp / "c.der").write_bytes(cert)
    out = unsigned.with_name("signed-" + unsigned.name)
    subprocess.run(["osslsigncode", "sign", "-certs", str(tmp / "c.der"), "-key",
                    str(tmp / "k.pem"), "-in", str(unsigned), "-out", str(out)],
                   check=True, capture_output=True)
    return out, cert


def gcab(tmp: Path) -> Path:
    (tmp / "a.txt").write_text("hello\n")
    (tmp / "b.bin").write_bytes(bytes(range(256)) * 40)
    subprocess.run(["gcab", "-cz", "app.cab", "a.txt", "b.bin"], cwd=tmp, check=True,
                   capture_output=True)
    return tmp / "app.cab"


@pytest.mark.parametrize("name", [*SCRIPTS, "app.cab"])
def test_files_osslsigncode_signs_verify_with_signgate(tmp_path: Path, name: str) -> None:
    if name in SCRIPTS:
        unsigned = tmp_path / name
        unsigned.write_bytes(SCRIPTS[name])
    else:
        unsigned = gcab(tmp_path)
    signed, cert = osslsigncode_sign(tmp_path, unsigned)
    kind = authenticode_files.detect(signed)
    assert kind.name == ("cab" if name.endswith(".cab") else "script")
    evidence = authenticode.VERIFIER.verify(signed, None, ())
    assert evidence.signer == cert
    # The digest of the unsigned file is the one osslsigncode signed, and the indirect
    # data signgate's server would build for it is osslsigncode's, byte for byte.
    digest = kind.digest(unsigned, DigestAlgorithm.SHA256).digest
    assert evidence.details["digest"] == f"sha256:{digest.hex()}"
    blob = kind.signature(signed)
    assert blob is not None
    ours = kind.indirect_data(DigestAlgorithm.SHA256, digest)
    assert sd.load_signed_data(blob)["encap_content_info"]["content"].contents == \
        ours.contents

    data = bytearray(signed.read_bytes())
    data[len(SCRIPTS.get(name, b"")) // 2 or 200] ^= 0x02  # inside the text / the data
    tampered = tmp_path / ("tampered-" + name)
    tampered.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="modified after it was signed"):
        authenticode.VERIFIER.verify(tampered, None, ())


def _sign(tmp: Path, path: Path, params: dict[str, str]) -> bytes:
    key, cert = _signer(tmp)
    prepared = authenticode.CLIENT.prepare(path, DigestAlgorithm.SHA256, None,
                                           lambda: pytest.fail("no key lookup needed"))
    request = FormatRequest(DigestAlgorithm.SHA256, prepared.digest, path.name,
                            datetime.now(UTC), params)
    tbs = authenticode.BUILDER.prepare(SIGNER, request)
    return authenticode.BUILDER.assemble(SIGNER, request, tbs,
                                         key.sign(tbs.message, ec.ECDSA(hashes.SHA256())),
                                         Chain(cert, ()), None)


def test_the_kind_travels_and_is_checked(tmp_path: Path) -> None:
    script = tmp_path / "run.ps1"
    script.write_bytes(b"Get-Date\n")
    prepared = authenticode.CLIENT.prepare(script, DigestAlgorithm.SHA256, None,
                                           lambda: pytest.fail("unused"))
    assert prepared.params == {"kind": "script"}
    registry.check_params("authenticode", prepared.params)
    # A server that built PE indirect data (an old one, without kinds) is refused.
    as_pe = _sign(tmp_path, script, {})
    with pytest.raises(VerificationFailed, match="not over a PowerShell script"):
        authenticode.CLIENT.finish(script, prepared, as_pe, tmp_path / "out.ps1")
    assert not (tmp_path / "out.ps1").exists()
    good = _sign(tmp_path, script, prepared.params)
    authenticode.CLIENT.finish(script, prepared, good, tmp_path / "out.ps1")
    assert authenticode.VERIFIER.verify(tmp_path / "out.ps1", None, ()).details["kind"] \
        == "script"
    # The same signature moved into a CAB is not over a CAB.
    cab = gcab(tmp_path)
    hashed = authenticode_files.kind("cab").digest(cab, DigestAlgorithm.SHA256,
                                                   keep_copy=True)
    authenticode_files.kind("cab").write_signed(cab, hashed, good, tmp_path / "moved.cab")
    with pytest.raises(VerificationFailed, match="not over a CAB archive"):
        authenticode.VERIFIER.verify(tmp_path / "moved.cab", None, ())

    request = FormatRequest(DigestAlgorithm.SHA256, bytes(32), "x", datetime.now(UTC),
                            {"kind": "elf"})
    with pytest.raises(InvalidInput, match="unknown Authenticode file kind 'elf'"):
        authenticode.BUILDER.check(SIGNER, request)


@pytest.mark.parametrize(("content", "why"), [
    (b"", "it is empty"),
    (b"\r\n# SIG # Begin signature block\r\n# SIG # End signature block\r\n",
     "no text before its signature block"),
    (b"\xff\xfeW\x00r\x00i", "not UTF-16LE text"),
    (b"caf\xe9\r\n", "not UTF-8 text"),
    (b"x\r\n# SIG # Begin signature block\r\n# AAAA\r\n", "not one '# SIG # Begin"),
    (b"x\r\n# SIG # Begin signature block\r\n# !!\r\n# SIG # End signature block\r\n",
     "base64 DER"),
])
def test_malformed_scripts_are_refused(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "bad.ps1"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=why):
        authenticode.CLIENT.prepare(path, DigestAlgorithm.SHA256, None,
                                    lambda: pytest.fail("unused"))


def test_malformed_cabs_are_refused(tmp_path: Path) -> None:
    good = gcab(tmp_path).read_bytes()
    cases = {
        "truncated": (good[:20], "truncated"),
        "size": (good + b"junk", "is not the file's size"),
        "set": (good[:30] + b"\x02\x00" + good[32:], "multi-cabinet set"),
    }
    for name, (content, why) in cases.items():
        path = tmp_path / f"{name}.cab"
        path.write_bytes(content)
        with pytest.raises(InvalidInput, match=why):
            authenticode.CLIENT.prepare(path, DigestAlgorithm.SHA256, None,
                                        lambda: pytest.fail("unused"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no copy left
