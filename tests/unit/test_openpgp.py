"""OpenPGP encodings against known values and gpg, and the server's refusals of a hashed
part that is not what a signgate signature by this key version says."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import PublicKey
from signgate.errors import Conflict, InvalidInput
from signgate.formats import openpgp as o
from signgate.formats.base import FormatRequest, PublicKeyInfo, SignerKey
from tests.support import gpg as support_gpg

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
CREATED = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


# --- CRC-24, armor, framing ------------------------------------------------------------------

def test_crc24_known_values() -> None:
    assert o.crc24(b"") == 0xB704CE  # the initial value, RFC 4880 §6.1
    assert o.crc24(b"123456789") == 0x21CF02  # the CRC-24/OPENPGP check value


def test_armor_known_value_and_round_trip() -> None:
    # What `gpg --enarmor` writes for the same bytes: body and checksum line.
    text = o.armor("SIGNATURE", b"123456789")
    assert text == ("-----BEGIN PGP SIGNATURE-----\n\nMTIzNDU2Nzg5\n=Ic8C\n"
                    "-----END PGP SIGNATURE-----\n")
    data = bytes(range(256)) * 3
    armored = o.armor("PUBLIC KEY BLOCK", data)
    assert max(len(line) for line in armored.splitlines()) <= 64
    assert o.dearmor(armored, "PUBLIC KEY BLOCK") == data
    assert o.dearmor(armored.replace("\n", "\r\n"), "PUBLIC KEY BLOCK") == data


@pytest.fixture
def gpg_home() -> Iterator[Path]:
    with support_gpg.gpg_home() as home:
        yield home


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", *args], input=data,
                          capture_output=True, check=True, timeout=60).stdout


@needs_gpg
def test_armor_interoperates_with_gpg(gpg_home: Path) -> None:
    data = b"\x00\xffsigngate" * 40
    enarmored = _gpg(gpg_home, "--enarmor", data=data).decode()  # with a Comment header
    assert o.dearmor(enarmored, "ARMORED FILE") == data
    ours = o.armor("ARMORED FILE", data)
    assert _gpg(gpg_home, "--dearmor", data=ours.encode()) == data
    assert ours.splitlines()[-2] == enarmored.strip().splitlines()[-2]  # same =CRC line


def test_damaged_armor_is_refused() -> None:
    text = o.armor("SIGNATURE", b"123456789")
    with pytest.raises(InvalidInput, match="CRC-24"):
        o.dearmor(text.replace("MTIzNDU2Nzg5", "MTIzNDU2Nzg4"), "SIGNATURE")
    with pytest.raises(InvalidInput, match="no ASCII-armored PGP SIGNATURE"):
        o.dearmor(text.replace("-----END PGP SIGNATURE-----", ""), "SIGNATURE")
    with pytest.raises(InvalidInput, match="base64"):
        o.dearmor(text.replace("MTIzNDU2Nzg5", "MTIz*DU2Nzg5"), "SIGNATURE")
    with pytest.raises(InvalidInput):
        o.dearmor(o.armor("PUBLIC KEY BLOCK", b"x"), "SIGNATURE")


def test_mpi_and_lengths() -> None:
    assert o.mpi(1) == b"\x00\x01\x01"
    assert o.mpi(0x1FF) == b"\x00\x09\x01\xff"
    assert o.mpi(0) == b"\x00\x00"
    for size in (0, 191, 192, 8383, 8384, 70000):  # one-, two- and five-octet lengths
        body = b"\xab" * size
        assert o.read_packets(o.packet(11, body)) == [(11, body)]
    # An old-format header (tag 2, two-octet length) reads the same.
    assert o.read_packets(b"\x89\x00\x03abc") == [(2, b"abc")]
    with pytest.raises(InvalidInput, match="truncated"):
        o.read_packets(o.packet(2, b"abcdef")[:-1])


# --- fingerprints against gpg's own ------------------------------------------------------------

def _gpg_key(home: Path, algo: str) -> tuple[PublicKey, datetime, str]:
    """A key gpg made: its public key (via gpg's OpenSSH export), creation time and
    fingerprint, as gpg computes them."""
    _gpg(home, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key",
         f"{algo} <{algo}@example.org>", algo, "sign,auth", "never")
    colons = _gpg(home, "--with-colons", "--list-keys", f"{algo}@example.org").decode()
    pub = next(line.split(":") for line in colons.splitlines() if line.startswith("pub:"))
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    ssh = _gpg(home, "--export-ssh-key", fpr)
    key = serialization.load_ssh_public_key(ssh)
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | rsa.RSAPublicKey)
    return key, datetime.fromtimestamp(int(pub[5]), UTC), fpr


@needs_gpg
@pytest.mark.parametrize("algo", ["ed25519", "nistp256", "nistp384", "rsa2048"])
def test_fingerprints_match_gpg(gpg_home: Path, algo: str) -> None:
    public_key, created, fingerprint = _gpg_key(gpg_home, algo)
    ours = o.openpgp_key(public_key, created)
    assert ours.fingerprint.hex().upper() == fingerprint
    assert ours.key_id.hex().upper() == fingerprint[-16:]


def test_creation_time_is_whole_seconds_and_naive_means_utc() -> None:
    pem = _pem(ed25519.Ed25519PrivateKey.generate().public_key())
    a = o.key_of(pem, CREATED)
    assert a.created == int(CREATED.replace(microsecond=0).timestamp())
    assert o.key_of(pem, CREATED.replace(microsecond=0)).fingerprint == a.fingerprint
    assert o.key_of(pem, CREATED.replace(tzinfo=None)).fingerprint == a.fingerprint
    assert o.key_of(pem, CREATED + timedelta(seconds=1)).fingerprint != a.fingerprint


# --- the server's checks of the client's hashed part ---------------------------------------------

def _pem(public_key: PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def signer() -> SignerKey:
    pem = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    return SignerKey("p/k", 3, KeyAlgorithm.ECDSA_P256, RsaPadding.PSS, pem, CREATED)


def _request(hashed: bytes, digest: DigestAlgorithm = DigestAlgorithm.SHA256) -> FormatRequest:
    return FormatRequest(digest, b"\x01" * digest.size, "a.bin", NOW,
                         {"hashed": base64.b64encode(hashed).decode()})


def _hashed(key: SignerKey, *, sig_type: int = o.SIG_BINARY, algorithm: int | None = None,
            digest: DigestAlgorithm = DigestAlgorithm.SHA256, when: datetime = NOW,
            subpackets: bytes | None = None) -> bytes:
    pgp = o.key_of(key.public_key_pem, key.created_at)
    return o.hashed_part(sig_type, pgp.algorithm if algorithm is None else algorithm, digest,
                         o.data_subpackets(when, pgp) if subpackets is None else subpackets)


def test_a_good_hashed_part_is_signed_as_it_is(signer: SignerKey) -> None:
    request = _request(_hashed(signer))
    tbs = o.BUILDER.prepare(signer, request)
    assert tbs.prehashed
    assert tbs.message == request.digest


def test_the_client_and_server_agree(signer: SignerKey, tmp_path: Path) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"data")
    info = PublicKeyInfo("p/k", 3, KeyAlgorithm.ECDSA_P256, None, signer.public_key_pem,
                         CREATED)
    prepared = o.CLIENT.prepare(artifact, DigestAlgorithm.SHA256, None, lambda: info)
    request = replace(_request(b""), digest=prepared.digest, params=prepared.params,
                      now=datetime.now(UTC))
    o.BUILDER.check(signer, request)
    assert o.BUILDER.prepare(signer, request).message == prepared.digest


def test_hashed_part_refusals(signer: SignerKey) -> None:
    pgp = o.key_of(signer.public_key_pem, signer.created_at)
    created = o.subpacket(o.SUB_CREATION_TIME, int(NOW.timestamp()).to_bytes(4, "big"))
    issuer = o.subpacket(o.SUB_ISSUER_FINGERPRINT, b"\x04" + pgp.fingerprint)
    critical = bytearray(created)
    critical[1] |= 0x80
    cases: list[tuple[bytes, str]] = [
        (_hashed(signer, sig_type=0x01), "only binary document signatures"),
        (_hashed(signer, algorithm=o.PK_RSA), "public-key algorithm 1"),
        (_hashed(signer, digest=DigestAlgorithm.SHA512), "names sha512"),
        (_hashed(signer, when=NOW - timedelta(minutes=11)), "more than 10 minutes"),
        (_hashed(signer, when=NOW + timedelta(minutes=11)), "more than 10 minutes"),
        (_hashed(signer, subpackets=created), "exactly a signature creation time"),
        (_hashed(signer, subpackets=issuer + created), "exactly a signature creation time"),
        (_hashed(signer, subpackets=created + issuer + o.subpacket(20, b"x" * 8)),
         "exactly a signature creation time"),
        (_hashed(signer, subpackets=bytes(critical) + issuer), "not critical"),
        (_hashed(signer, subpackets=created + o.subpacket(o.SUB_ISSUER_FINGERPRINT,
                                                          b"\x05" + pgp.fingerprint)),
         "malformed"),
        (_hashed(signer)[:-3], "truncated"),
        (_hashed(signer) + b"\x00", "trailing bytes"),
        (b"\x03" + _hashed(signer)[1:], "only v4"),
        (b"\x04\x00\x13\x02" + _hashed(signer)[4:], "hash algorithm 2"),
        (b"\x04" * (o.MAX_HASHED + 1), "limited to"),
    ]
    for hashed, message in cases:
        with pytest.raises(InvalidInput, match=message):
            o.BUILDER.prepare(signer, _request(hashed))
    for params in ({}, {"hashed": "not base64!"}):
        with pytest.raises(InvalidInput):
            o.BUILDER.prepare(signer, replace(_request(b""), params=params))


def test_another_versions_fingerprint_is_a_conflict(signer: SignerKey) -> None:
    rotated = replace(signer, version=4,
                      public_key_pem=_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    with pytest.raises(Conflict, match="the key was rotated while signing; sign again"):
        o.BUILDER.prepare(rotated, _request(_hashed(signer)))
    # The same key material with another creation time is another OpenPGP key too.
    later = replace(signer, created_at=CREATED + timedelta(seconds=1))
    with pytest.raises(Conflict):
        o.BUILDER.prepare(later, _request(_hashed(signer)))


def test_check_refuses_what_openpgp_cannot_express(signer: SignerKey) -> None:
    request = _request(b"")
    rsa = replace(signer, algorithm=KeyAlgorithm.RSA_3072, rsa_padding=RsaPadding.PSS)
    with pytest.raises(InvalidInput, match=r"PKCS#1 v1\.5"):
        o.BUILDER.check(rsa, request)
    o.BUILDER.check(replace(rsa, rsa_padding=RsaPadding.PKCS1V15), request)
    with pytest.raises(InvalidInput, match="one-time"):
        o.BUILDER.check(replace(signer, one_time=True), request)
    p384 = replace(signer, algorithm=KeyAlgorithm.ECDSA_P384)
    with pytest.raises(InvalidInput, match="sha384"):
        o.BUILDER.check(p384, request)
    o.BUILDER.check(p384, replace(request, digest_algorithm=DigestAlgorithm.SHA384))


# --- user IDs and adversarial signatures ------------------------------------------------------

@pytest.mark.parametrize("user_id", ["", "   ", "a\nb", "a\rb", "tab\there", "nul\x00",
                                     "del\x7f", "c1\x85", "x" * 257, "line\u2028sep"])
def test_bad_user_ids_are_refused(user_id: str) -> None:
    with pytest.raises(InvalidInput, match="user ID"):
        o.check_user_id(user_id)


def test_good_user_ids_pass() -> None:
    for user_id in ("Release Bot <release@example.org>", "Jürgen Müller (signgate)",
                    "x" * 256):
        assert o.check_user_id(user_id) == user_id


def _asc(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "a.bin.asc"
    path.write_text(o.armor("SIGNATURE", data))
    return path


def test_malformed_signatures_are_invalid_input(tmp_path: Path, signer: SignerKey) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"data")
    good = o.signature_packet(_hashed(signer), b"\x00" * 8, b"\x12\x34",
                              bytes.fromhex("3006020101020101"))
    for data in (b"", good[:-2], good + good, o.packet(o.TAG_USER_ID, b"x"), b"\x00garbage"):
        with pytest.raises(InvalidInput):
            o.VERIFIER.verify(artifact, _asc(tmp_path, data), ())
    not_armored = tmp_path / "raw.sig"
    not_armored.write_bytes(good)
    with pytest.raises(InvalidInput):
        o.VERIFIER.verify(artifact, not_armored, ())
