"""The software vault: generate, seal, open, sign; and what it refuses."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import ConfigError, KeyStoreError
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.soft import (
    MASTER_KEY_BYTES,
    ONE_TIME_SCHEME,
    SoftwareKeyStore,
    decode_master_key,
    encode_master_key,
    one_time_store,
    read_master_key_file,
)

MASTER = bytes(range(32))


class CountingBlobs(InMemoryBlobs):
    """In-memory blobs that count how often the vault reads them (a cache miss each)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, uri: str) -> bytes | None:
        self.gets += 1
        return super().get(uri)

    def copy(self) -> CountingBlobs:
        """Another repository holding the same blobs (another node's view of one table)."""
        other = CountingBlobs()
        for uri, blob in self._blobs.items():
            other.put(uri, blob)
        return other

    def blob(self, uri: str) -> bytes:
        found = super().get(uri)
        assert found is not None
        return found


@pytest.fixture(scope="module")
def blobs() -> CountingBlobs:
    return CountingBlobs()


@pytest.fixture(scope="module")
def store(blobs: CountingBlobs) -> SoftwareKeyStore:
    return SoftwareKeyStore(MASTER, blobs)


@pytest.fixture(scope="module")
def generated(store: SoftwareKeyStore) -> dict[KeyAlgorithm, GeneratedKey]:
    """One key per algorithm (RSA generation is slow: share them across the module)."""
    return {alg: store.generate(alg) for alg in KeyAlgorithm}


def ref(g: GeneratedKey, alg: KeyAlgorithm, padding: RsaPadding = RsaPadding.PSS,
        uri: str | None = None) -> KeyRef:
    return KeyRef(uri or g.uri, alg, padding)


def fresh(blobs: CountingBlobs, **kwargs: Any) -> tuple[SoftwareKeyStore, CountingBlobs]:
    """A store with an empty cache over a copy of ``blobs`` (whose reads it counts)."""
    copy = blobs.copy()
    return SoftwareKeyStore(MASTER, copy, **kwargs), copy


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
        sig = store.sign(ref(g, key_alg, padding or RsaPadding.PSS), digest_alg, digest)
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
    pss = store.sign(ref(g, KeyAlgorithm.RSA_3072, RsaPadding.PSS), DigestAlgorithm.SHA256,
                     digest)
    v15 = store.sign(ref(g, KeyAlgorithm.RSA_3072, RsaPadding.PKCS1V15),
                     DigestAlgorithm.SHA256, digest)
    assert verify_digest(public, RsaPadding.PSS, DigestAlgorithm.SHA256, digest, pss)
    assert not verify_digest(public, RsaPadding.PKCS1V15, DigestAlgorithm.SHA256, digest, pss)
    assert verify_digest(public, RsaPadding.PKCS1V15, DigestAlgorithm.SHA256, digest, v15)
    assert not verify_digest(public, RsaPadding.PSS, DigestAlgorithm.SHA256, digest, v15)
    # PKCS#1 v1.5 is deterministic, PSS is not
    assert v15 == store.sign(ref(g, KeyAlgorithm.RSA_3072, RsaPadding.PKCS1V15),
                             DigestAlgorithm.SHA256, digest)


def test_generate_makes_distinct_keys_and_stores_their_blobs(store: SoftwareKeyStore,
                                                             blobs: CountingBlobs) -> None:
    a = store.generate(KeyAlgorithm.ECDSA_P256)
    b = store.generate(KeyAlgorithm.ECDSA_P256)
    assert a.uri != b.uri
    assert a.uri.startswith("soft:")
    assert a.public_key_pem != b.public_key_pem
    assert blobs.blob(a.uri)[:1] == b"\x01"
    assert blobs.blob(a.uri) != blobs.blob(b.uri)
    assert a.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_sealed_blob_holds_no_plain_private_key(store: SoftwareKeyStore,
                                                blobs: CountingBlobs) -> None:
    g = store.generate(KeyAlgorithm.ED25519)
    sealed = blobs.blob(g.uri)
    assert b"PRIVATE" not in sealed
    # the DER PKCS#8 prefix of an Ed25519 key must not appear in the clear
    assert bytes.fromhex("302e020100300506032b6570") not in sealed


def test_a_second_store_with_the_same_master_key_opens_the_key(
        blobs: CountingBlobs, generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P384]
    other, read = fresh(blobs)
    digest = digest_of(DigestAlgorithm.SHA384, b"x")
    sig = other.sign(ref(g, KeyAlgorithm.ECDSA_P384), DigestAlgorithm.SHA384, digest)
    assert read.gets == 1
    assert verify_digest(load_public_key(g.public_key_pem), None, DigestAlgorithm.SHA384,
                         digest, sig)


def test_generate_does_not_keep_the_key_open(blobs: CountingBlobs) -> None:
    """A key is opened from its stored blob on first use: if that blob never committed
    (the caller's transaction rolled back), the key does not sign."""
    store, read = fresh(blobs)
    g = store.generate(KeyAlgorithm.ECDSA_P256)
    store.sign(ref(g, KeyAlgorithm.ECDSA_P256), DigestAlgorithm.SHA256, bytes(32))
    assert read.gets == 1


# -- what does not open -------------------------------------------------------------------


def test_unknown_key(blobs: CountingBlobs) -> None:
    store, _ = fresh(blobs)
    missing = KeyRef("soft:00000000-0000-0000-0000-000000000000", KeyAlgorithm.ECDSA_P256)
    for attempt in (lambda: store.sign(missing, DigestAlgorithm.SHA256, bytes(32)),
                    lambda: store.probe(missing)):
        with pytest.raises(KeyStoreError, match="no such key") as info:
            attempt()
        assert info.value.code == "keystore_error"
        assert missing.uri in str(info.value)


def test_blob_under_another_uri_does_not_open(
        blobs: CountingBlobs, generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    store, read = fresh(blobs)
    moved = "soft:00000000-0000-0000-0000-000000000000"
    read.put(moved, read.blob(g.uri))  # the blob copied onto another key
    with pytest.raises(KeyStoreError) as info:
        store.sign(ref(g, KeyAlgorithm.ECDSA_P256, uri=moved), DigestAlgorithm.SHA256,
                   bytes(32))
    assert info.value.code == "keystore_unseal_failed"
    assert read.gets == 1


def test_blob_under_another_algorithm_does_not_open(
        blobs: CountingBlobs, generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    store, _ = fresh(blobs)
    with pytest.raises(KeyStoreError) as info:
        store.sign(ref(g, KeyAlgorithm.ECDSA_P384), DigestAlgorithm.SHA256, bytes(32))
    assert info.value.code == "keystore_unseal_failed"


def test_wrong_master_key(blobs: CountingBlobs,
                          generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ED25519]
    wrong = SoftwareKeyStore(os.urandom(32), blobs.copy())
    for attempt in (lambda: wrong.sign(ref(g, KeyAlgorithm.ED25519), DigestAlgorithm.SHA256,
                                       bytes(32)),
                    lambda: wrong.probe(ref(g, KeyAlgorithm.ED25519))):
        with pytest.raises(KeyStoreError) as info:
            attempt()
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
        blobs: CountingBlobs, generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    for label, blob in _garbled(blobs.blob(g.uri)):
        garbled = InMemoryBlobs()
        garbled.put(g.uri, blob)
        store = SoftwareKeyStore(MASTER, garbled)
        with pytest.raises(KeyStoreError) as info:
            store.sign(ref(g, KeyAlgorithm.ECDSA_P256), DigestAlgorithm.SHA256, bytes(32))
        assert g.uri in str(info.value), label
        assert info.value.code in ("keystore_error", "keystore_unseal_failed"), label


# -- nothing secret in reprs --------------------------------------------------------------


def test_reprs_hold_no_key_material(store: SoftwareKeyStore, blobs: CountingBlobs,
                                    generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    sealed = blobs.blob(g.uri)
    r = ref(g, KeyAlgorithm.ECDSA_P256)
    secrets = [MASTER.hex(), encode_master_key(MASTER), repr(MASTER)[2:20],
               sealed.hex()[:16], base64.b64encode(sealed).decode()[:16], repr(sealed)[2:20]]
    for text in (repr(store), str(store), repr(r), str(r), repr(g), str(g), repr(blobs)):
        for secret in secrets:
            assert secret not in text, text
    assert g.uri in repr(g)
    assert g.uri in repr(r)


# -- the private-key cache, and destroy ----------------------------------------------------


def test_second_sign_uses_the_cache(blobs: CountingBlobs,
                                    generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    store, read = fresh(blobs)
    public = load_public_key(g.public_key_pem)
    for i in range(3):
        digest = digest_of(DigestAlgorithm.SHA256, bytes([i]))
        sig = store.sign(ref(g, KeyAlgorithm.ECDSA_P256), DigestAlgorithm.SHA256, digest)
        assert verify_digest(public, None, DigestAlgorithm.SHA256, digest, sig)
    assert read.gets == 1


def test_probe_bypasses_the_cache(blobs: CountingBlobs,
                                  generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    g = generated[KeyAlgorithm.ECDSA_P256]
    store, read = fresh(blobs)
    store.sign(ref(g, KeyAlgorithm.ECDSA_P256), DigestAlgorithm.SHA256, bytes(32))
    store.probe(ref(g, KeyAlgorithm.ECDSA_P256))
    assert read.gets == 2


def test_a_destroyed_key_can_never_sign_again(blobs: CountingBlobs) -> None:
    store, read = fresh(blobs)
    g = store.generate(KeyAlgorithm.ECDSA_P256)
    r = ref(g, KeyAlgorithm.ECDSA_P256)
    store.sign(r, DigestAlgorithm.SHA256, bytes(32))  # open, and cached
    store.destroy(r)
    assert read.get(g.uri) is None  # the blob is gone from storage
    for attempt in (lambda: store.sign(r, DigestAlgorithm.SHA256, bytes(32)),
                    lambda: store.probe(r),
                    lambda: SoftwareKeyStore(MASTER, read).sign(r, DigestAlgorithm.SHA256,
                                                                bytes(32))):
        with pytest.raises(KeyStoreError, match="no such key"):
            attempt()
    store.destroy(r)  # twice is harmless


def test_a_key_destroyed_while_being_opened_is_not_kept_open() -> None:
    """The signing under way when the key is destroyed may finish; no later one may."""

    class DestroyedDuringRead(InMemoryBlobs):
        store: SoftwareKeyStore

        def get(self, uri: str) -> bytes | None:
            blob = super().get(uri)
            self.store.destroy(KeyRef(uri, KeyAlgorithm.ECDSA_P256))  # "meanwhile"
            return blob

    racing = DestroyedDuringRead()
    store = racing.store = SoftwareKeyStore(MASTER, racing)
    r = ref(store.generate(KeyAlgorithm.ECDSA_P256), KeyAlgorithm.ECDSA_P256)
    store.sign(r, DigestAlgorithm.SHA256, bytes(32))
    with pytest.raises(KeyStoreError, match="no such key"):
        store.sign(r, DigestAlgorithm.SHA256, bytes(32))


def test_destroy_leaves_other_keys_alone(blobs: CountingBlobs) -> None:
    store, read = fresh(blobs)
    a, b = store.generate(KeyAlgorithm.ED25519), store.generate(KeyAlgorithm.ED25519)
    store.sign(ref(b, KeyAlgorithm.ED25519), DigestAlgorithm.SHA256, bytes(32))
    store.destroy(ref(a, KeyAlgorithm.ED25519))
    for g in (a, b):
        assert (read.get(g.uri) is None) is (g is a)
    store.sign(ref(b, KeyAlgorithm.ED25519), DigestAlgorithm.SHA256, bytes(32))


def test_cache_is_bounded(blobs: CountingBlobs,
                          generated: dict[KeyAlgorithm, GeneratedKey]) -> None:
    a, b = generated[KeyAlgorithm.ECDSA_P256], generated[KeyAlgorithm.ED25519]
    store, read = fresh(blobs, cache_size=1)
    ra, rb = ref(a, KeyAlgorithm.ECDSA_P256), ref(b, KeyAlgorithm.ED25519)
    for r in (ra, ra, rb, ra):
        store.sign(r, DigestAlgorithm.SHA256, bytes(32))
    assert read.gets == 3  # a, b, a again


# -- the one-time vault ---------------------------------------------------------------------


def test_one_time_store_keeps_keys_in_memory_under_its_own_scheme() -> None:
    store = one_time_store(MASTER)
    assert store.scheme == ONE_TIME_SCHEME
    g = store.generate(KeyAlgorithm.ECDSA_P256)
    assert g.uri.startswith(f"{ONE_TIME_SCHEME}:")
    r = ref(g, KeyAlgorithm.ECDSA_P256)
    digest = digest_of(DigestAlgorithm.SHA256, b"once")
    sig = store.sign(r, DigestAlgorithm.SHA256, digest)
    assert verify_digest(load_public_key(g.public_key_pem), None, DigestAlgorithm.SHA256,
                         digest, sig)
    store.destroy(r)
    with pytest.raises(KeyStoreError, match="no such key"):
        store.sign(r, DigestAlgorithm.SHA256, digest)


# -- master key handling ------------------------------------------------------------------


def test_store_refuses_short_master_key() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        SoftwareKeyStore(bytes(31), InMemoryBlobs())


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

