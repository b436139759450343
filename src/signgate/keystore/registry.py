"""The key stores of one installation, and the boundary their errors do not cross.

Keys are routed to their store by URI scheme (``soft:``, ``soft-once:``, later
``pkcs11:``); new keys go to the ``default`` store, one-time keys to the ``one_time``
store. Whatever a store raises that is not a :class:`SigngateError` (a PKCS#11 library's
exception, a bug) is logged here with its traceback and turned into a
:class:`KeyStoreError` saying which store failed on which key: callers see one error
family, and a foreign message, which might say anything, never reaches a client.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import ConfigError, KeyStoreError, SigngateError
from signgate.keystore.base import GeneratedKey, KeyRef, KeyStore

log = logging.getLogger("signgate.keystore")


class KeyStoreRegistry:
    """Routes by scheme. ``one_time`` (default: the default store) makes the keys that sign
    once and are destroyed; it should keep them in memory only."""

    def __init__(self, default: KeyStore, *others: KeyStore,
                 one_time: KeyStore | None = None) -> None:
        self.default = default
        self.one_time = one_time or default
        self._by_scheme: dict[str, KeyStore] = {}
        for store in (default, *others, self.one_time):
            known = self._by_scheme.setdefault(store.scheme, store)
            if known is not store:
                raise ConfigError(f"two key stores claim {store.scheme!r} keys: "
                                  f"{known.name!r} and {store.name!r}")

    def for_uri(self, uri: str) -> KeyStore:
        scheme = uri.split(":", 1)[0]
        store = self._by_scheme.get(scheme)
        if store is None:
            raise ConfigError(f"no key store is configured for {scheme!r} keys")
        return store

    def generate(self, algorithm: KeyAlgorithm, *, one_time: bool = False) -> GeneratedKey:
        """A new key in the default store, or in the one-time store."""
        store = self.one_time if one_time else self.default
        with _contained(store, f"generate a {algorithm.value} key"):
            return store.generate(algorithm)

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        store = self.for_uri(ref.uri)
        with _contained(store, f"sign with key {ref.uri}"):
            return store.sign(ref, digest_algorithm, digest)

    def probe(self, ref: KeyRef) -> None:
        store = self.for_uri(ref.uri)
        with _contained(store, f"open key {ref.uri}"):
            store.probe(ref)

    def destroy(self, ref: KeyRef) -> None:
        store = self.for_uri(ref.uri)
        with _contained(store, f"destroy key {ref.uri}"):
            store.destroy(ref)


@contextlib.contextmanager
def _contained(store: KeyStore, doing: str) -> Iterator[None]:
    """Let signgate's own errors through; log any other with its traceback and raise a
    :class:`KeyStoreError` in its place (its type named, its message only in the log)."""
    try:
        yield
    except SigngateError:
        raise
    except Exception as exc:
        log.error("key store %r failed to %s", store.name, doing, exc_info=exc)
        raise KeyStoreError(
            f"the key store {store.name!r} failed to {doing} "
            f"({type(exc).__name__}; details are in the server log)") from exc
