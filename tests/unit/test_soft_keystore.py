"""The software vault: generate, seal, open, sign; and what it refuses."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import ConfigError, KeyStoreError
from signgate.keystore.base import GeneratedKey, KeyHandle
from signgate.keystore.soft import (
    MASTER_KEY_BYTES,
    SoftwareKeyStore,
    decode_master_key,
    encode_master_key,
    read_master_key_file,
)

MASTER = bytes(range(32))


@pytest.fixture(scope="module")
def store() -> SoftwareKeyStore:
    return SoftwareKeyStore(MASTER)


@pytest.fixture(scope="module")
def generated(store: SoftwareKeyStore) -> dict[KeyAlgorithm, GeneratedKey]:
    """One key per algorithm (RSA generation is slow: share them across the module)."""
    return {alg: store.generate(alg) for alg in KeyAlgorithm}


class Loader:
    """A load_sealed callback that counts its calls."""

    def __init__(self, blob: bytes | None) -> None:
        self.blob = blob
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        assert self.blob is not None
        return self.blob


def handle(g: GeneratedKey, alg: KeyAlgorithm, padding: RsaPadding = RsaPadding.PSS,
           blob: bytes | None = None, uri: str | None = None) -> tuple[KeyHandle, Loader]:
    loader = Loader(g.sealed if blob is None else blob)
    return KeyHandle(uri or g.uri, alg, padding, loader), loader


def digest_of(alg: DigestAlgorithm, data: bytes) -> bytes:
    return hashlib.new(alg.value, data).digest()


# -- generate, sign, verify ---------------------------------------------------------------


@pytest.mark.parametrize("digest_alg", list(DigestAlgorithm))
@pytest.mark.parametrize("key_alg", list(KeyAlgorithm))
def test_sign_and_verify(store: SoftwareKeyStore, generated: dict[KeyAlgorithm, GeneratedKey],
                         key_alg: KeyAlgorithm, digest_alg: DigestAlgorithm) -> None:
    g = generated[key_alg]
    paddings: list[RsaPadding | None] = (
        [RsaPadding.PSS, RsaPadding.PKCS1V15] if key_alg.is_rsa else [None]
    )
    public = load_public_key(g.public_key_pem)
    digest = digest_of(digest_alg, f"artifact {key_alg} {digest_alg}".encode())
    other = digest_of(digest_alg, b"another artifact")
    for padding in paddings:
        h, _ = handle(g, key_alg, padding or RsaPadding.PSS)
        sig = store.sign(h, digest_alg, digest)
        assert verify_digest(public, padding, digest_alg, digest, sig)
        assert verify_digest(public, None, digest_alg, digest, sig)  # offline: padding unknown
        assert not verify_digest(public, padding, digest_alg, other, sig)
        assert not verify_digest(public, padding, digest_alg, digest, sig[:-1] + bytes(
            [sig[-1] ^ 1]))


def test_rsa_padding_is_honoured(store: SoftwareKeyStore,
                                 generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.RSA_3072]
    public = load_public_key(g.public_key_pem)
    digest = digest_of(DigestAlgorithm.SHA256, b"x")
    pss = store.sign(handle(g, KeyAlgorithm.RSA_3072, RsaPadding.PSS)[0],
                     DigestAlgorithm.SHA256, digest)
    v15 = store.sign(handle(g, KeyAlgorithm.RSA_3072, RsaPadding.PKCS1V15)[0],
                     DigestAlgorithm.SHA256, digest)
    assert verify_digest(public, RsaPadding.PSS, DigestAlgorithm.SHA256, digest, pss)
    assert not verify_digest(public, RsaPadding.PKCS1V15, DigestAlgorithm.SHA256, digest, pss)
    assert verify_digest(public, RsaPadding.PKCS1V15, DigestAlgorithm.SHA256, digest, v15)
    assert not verify_digest(public, RsaPadding.PSS, DigestAlgorithm.SHA256, digest, v15)
    # PKCS#1 v1.5 is deterministic, PSS is not
    assert v15 == store.sign(handle(g, KeyAlgorithm.RSA_3072, RsaPadding.PKCS1V15)[0],
                             DigestAlgorithm.SHA256, digest)


def test_generate_makes_distinct_keys(store: SoftwareKeyStore) -> None:
    a = store.generate(KeyAlgorithm.ECDSA_P256)
    b = store.generate(KeyAlgorithm.ECDSA_P256)
    assert a.uri != b.uri
    assert a.uri.startswith("soft:")
    assert a.public_key_pem != b.public_key_pem
    assert a.sealed is not None
    assert b.sealed is not None
    assert a.sealed[:1] == b"\x01"
    assert a.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_sealed_blob_holds_no_plain_private_key(store: SoftwareKeyStore) -> None:
    g = store.generate(KeyAlgorithm.ED25519)
    assert g.sealed is not None
    assert b"PRIVATE" not in g.sealed
    # the DER PKCS#8 prefix of an Ed25519 key must not appear in the clear
    assert bytes.fromhex("302e020100300506032b6570") not in g.sealed


def test_a_second_store_with_the_same_master_key_opens_the_key(
        store: SoftwareKeyStore, generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P384]
    other = SoftwareKeyStore(MASTER)
    h, loader = handle(g, KeyAlgorithm.ECDSA_P384)
    digest = digest_of(DigestAlgorithm.SHA384, b"x")
    sig = other.sign(h, DigestAlgorithm.SHA384, digest)
    assert loader.calls == 1
    assert verify_digest(load_public_key(g.public_key_pem), None, DigestAlgorithm.SHA384,
                         digest, sig)


# -- what does not open -------------------------------------------------------------------


def test_blob_under_another_uri_does_not_open(generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    fresh = SoftwareKeyStore(MASTER)  # empty cache
    h, loader = handle(g, KeyAlgorithm.ECDSA_P256, uri="soft:00000000-0000-0000-0000-000000000000")
    with pytest.raises(KeyStoreError) as info:
        fresh.sign(h, DigestAlgorithm.SHA256, bytes(32))
    assert info.value.code == "keystore_unseal_failed"
    assert loader.calls == 1


def test_blob_under_another_algorithm_does_not_open(
        generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    fresh = SoftwareKeyStore(MASTER)
    h, _ = handle(g, KeyAlgorithm.ECDSA_P384)
    with pytest.raises(KeyStoreError) as info:
        fresh.sign(h, DigestAlgorithm.SHA256, bytes(32))
    assert info.value.code == "keystore_unseal_failed"


def test_wrong_master_key(generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ED25519]
    wrong = SoftwareKeyStore(os.urandom(32))
    h, _ = handle(g, KeyAlgorithm.ED25519)
    with pytest.raises(KeyStoreError) as info:
        wrong.sign(h, DigestAlgorithm.SHA256, bytes(32))
    assert info.value.code == "keystore_unseal_failed"
    assert "wrong master key" in str(info.value)
    assert g.uri in str(info.value)


def _garbled(blob: bytes) -> list[tuple[str, bytes]]:
    flipped_ct = bytearray(blob)
    flipped_ct[-1] ^= 0x01
    flipped_nonce = bytearray(blob)
    flipped_nonce[3] ^= 0x80
    return [
        ("empty", b""),
        ("version byte only", blob[:1]),
        ("header only", blob[:13]),
        ("shorter than a tag", blob[:28]),
        ("truncated", blob[:-1]),
        ("half", blob[: len(blob) // 2]),
        ("wrong version", b"\x02" + blob[1:]),
        ("flipped ciphertext", bytes(flipped_ct)),
        ("flipped nonce", bytes(flipped_nonce)),
        ("extended", blob + b"\x00"),
        ("random", os.urandom(len(blob))),
    ]


def test_truncated_or_garbled_blobs_fail_cleanly(
        generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    assert g.sealed is not None
    for label, blob in _garbled(g.sealed):
        fresh = SoftwareKeyStore(MASTER)
        h = KeyHandle(g.uri, KeyAlgorithm.ECDSA_P256, RsaPadding.PSS, lambda b=blob: b)
        with pytest.raises(KeyStoreError) as info:
            fresh.sign(h, DigestAlgorithm.SHA256, bytes(32))
        assert g.uri in str(info.value), label
        assert info.value.code in ("keystore_error", "keystore_unseal_failed"), label


def test_no_loader_fails_cleanly(generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    h = KeyHandle(g.uri, KeyAlgorithm.ECDSA_P256)
    with pytest.raises(KeyStoreError, match="no usable sealed key material"):
        SoftwareKeyStore(MASTER).sign(h, DigestAlgorithm.SHA256, bytes(32))


# -- nothing secret in reprs --------------------------------------------------------------


def test_reprs_hold_no_key_material(store: SoftwareKeyStore,
                                    generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    assert g.sealed is not None
    h, _ = handle(g, KeyAlgorithm.ECDSA_P256)
    secrets = [MASTER.hex(), encode_master_key(MASTER), repr(MASTER)[2:20],
               g.sealed.hex()[:16], base64.b64encode(g.sealed).decode()[:16],
               repr(g.sealed)[2:20]]
    for text in (repr(store), str(store), repr(h), str(h), repr(g), str(g)):
        for secret in secrets:
            assert secret not in text, text
    assert "sealed=" not in repr(g)
    assert "load_sealed" not in repr(h)
    assert g.uri in repr(g)
    assert g.uri in repr(h)


# -- the private-key cache ----------------------------------------------------------------


def test_second_sign_uses_the_cache(generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    fresh = SoftwareKeyStore(MASTER)
    h, loader = handle(g, KeyAlgorithm.ECDSA_P256)
    public = load_public_key(g.public_key_pem)
    for i in range(3):
        digest = digest_of(DigestAlgorithm.SHA256, bytes([i]))
        sig = fresh.sign(h, DigestAlgorithm.SHA256, digest)
        assert verify_digest(public, None, DigestAlgorithm.SHA256, digest, sig)
    assert loader.calls == 1


def test_destroy_evicts_from_the_cache(generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    fresh = SoftwareKeyStore(MASTER)
    h, loader = handle(g, KeyAlgorithm.ECDSA_P256)
    fresh.sign(h, DigestAlgorithm.SHA256, bytes(32))
    fresh.destroy(h)
    fresh.sign(h, DigestAlgorithm.SHA256, bytes(32))
    assert loader.calls == 2


def test_cache_is_bounded(generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    a, b = generated[KeyAlgorithm.ECDSA_P256], generated[KeyAlgorithm.ED25519]
    fresh = SoftwareKeyStore(MASTER, cache_size=1)
    ha, la = handle(a, KeyAlgorithm.ECDSA_P256)
    hb, lb = handle(b, KeyAlgorithm.ED25519)
    for h in (ha, ha, hb, ha):
        fresh.sign(h, DigestAlgorithm.SHA256, bytes(32))
    assert (la.calls, lb.calls) == (2, 1)


# -- master key handling ------------------------------------------------------------------


def test_store_refuses_short_master_key() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        SoftwareKeyStore(bytes(31))


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_read_master_key_file_ok(tmp_path: Path) -> None:
    path = _write(tmp_path / "master.key", encode_master_key(MASTER) + "\n", 0o600)
    assert read_master_key_file(path) == MASTER
    assert len(MASTER) == MASTER_KEY_BYTES


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_read_master_key_file_refuses_open_modes(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "master.key", encode_master_key(MASTER), mode)
    with pytest.raises(ConfigError) as info:
        read_master_key_file(path)
    assert "chmod 600" in str(info.value)
    assert str(path) in str(info.value)
    assert f"{mode:o}" in str(info.value)


def test_read_master_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read master key file"):
        read_master_key_file(tmp_path / "nope.key")


def test_read_master_key_file_bad_content(tmp_path: Path) -> None:
    path = _write(tmp_path / "master.key", "not base64 at all!", 0o600)
    with pytest.raises(ConfigError, match="not base64"):
        read_master_key_file(path)


def test_decode_master_key_round_trip() -> None:
    assert decode_master_key(encode_master_key(MASTER), "env") == MASTER
    assert decode_master_key("  " + encode_master_key(MASTER) + "\n", "env") == MASTER


@pytest.mark.parametrize("length", [0, 1, 16, 31, 33, 64])
def test_decode_master_key_wrong_length(length: int) -> None:
    with pytest.raises(ConfigError) as info:
        decode_master_key(base64.b64encode(os.urandom(length)).decode(), "SIGNGATE_MASTER_KEY")
    assert "must be 32 bytes" in str(info.value)
    assert "SIGNGATE_MASTER_KEY" in str(info.value)


@pytest.mark.parametrize("text", ["not base64!", "AAAA*AAA", "Zm9v=Zm9v", "é" * 44,
                                  encode_master_key(MASTER)[:-1]])
def test_decode_master_key_not_base64(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_master_key(text, "master.key")
    assert "master.key" in str(info.value)
    assert "base64" in str(info.value) or "32 bytes" in str(info.value)

