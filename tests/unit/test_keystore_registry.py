"""The key store registry: routing by URI scheme, and no foreign exception crossing it."""

from __future__ import annotations

import hashlib
import logging

import pytest

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import ConfigError, InvalidInput, KeyStoreError
from signgate.keystore.base import GeneratedKey, KeyRef, KeyStore
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore, one_time_store

MASTER = bytes(range(32))
DIGEST = hashlib.sha256(b"artifact").digest()
SECRET = "PIN 123456 for slot 0"  # what a foreign library might put in its message


class BrokenHsm:
    """A key store whose library fails with its own exceptions (as a PKCS#11 binding
    does), or with signgate's own when told to."""

    scheme = "pkcs11"
    name = "HSM acme-prod"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        raise self.error

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        raise self.error

    def probe(self, ref: KeyRef) -> None:
        raise self.error

    def destroy(self, ref: KeyRef) -> None:
        raise self.error


HSM_KEY = KeyRef("pkcs11:token=acme;object=release-1", KeyAlgorithm.ECDSA_P256)


def test_routes_by_scheme() -> None:
    soft = SoftwareKeyStore(MASTER, InMemoryBlobs())
    once = one_time_store(MASTER)
    hsm: KeyStore = BrokenHsm(RuntimeError("unused"))
    registry = KeyStoreRegistry(soft, hsm, one_time=once)
    assert registry.for_uri("soft:x") is soft
    assert registry.for_uri("soft-once:x") is once
    assert registry.for_uri(HSM_KEY.uri) is hsm
    with pytest.raises(ConfigError, match="no key store is configured for 'file' keys"):
        registry.for_uri("file:/etc/key.pem")

    for one_time, scheme in ((False, "soft:"), (True, "soft-once:")):
        g = registry.generate(KeyAlgorithm.ED25519, one_time=one_time)
        assert g.uri.startswith(scheme)
        ref = KeyRef(g.uri, KeyAlgorithm.ED25519)
        signature = registry.sign(ref, DigestAlgorithm.SHA256, DIGEST)
        assert verify_digest(load_public_key(g.public_key_pem), None, DigestAlgorithm.SHA256,
                             DIGEST, signature)
        registry.probe(ref)
        registry.destroy(ref)
        with pytest.raises(KeyStoreError, match="no such key"):
            registry.sign(ref, DigestAlgorithm.SHA256, DIGEST)


def test_one_time_keys_go_to_the_default_store_without_a_one_time_store() -> None:
    registry = KeyStoreRegistry(SoftwareKeyStore(MASTER, InMemoryBlobs()))
    assert registry.generate(KeyAlgorithm.ED25519, one_time=True).uri.startswith("soft:")


def test_two_stores_for_one_scheme_are_refused() -> None:
    with pytest.raises(ConfigError, match="two key stores claim 'soft' keys"):
        KeyStoreRegistry(SoftwareKeyStore(MASTER, InMemoryBlobs()),
                         SoftwareKeyStore(MASTER, InMemoryBlobs(), name="another vault"))


def test_a_foreign_exception_becomes_a_keystore_error(caplog: pytest.LogCaptureFixture) -> None:
    original = OSError(5, f"CKR_DEVICE_ERROR ({SECRET})")
    registry = KeyStoreRegistry(SoftwareKeyStore(MASTER, InMemoryBlobs()), BrokenHsm(original))
    calls = {
        "sign with key": lambda: registry.sign(HSM_KEY, DigestAlgorithm.SHA256, DIGEST),
        "open key": lambda: registry.probe(HSM_KEY),
        "destroy key": lambda: registry.destroy(HSM_KEY),
    }
    for doing, call in calls.items():
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="signgate.keystore"), \
                pytest.raises(KeyStoreError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"the key store 'HSM acme-prod' failed to {doing} "
                                  f"{HSM_KEY.uri} (OSError;"), message
        assert SECRET not in message
        assert info.value.code == "keystore_error"
        assert info.value.__cause__ is original
        [record] = caplog.records
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
        assert record.exc_info[1] is original
        assert HSM_KEY.uri in record.getMessage()


def test_a_foreign_exception_while_generating() -> None:
    hsm = BrokenHsm(ValueError("bad template"))
    registry = KeyStoreRegistry(hsm)
    with pytest.raises(KeyStoreError) as info:
        registry.generate(KeyAlgorithm.RSA_3072)
    assert str(info.value).startswith(
        "the key store 'HSM acme-prod' failed to generate a rsa-3072 key (ValueError;")
    assert isinstance(info.value.__cause__, ValueError)


def test_signgate_errors_pass_through_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    own = KeyStoreError("the token is not logged in")
    registry = KeyStoreRegistry(BrokenHsm(own))
    with caplog.at_level(logging.ERROR, logger="signgate.keystore"), \
            pytest.raises(KeyStoreError) as info:
        registry.sign(HSM_KEY, DigestAlgorithm.SHA256, DIGEST)
    assert info.value is own
    assert not caplog.records


class TokenDouble(BrokenHsm):
    """A PKCS#11-like store of one token: shares the scheme, owns its token's URIs."""

    def __init__(self, token: str) -> None:
        super().__init__(RuntimeError("unused"))
        self.token = token
        self.name = f"token {token}"

    def owns(self, uri: str) -> bool:
        return uri.startswith(f"pkcs11:token={self.token};")


def test_stores_sharing_a_scheme_are_routed_by_owner_and_named() -> None:
    soft = SoftwareKeyStore(MASTER, InMemoryBlobs())
    a, b = TokenDouble("a"), TokenDouble("b")
    registry = KeyStoreRegistry(soft, a, b, one_time=one_time_store(MASTER),
                                names={"soft": soft, "hsm-a": a, "hsm-b": b})
    assert registry.for_uri("pkcs11:token=a;id=%01") is a
    assert registry.for_uri("pkcs11:token=b;id=%01") is b
    with pytest.raises(ConfigError, match="no configured key store holds pkcs11:token=c;"):
        registry.for_uri("pkcs11:token=c;id=%01")
    assert registry.store_name("pkcs11:token=b;id=%01") == "hsm-b"
    assert registry.store_name("soft:x") == "soft"
    assert registry.store_name("soft-once:x") == "soft"  # one-time keys: the default's
    assert registry.store("hsm-a") is a
    with pytest.raises(InvalidInput, match=r"^no key store named 'hsm'; configured: hsm-a, "
                                           r"hsm-b, soft$"):
        registry.generate(KeyAlgorithm.ED25519, store="hsm")
    assert registry.generate(KeyAlgorithm.ED25519, store="soft").uri.startswith("soft:")
    with pytest.raises(KeyStoreError, match="the key store 'token a' failed to generate"):
        registry.generate(KeyAlgorithm.ED25519, store="hsm-a")
    assert registry.attributes(KeyRef("soft:x", KeyAlgorithm.ED25519)) is None


def test_a_key_of_a_token_no_longer_configured_names_its_scheme() -> None:
    soft = SoftwareKeyStore(MASTER, InMemoryBlobs())
    a = TokenDouble("a")
    registry = KeyStoreRegistry(a, soft, one_time=a, names={"soft": soft, "hsm": a})
    assert registry.store_name("pkcs11:token=a;id=%01") == "hsm"
    assert registry.store_name("pkcs11:token=gone;id=%01") == "pkcs11"
    assert registry.store_name("soft:x") == "soft"


def test_signings_are_timed_by_kind_of_store() -> None:
    """signgate_keystore_sign_seconds by store kind (the URI scheme); failures apart."""
    from prometheus_client import REGISTRY

    def seen(name: str, store: str) -> float:
        return REGISTRY.get_sample_value(name, {"store": store}) or 0.0

    soft = SoftwareKeyStore(MASTER, InMemoryBlobs())
    registry = KeyStoreRegistry(soft, BrokenHsm(OSError(5, "CKR_DEVICE_ERROR")),
                                one_time=one_time_store(MASTER))
    timed = {s: seen("signgate_keystore_sign_seconds_count", s)
             for s in ("soft", "soft-once", "pkcs11")}
    failed = seen("signgate_keystore_sign_failures_total", "pkcs11")
    for one_time in (False, True, True):
        g = registry.generate(KeyAlgorithm.ECDSA_P256, one_time=one_time)
        registry.sign(KeyRef(g.uri, KeyAlgorithm.ECDSA_P256), DigestAlgorithm.SHA256, DIGEST)
    with pytest.raises(KeyStoreError):
        registry.sign(HSM_KEY, DigestAlgorithm.SHA256, DIGEST)
    assert seen("signgate_keystore_sign_seconds_count", "soft") == timed["soft"] + 1
    assert seen("signgate_keystore_sign_seconds_count", "soft-once") == timed["soft-once"] + 2
    assert seen("signgate_keystore_sign_seconds_count", "pkcs11") == timed["pkcs11"]
    assert seen("signgate_keystore_sign_failures_total", "pkcs11") == failed + 1
