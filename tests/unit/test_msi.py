"""formats/msi.py and the ``msi`` Authenticode kind: the MSI SIP's order of names, what the
digest covers (content and CLSIDs, not the signature streams), the indirect data byte for
byte as osslsigncode writes it, and the server's recomputation (the scan path) agreeing
with the client's. Against real tools: tests/e2e/test_authenticode_msi.py."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats import authenticode, authenticode_files, cfb, msi
from signgate.formats.base import PublicKeyInfo

SHA256 = DigestAlgorithm("sha256")


def name(text: str) -> bytes:
    return text.encode("utf-16-le")


def stream(text: str, data: bytes) -> cfb.Node:
    return cfb.Node(name(text), cfb.STREAM, size=len(data), read=lambda: [data])


def package(tmp_path: Path, *children: cfb.Node, clsid: bytes = b"R" * 16) -> Path:
    path = tmp_path / "p.msi"
    root = cfb.Node(cfb.ROOT_NAME, cfb.ROOT, clsid=clsid, children=list(children))
    with path.open("w+b") as f:
        cfb.write(root, f)
    return path


def test_the_sip_orders_names_by_their_bytes_longer_first_on_a_tie() -> None:
    names = ["b", "B", "ab", "a", "\u0100", "A\u0100"]
    ordered = [n.name.decode("utf-16-le") for n in
               sorted((cfb.Node(name(n), cfb.STREAM) for n in names), key=msi.sip_key)]
    # UTF-16LE bytes compared as bytes (the low byte first), terminator included: "a\0\0"
    # < "ab\0" since NUL < "b"; U+0100 is 00 01, below every ASCII letter's first byte.
    assert ordered == ["\u0100", "A\u0100", "B", "a", "ab", "b"]


def test_the_digest_covers_streams_in_sip_order_then_clsids(tmp_path: Path) -> None:
    sub = cfb.Node(name("S"), cfb.STORAGE, clsid=b"s" * 16, children=[stream("x", b"X" * 5000)])
    path = package(tmp_path, stream("b", b"B"), stream("a", b"A" * 70), sub,
                   stream("\x05DigitalSignature", b"old signature"), stream("empty", b""))
    expected = hashlib.sha256(b"X" * 5000 + b"s" * 16 + b"A" * 70 + b"B" + b"R" * 16).digest()
    # "S" sorts before "a" and "b" (0x53 < 0x61); the signature stream is left out.
    assert msi.digest(path, SHA256).digest == expected
    assert msi.signature(path) == b"old signature"


def test_the_indirect_data_is_osslsigncodes(tmp_path: Path) -> None:
    """The SpcIndirectDataContent osslsigncode 2.9 embeds when it signs an MSI with SHA-256
    (taken from one it signed; only the digest at the end differs)."""
    digest = bytes(range(32))
    content = authenticode_files.kind("msi").indirect_data(SHA256, digest)
    assert content.dump() == bytes.fromhex(
        "30673032060a2b06010401823702011e30240201010410f1100c0000000000c000000000000046"
        "0201000201000201000201000201003031300d060960864801650304020105000420") + digest
    assert authenticode_files.kind("msi").describes(content)
    assert not authenticode_files.kind("pe").describes(content)


def no_key() -> PublicKeyInfo:
    raise AssertionError("an MSI's digest needs no key")


def test_the_server_recomputes_what_the_client_sent(tmp_path: Path) -> None:
    path = package(tmp_path, stream("a", b"content" * 1000), stream("b", b"tiny"))
    client = authenticode.CLIENT
    prepared = client.prepare(path, SHA256, None, no_key)
    assert prepared.params == {"kind": "msi"}
    assert client.recompute(path, SHA256, prepared.params, no_key) == prepared.digest


def test_a_package_changed_after_hashing_is_not_written(tmp_path: Path) -> None:
    path = package(tmp_path, stream("a", b"one" * 2000))
    hashed = msi.digest(path, SHA256)
    package(tmp_path, stream("a", b"two" * 2000))  # same path, other content
    out = tmp_path / "signed.msi"
    with pytest.raises(InvalidInput) as caught:
        msi.write_signed(path, hashed, b"\x30\x00", out)
    assert caught.value.code is ErrorCode.ARTIFACT_CHANGED
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_msi_digital_signature_ex_starts_the_digest_and_is_kept(tmp_path: Path) -> None:
    kids = [stream("a", b"A" * 100), stream("b", b"")]
    root = cfb.Node(cfb.ROOT_NAME, cfb.ROOT, clsid=b"R" * 16, children=kids)
    pre = msi.prehash(root, SHA256)
    path = package(tmp_path, *kids, stream("\x05MsiDigitalSignatureEx", pre))
    hashed = msi.digest(path, SHA256)
    assert hashed.prehash == pre
    assert hashed.digest == hashlib.sha256(pre + b"A" * 100 + b"R" * 16).digest()
    with pytest.raises(InvalidInput, match="is not the sha384 pre-hash"):
        msi.digest(path, DigestAlgorithm("sha384"))  # verifying: the Ex is sha256's
    signing = msi.digest(path, DigestAlgorithm("sha384"), signing=True)  # replaced
    out = tmp_path / "signed.msi"
    msi.write_signed(path, signing, b"\x30\x00", out)
    assert msi.digest(out, DigestAlgorithm("sha384")) == signing
    assert msi.signature(out) == b"\x30\x00"


def test_a_storage_of_many_streams_as_osslsigncode_writes_it(tmp_path: Path) -> None:
    """osslsigncode writes a storage's children as a list (right siblings only), which
    olefile walks one recursive call per sibling: 1,500 of them pass Python's default
    recursion limit, and must still be read (and hash as osslsigncode says)."""
    path = package(tmp_path, *(stream(f"s{i:04d}", b"%08d" % i) for i in range(1500)))
    limit = sys.getrecursionlimit()
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=t", "-keyout",
                    str(key), "-out", str(cert)], capture_output=True, check=True)
    signed = tmp_path / "signed.msi"
    subprocess.run(["osslsigncode", "sign", "-certs", str(cert), "-key", str(key), "-in",
                    str(path), "-out", str(signed)], capture_output=True, check=True)
    printed = subprocess.run(["osslsigncode", "verify", "-CAfile", str(cert), "-in",
                              str(signed)], capture_output=True, text=True).stdout
    assert msi.digest(signed, SHA256).digest.hex().upper() in printed
    assert msi.digest(signed, SHA256) == msi.digest(path, SHA256)
    assert sys.getrecursionlimit() == limit  # raised for the walk only
