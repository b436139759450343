"""PE parsing, the Authenticode image hash and the signed copy (formats/pe.py), checked
against osslsigncode and a word-by-word PE checksum; malformed PEs are refused clearly."""

from __future__ import annotations

import random
import re
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats import authenticode, pe
from signgate.formats.base import Chain, FormatRequest, SignerKey
from tests.support.pe import hello_exe
from tests.support.pe import pe_checksum as reference_checksum


def osslsigncode_digest(exe: Path, tmp: Path) -> tuple[str, str]:
    """(digest osslsigncode signed, digest it recomputes) for ``exe``, signed with a
    throwaway local key."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=t", "-keyout",
                    str(tmp / "t.key"), "-out", str(tmp / "t.pem")], capture_output=True,
                   check=True)
    signed = tmp / "ossl.exe"
    signed.unlink(missing_ok=True)
    subprocess.run(["osslsigncode", "sign", "-certs", str(tmp / "t.pem"), "-key",
                    str(tmp / "t.key"), "-in", str(exe), "-out", str(signed)],
                   capture_output=True, check=True)
    out = subprocess.run(["osslsigncode", "verify", "-in", str(signed)], capture_output=True,
                         text=True).stdout
    current = re.search(r"Current message digest\s*:\s*([0-9A-F]+)", out)
    calculated = re.search(r"Calculated message digest\s*:\s*([0-9A-F]+)", out)
    assert current, out
    assert calculated, out
    return current.group(1).lower(), calculated.group(1).lower()


@pytest.mark.parametrize("overlay", [b"", b"odd", b"12345678"])
def test_image_hash_matches_osslsigncode(tmp_path: Path, overlay: bytes) -> None:
    exe = hello_exe(tmp_path / "hello.exe", overlay)
    ours = pe.image_digest(exe, DigestAlgorithm.SHA256)
    signed_by_ossl, recomputed = osslsigncode_digest(exe, tmp_path)
    assert ours.digest.hex() == signed_by_ossl == recomputed
    assert ours.layout.pe32_plus
    assert ours.layout.cert_table_offset == 0
    # ... and of the file osslsigncode signed (its table excluded, no padding added)
    assert pe.image_digest(tmp_path / "ossl.exe", DigestAlgorithm.SHA256).digest == \
        ours.digest


def test_signed_copy_layout_and_checksum(tmp_path: Path) -> None:
    exe = hello_exe(tmp_path / "hello.exe", b"odd overlay")
    original = exe.read_bytes()
    image = pe.image_digest(exe, DigestAlgorithm.SHA384)
    out = tmp_path / "out.exe"
    pe.write_signed(exe, image, b"\x30\x03\x02\x01\x01", out)
    data = out.read_bytes()
    layout = pe.layout_of(out)
    assert exe.read_bytes() == original
    assert layout.cert_table_offset == (len(original) + 7) & ~7
    assert data[:len(original)][:layout.checksum_offset] == original[:layout.checksum_offset]
    assert data[len(original):layout.cert_table_offset] == b"\0" * image.layout.padding
    assert image.layout.padding == 5
    table = data[layout.cert_table_offset:]
    assert len(table) == layout.cert_table_size == 16
    assert struct.unpack_from("<IHH", table) == (16, 0x0200, 0x0002)
    (stored,) = struct.unpack_from("<I", data, layout.checksum_offset)
    assert stored == reference_checksum(data, layout.checksum_offset)
    # The digest sent before signing is the digest of the signed file.
    assert pe.image_digest(out, DigestAlgorithm.SHA384).digest == image.digest

    # Re-signing replaces the table instead of adding one.
    again = tmp_path / "again.exe"
    blob = b"\x30\x26" + b"\x05\x00" * 19  # a DER SEQUENCE of 19 NULLs, 40 bytes
    pe.write_signed(out, pe.image_digest(out, DigestAlgorithm.SHA384), blob, again)
    layout2 = pe.layout_of(again)
    assert layout2.cert_table_offset == layout.cert_table_offset
    assert again.stat().st_size == layout2.cert_table_offset + 48
    assert pe.certificate_table(again)[1] == blob


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-write"])
def test_kept_copy_is_the_signed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      kernel_copy: bool) -> None:
    """The copy a signing keeps (made by the kernel and read mapped, or read and written
    where the file system cannot) becomes exactly the signed file: the same bytes, digest
    and checksum as a signed copy made afresh from the source, over several chunks, with
    an old certificate table dropped; a refused signing leaves no copy behind."""
    monkeypatch.setattr(pe, "CHUNK", 1 << 16)
    if not kernel_copy:
        monkeypatch.delattr(pe.os, "copy_file_range")
    exe = hello_exe(tmp_path / "hello.exe", random.Random(5).randbytes(300_001))
    signed = tmp_path / "signed.exe"
    pe.write_signed(exe, pe.image_digest(exe, DigestAlgorithm.SHA256), b"\x30\x00", signed)
    before = set(tmp_path.iterdir())
    kept = pe.image_digest(signed, DigestAlgorithm.SHA256, keep_copy=True)
    assert kept.copy is not None
    assert kept.copy.path.stat().st_size == kept.layout.content_end  # old table dropped
    fresh = pe.image_digest(signed, DigestAlgorithm.SHA256)
    assert (kept.digest, kept.layout) == (fresh.digest, fresh.layout)
    assert kept.checksum.value(1) == fresh.checksum.value(1)
    blob = b"\x30\x03\x02\x01\x07"
    pe.write_signed(signed, kept, blob, tmp_path / "a.exe")
    pe.write_signed(signed, fresh, blob, tmp_path / "b.exe")
    assert (tmp_path / "a.exe").read_bytes() == (tmp_path / "b.exe").read_bytes()
    assert set(tmp_path.iterdir()) - before == {tmp_path / "a.exe", tmp_path / "b.exe"}
    refused = pe.image_digest(signed, DigestAlgorithm.SHA256, keep_copy=True)
    assert refused.copy is not None
    refused.copy.discard()
    assert set(tmp_path.iterdir()) - before == {tmp_path / "a.exe", tmp_path / "b.exe"}


def test_checksum_of_chunks_at_any_offset() -> None:
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(5001))
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 6))
        summed = pe._Checksum()
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            summed.add(data[start:end], start)
        assert summed.value(len(data)) == reference_checksum(data, len(data) + 10)
    ones = pe._Checksum()
    ones.add(b"\xff\xff" * 3, 0)  # a non-zero multiple of 0xFFFF stays 0xFFFF
    assert ones.value(0) == reference_checksum(b"\xff\xff" * 3, 100) - 6 == 0xFFFF


SUMS = [pytest.param(pe._sum_mod_python, id="python"),
        pytest.param(pe._sum_mod, id="c", marks=pytest.mark.skipif(
            not pe.ACCELERATED, reason="formats/_pe_checksum.c was not built"))]


@pytest.mark.parametrize("sum_mod", SUMS)
def test_word_sums_agree_with_the_definition(sum_mod: object) -> None:
    """Both sums (the C loop and its pure-Python fallback) are int.from_bytes modulo
    0xFFFF, 0xFFFF for a non-zero multiple: every length (the 1 to 3 tail bytes of a
    32-bit word), buffers past the C loop's 4 MiB fold, and bytes, memoryview slices."""
    assert callable(sum_mod)
    rng = random.Random(11)

    def expected(data: bytes) -> int:
        value = int.from_bytes(data, "little")
        return (value % 0xFFFF or 0xFFFF) if value else 0

    for n in [*range(0, 70), 16383, 16384, 16385, 100_003]:
        data = rng.randbytes(n)
        assert sum_mod(data) == expected(data), n
    big = rng.randbytes((9 << 20) + 3)
    assert sum_mod(big) == expected(big)
    assert sum_mod(memoryview(big)[5:(4 << 20) + 17]) == expected(big[5:(4 << 20) + 17])
    assert sum_mod(b"\0" * 4097) == 0
    assert sum_mod(b"\xff" * ((4 << 20) + 2)) == 0xFFFF  # non-zero, a multiple of 0xFFFF
    assert sum_mod(b"\xff\xff\0") == 0xFFFF


@pytest.mark.parametrize("sum_mod", SUMS)
def test_checksum_with_either_sum(monkeypatch: pytest.MonkeyPatch, sum_mod: object) -> None:
    """The PE checksum of chunks at odd and even offsets is the word-by-word one, whichever
    sum runs."""
    monkeypatch.setattr(pe, "_sum_mod", sum_mod)
    rng = random.Random(3)
    data = rng.randbytes(70_001)
    summed = pe._Checksum()
    for start, end in [(0, 1), (1, 16_385), (16_385, 16_386), (16_386, 70_001)]:
        summed.add(memoryview(data)[start:end], start)
    assert summed.value(len(data)) == reference_checksum(data, len(data) + 10)


def synthetic_pe32(directories: int = 16) -> bytes:
    """A minimal PE32 header (no sections): DOS header, PE signature, COFF header and a
    PE32 optional header with ``directories`` data directory entries."""
    optional_size = 96 + 8 * directories
    dos = b"MZ" + b"\0" * 58 + struct.pack("<I", 64)
    coff = struct.pack("<HHIIIHH", 0x14C, 0, 0, 0, 0, optional_size, 0x0102)
    optional = struct.pack("<H", 0x10B) + b"\0" * 90 + struct.pack("<I", directories)
    return dos + b"PE\0\0" + coff + optional + b"\0" * (8 * directories) + b"\0" * 64


def test_pe32_offsets(tmp_path: Path) -> None:
    path = tmp_path / "pe32.exe"
    path.write_bytes(synthetic_pe32())
    layout = pe.layout_of(path)
    assert not layout.pe32_plus
    assert layout.checksum_offset == 64 + 24 + 64
    assert layout.cert_dir_offset == 64 + 24 + 96 + 32


def test_pe32_plus_offsets(tmp_path: Path) -> None:
    exe = hello_exe(tmp_path / "hello.exe")
    data = exe.read_bytes()
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    layout = pe.layout_of(exe)
    assert layout.checksum_offset == e_lfanew + 24 + 64
    assert layout.cert_dir_offset == e_lfanew + 24 + 112 + 32


def _with_cert_entry(data: bytes, offset: int, size: int) -> bytes:
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    at = e_lfanew + 24 + 112 + 32
    return data[:at] + struct.pack("<II", offset, size) + data[at + 8:]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: b"#!/bin/sh\n" * 20, "no MZ signature"),
    (lambda d: d[:40], "truncated"),
    (lambda d: d[:0x3C] + struct.pack("<I", 1 << 30) + d[0x40:], "points outside the file"),
    (lambda d: d[:struct.unpack_from("<I", d, 0x3C)[0] + 30], "truncated"),
    (lambda d: d.replace(b"PE\0\0", b"XX\0\0", 1), "no PE signature"),
    (lambda d: _with_cert_entry(d, len(d) + 4096, 64), "points outside the file"),
    (lambda d: _with_cert_entry(d, len(d) - 64, 128), "points outside the file"),
    (lambda d: _with_cert_entry(d, 1024, 64), "at the end of the file"),
    (lambda d: _with_cert_entry(d, len(d) - 60, 60), "not 8-byte aligned"),
    (lambda d: _with_cert_entry(d, 0, 64), "malformed"),
])
def test_malformed_pe_is_refused(tmp_path: Path, mutate: object, message: str) -> None:
    good = hello_exe(tmp_path / "good.exe").read_bytes()
    bad = tmp_path / "bad.exe"
    bad.write_bytes(mutate(good))  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message):
        pe.image_digest(bad, DigestAlgorithm.SHA256)


def test_pe32_without_certificate_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "few.exe"
    path.write_bytes(synthetic_pe32(directories=4))
    with pytest.raises(InvalidInput, match="no certificate-table entry"):
        pe.layout_of(path)


def _signer(tmp: Path) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit signer")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.DER)


def test_offline_verifier_checks_image_hash_and_signature(tmp_path: Path) -> None:
    """The format's own halves, without a server: client hash, builder, client finish,
    then signgate's verifier; a flipped byte and a wrong signer are caught."""
    key, cert = _signer(tmp_path)
    exe = hello_exe(tmp_path / "hello.exe", b"tail")
    signer = SignerKey("p/k", 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PKCS1V15, "",
                       datetime.now(UTC))
    prepared = authenticode.CLIENT.prepare(exe, DigestAlgorithm.SHA256, None,
                                           lambda: pytest.fail("no key lookup needed"))
    request = FormatRequest(DigestAlgorithm.SHA256, prepared.digest, "hello.exe",
                            datetime.now(UTC))
    tbs = authenticode.BUILDER.prepare(signer, request)
    signature = key.sign(tbs.message, ec.ECDSA(hashes.SHA256()))
    result = authenticode.BUILDER.assemble(signer, request, tbs, signature,
                                           Chain(cert, ()), None)
    out = tmp_path / "signed.exe"
    authenticode.CLIENT.finish(exe, prepared, result, out)
    evidence = authenticode.VERIFIER.verify(out, None, ())
    assert evidence.signer == cert
    assert evidence.signature_value == signature
    assert evidence.details["image_digest"] == f"sha256:{prepared.digest.hex()}"

    data = bytearray(out.read_bytes())
    data[0x400] ^= 1
    tampered = tmp_path / "tampered.exe"
    tampered.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="PE image hash does not match"):
        authenticode.VERIFIER.verify(tampered, None, ())

    forged = authenticode.BUILDER.assemble(signer, request, tbs, signature,
                                           Chain(_signer(tmp_path)[1], ()), None)
    authenticode.CLIENT.finish(exe, prepared, forged, tmp_path / "forged.exe")
    with pytest.raises(VerificationFailed, match="does not verify"):
        authenticode.VERIFIER.verify(tmp_path / "forged.exe", None, ())
    with pytest.raises(VerificationFailed, match="no Authenticode signature"):
        authenticode.VERIFIER.verify(exe, None, ())


def test_client_refuses_a_result_for_another_file(tmp_path: Path) -> None:
    key, cert = _signer(tmp_path)
    exe = hello_exe(tmp_path / "hello.exe")
    signer = SignerKey("p/k", 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PKCS1V15, "",
                       datetime.now(UTC))
    prepared = authenticode.CLIENT.prepare(exe, DigestAlgorithm.SHA256, None,
                                           lambda: pytest.fail("unused"))
    request = FormatRequest(DigestAlgorithm.SHA256, b"\x01" * 32, "x", datetime.now(UTC))
    tbs = authenticode.BUILDER.prepare(signer, request)
    result = authenticode.BUILDER.assemble(
        signer, request, tbs, key.sign(tbs.message, ec.ECDSA(hashes.SHA256())),
        Chain(cert, ()), None)
    with pytest.raises(VerificationFailed, match="not over this file"):
        authenticode.CLIENT.finish(exe, prepared, result, tmp_path / "out.exe")
    assert not (tmp_path / "out.exe").exists()


def _with_table(path: Path, table: bytes, out: Path) -> Path:
    """``path`` (signed) with its certificate table replaced by ``table`` and the data
    directory entry (and nothing else) updated to match."""
    layout = pe.layout_of(path)
    data = bytearray(path.read_bytes()[:layout.cert_table_offset] + table)
    data[layout.cert_dir_offset:layout.cert_dir_offset + 8] = struct.pack(
        "<II", layout.cert_table_offset, len(table))
    out.write_bytes(bytes(data))
    return out


def _entry(length: int, body: bytes, revision: int = 0x0200, kind: int = 2) -> bytes:
    return struct.pack("<IHH", length, revision, kind) + body


DER = b"\x30\x03\x02\x01\x01"  # 5 bytes: the entry is 13, padded with 3 zeros to 16


@pytest.mark.parametrize(("table", "message"), [
    (_entry(16, DER + b"\0" * 3) + _entry(16, b"junkjunk"), "holds 16 bytes after"),
    (_entry(16, DER + b"\0" * 3) + _entry(16, b"junkjunk", 0x0100, 1), "holds 16 bytes"),
    (_entry(16, DER + b"\0" * 3) + b"\0" * 8, "holds 8 bytes after"),  # zeros, too many
    (_entry(24, DER + b"EVIL" + b"\0" * 7), "holds 11 bytes after its SignedData"),
    (_entry(12, DER + b"\0" * 3), "dwLength \\(12\\) is shorter"),
    (_entry(16, DER + b"\0\0\x01"), "padding after its signature is not zeros"),
    (_entry(13, DER + b"ab\0"), "padding after its signature is not zeros"),
    (_entry(16, DER + b"\0" * 3, revision=0x0100), "revision 0x0100"),
    (_entry(16, DER + b"\0" * 3, kind=1), "type 0x0001"),
    (_entry(16, b"\x30\x80\x02\x01\x01\0\0\0"), "does not hold one DER"),  # BER
    (_entry(16, b"\x30\x81\x03\x02\x01\x01\0\0"), "does not hold one DER"),  # not minimal
    (_entry(16, b"\x30\x09\x02\x01\x01\0\0\0"), "does not hold one DER"),  # runs past
    (_entry(8, b""), "too short"),
], ids=["second-entry", "second-entry-x509", "extra-zeros", "appended-in-entry",
        "dwlength-short", "nonzero-padding", "nonzero-padding-uncounted", "revision-1", "type-x509",
        "ber-indefinite", "non-minimal-length", "der-runs-past", "empty-entry"])
def test_certificate_table_holds_one_signature_and_its_padding(
        tmp_path: Path, table: bytes, message: str) -> None:
    """PE spec, "The Attribute Certificate Table": one WIN_CERTIFICATE, then zeros to the
    next 8-byte boundary; anything else is covered by no signature and is refused when
    signing (re-signing) and when verifying."""
    exe = hello_exe(tmp_path / "hello.exe")
    signed = tmp_path / "signed.exe"
    pe.write_signed(exe, pe.image_digest(exe, DigestAlgorithm.SHA256), DER, signed)
    assert pe.certificate_table(signed)[1] == DER
    bad = _with_table(signed, table, tmp_path / "bad.exe")
    with pytest.raises(InvalidInput, match=message):
        pe.image_digest(bad, DigestAlgorithm.SHA256)
    with pytest.raises(InvalidInput, match=message):
        pe.certificate_table(bad)
    with pytest.raises(VerificationFailed, match=f"not a validly signed PE file: .*{message}"):
        authenticode.VERIFIER.verify(bad, None, ())


def test_padding_is_allowed_counted_or_not(tmp_path: Path) -> None:
    """dwLength may count the zero padding (signtool, osslsigncode) or not (the spec)."""
    exe = hello_exe(tmp_path / "hello.exe")
    signed = tmp_path / "signed.exe"
    pe.write_signed(exe, pe.image_digest(exe, DigestAlgorithm.SHA256), DER, signed)
    for length in (13, 16):
        ok = _with_table(signed, _entry(length, DER + b"\0" * 3), tmp_path / f"{length}.exe")
        assert pe.certificate_table(ok)[1] == DER
        assert pe.layout_of(ok).signature_size == len(DER)


@pytest.mark.parametrize(("oid", "message"), [
    ("1.3.6.1.4.1.311.2.4.1", "nested signature"),
    ("1.2.840.113549.1.9.6", "unsigned attribute 1.2.840.113549.1.9.6 that signgate cannot"),
])
def test_unsigned_attributes_other_than_a_timestamp_are_refused(
        tmp_path: Path, oid: str, message: str) -> None:
    """Unsigned attributes are covered by no signature: a nested signature (or a legacy
    countersignature) is refused, not ignored."""
    from asn1crypto import cms

    key, cert = _signer(tmp_path)
    exe = hello_exe(tmp_path / "hello.exe")
    signer = SignerKey("p/k", 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PKCS1V15, "",
                       datetime.now(UTC))
    prepared = authenticode.CLIENT.prepare(exe, DigestAlgorithm.SHA256, None,
                                           lambda: pytest.fail("unused"))
    request = FormatRequest(DigestAlgorithm.SHA256, prepared.digest, "hello.exe",
                            datetime.now(UTC))
    tbs = authenticode.BUILDER.prepare(signer, request)
    result = authenticode.BUILDER.assemble(
        signer, request, tbs, key.sign(tbs.message, ec.ECDSA(hashes.SHA256())),
        Chain(cert, ()), None)
    authenticode.CLIENT.finish(exe, prepared, result, tmp_path / "signed.exe")
    assert authenticode.VERIFIER.verify(tmp_path / "signed.exe", None, ()).signer == cert

    info = cms.ContentInfo.load(result)
    signed = info["content"]
    one = signed["signer_infos"][0]
    # a nested SignedData, or a legacy countersignature (a SignerInfo)
    value = (cms.ContentInfo.load(result) if oid.endswith(".2.4.1")
             else cms.SignerInfo.load(one.dump()))
    one["unsigned_attrs"] = cms.CMSAttributes([cms.CMSAttribute(
        {"type": oid, "values": [value]})])
    signed["signer_infos"] = cms.SignerInfos([one])
    info["content"] = signed
    extended = _with_table(tmp_path / "signed.exe", pe.win_certificate(info.dump()),
                           tmp_path / "extended.exe")
    with pytest.raises(VerificationFailed, match=message):
        authenticode.VERIFIER.verify(extended, None, ())
