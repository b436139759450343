"""Choose the key store for a key URI by its scheme (``soft:``, later ``pkcs11:``)."""

from __future__ import annotations

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ConfigError
from signgate.keystore.base import KeyHandle, KeyStore


class KeyStoreRegistry:
    def __init__(self, default: KeyStore, *others: KeyStore) -> None:
        self.default = default
        self._by_scheme: dict[str, KeyStore] = {s.scheme: s for s in (default, *others)}

    def for_uri(self, uri: str) -> KeyStore:
        scheme = uri.split(":", 1)[0]
        store = self._by_scheme.get(scheme)
        if store is None:
            raise ConfigError(f"no key store is configured for {scheme!r} keys")
        return store

    def sign(self, handle: KeyHandle, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        return self.for_uri(handle.uri).sign(handle, digest_algorithm, digest)

    def probe(self, handle: KeyHandle) -> None:
        self.for_uri(handle.uri).probe(handle)
