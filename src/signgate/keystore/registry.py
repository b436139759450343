"""The key stores of one installation, and the boundary their errors do not cross.

Keys are routed to their store by URI scheme (``soft:``, ``soft-once:``, ``pkcs11:``);
where several stores share a scheme (two PKCS#11 tokens), by the store that ``owns`` the
URI (the one whose token the URI names). Each store has the name ``config.toml`` gives it
(``soft`` is the software vault); new keys go to the ``default`` store or the store named
in ``generate(..., store=NAME)``, one-time keys to the ``one_time`` store. Whatever a
store raises that is not a :class:`SigngateError` (a PKCS#11 library's exception, a bug)
is logged here with its traceback and turned into a :class:`KeyStoreError` saying which
store failed on which key: callers see one error family, and a foreign message, which
might say anything, never reaches a client.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

from signgate import metrics
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import ConfigError, InvalidInput, KeyStoreError, SigngateError
from signgate.keystore.base import GeneratedKey, KeyRef, KeyStore

log = logging.getLogger("signgate.keystore")

SOFT = "soft"  # the software vault's name in config.toml (default_store, --store)


@runtime_checkable
class SharesScheme(Protocol):
    """A store that shares its scheme with others and says which URIs are its own."""

    def owns(self, uri: str) -> bool: ...


class KeyStoreRegistry:
    """Routes by scheme (then by ``owns``). ``one_time`` (default: the default store)
    makes the keys that sign once and are destroyed; it should keep them in memory only.
    ``names`` gives the stores their configured names (default: ``soft`` for the default
    store); ``store_name`` answers with them for a key's URI."""

    def __init__(self, default: KeyStore, *others: KeyStore,
                 one_time: KeyStore | None = None,
                 names: Mapping[str, KeyStore] | None = None) -> None:
        self.default = default
        self.one_time = one_time or default
        self.named: dict[str, KeyStore] = dict(names or {SOFT: default})
        self._by_scheme: dict[str, list[KeyStore]] = {}
        for store in (self.one_time, default, *others, *self.named.values()):
            known = self._by_scheme.setdefault(store.scheme, [])
            if any(k is store for k in known):
                continue
            if known and not (isinstance(store, SharesScheme)
                              and all(isinstance(k, SharesScheme) for k in known)):
                raise ConfigError(f"two key stores claim {store.scheme!r} keys: "
                                  f"{known[0].name!r} and {store.name!r}")
            known.append(store)

    def for_uri(self, uri: str) -> KeyStore:
        scheme = uri.split(":", 1)[0]
        stores = self._by_scheme.get(scheme)
        if not stores:
            raise ConfigError(f"no key store is configured for {scheme!r} keys")
        if len(stores) == 1:
            return stores[0]
        for store in stores:
            if isinstance(store, SharesScheme) and store.owns(uri):
                return store
        raise ConfigError(f"no configured key store holds {uri}")

    def store_name(self, uri: str) -> str:
        """The configured name of the store that holds ``uri`` (one-time keys: the
        default store's name); the scheme if no configured store holds it."""
        scheme = uri.split(":", 1)[0]
        for name, store in self.named.items():
            if _holds(store, scheme, uri):
                return name
        if _holds(self.one_time, scheme, uri):
            return self.store_name_of(self.default)
        return scheme

    def store_name_of(self, store: KeyStore) -> str:
        for name, known in self.named.items():
            if known is store:
                return name
        return store.name

    def store(self, name: str) -> KeyStore:
        """The store ``config.toml`` names ``name``; InvalidInput naming those there are."""
        try:
            return self.named[name]
        except KeyError:
            raise InvalidInput(f"no key store named {name!r}; configured: "
                               f"{', '.join(sorted(self.named))}") from None

    def generate(self, algorithm: KeyAlgorithm, *, one_time: bool = False,
                 store: str | None = None) -> GeneratedKey:
        """A new key in the default store, the store named ``store``, or the one-time
        store."""
        target = self.one_time if one_time else (
            self.store(store) if store is not None else self.default)
        with _contained(target, f"generate a {algorithm.value} key"):
            return target.generate(algorithm)

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        store = self.for_uri(ref.uri)
        started = time.perf_counter()
        try:
            with _contained(store, f"sign with key {ref.uri}"):
                signature = store.sign(ref, digest_algorithm, digest)
        except Exception:
            metrics.keystore_failed(store.scheme)
            raise
        # By kind of store (its scheme): the latency an HSM adds is what this is for.
        metrics.keystore_signed(store.scheme, time.perf_counter() - started)
        return signature

    def probe(self, ref: KeyRef) -> None:
        store = self.for_uri(ref.uri)
        with _contained(store, f"open key {ref.uri}"):
            store.probe(ref)

    def attributes(self, ref: KeyRef) -> dict[str, bool | None] | None:
        """The security attributes of an HSM key (sensitive, extractable, ...) as its
        token reports them; None for a store that has none (the software vault)."""
        store = self.for_uri(ref.uri)
        read = getattr(store, "attributes", None)
        if read is None:
            return None
        with _contained(store, f"read the attributes of key {ref.uri}"):
            values = read(ref).as_dict()
        return {str(k): None if v is None else bool(v) for k, v in values.items()}

    def destroy(self, ref: KeyRef) -> None:
        store = self.for_uri(ref.uri)
        with _contained(store, f"destroy key {ref.uri}"):
            store.destroy(ref)

    def close(self) -> None:
        """Close what the stores hold open (HSM sessions); for shutdown."""
        for stores in self._by_scheme.values():
            for store in stores:
                close = getattr(store, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()


def _holds(store: KeyStore, scheme: str, uri: str) -> bool:
    return store.scheme == scheme and (not isinstance(store, SharesScheme) or store.owns(uri))


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
