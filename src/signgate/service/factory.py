"""The composition root: one typed context from the settings, built eagerly.

Everything the server runs on is made here, before it listens: the database, the key
stores, the clock, the scanners (YARA rules that do not compile raise ConfigError now), the
witnesses and the signing pipeline. Nothing is made on first use, so there is no
string-keyed registry of parts and no configuration error waiting for the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from signgate.clock import Clock, SystemClock
from signgate.config import Settings
from signgate.keystore.base import KeyStore
from signgate.keystore.pkcs11 import Pkcs11KeyStore
from signgate.keystore.registry import SOFT, KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore, one_time_store
from signgate.scan.scanners import Scanners
from signgate.service.context import Context
from signgate.service.pipeline.batch import Pipeline
from signgate.service.witnessing import Witnessing
from signgate.store.db import Database
from signgate.store.vault import DatabaseBlobs

# The key stores over the context's database (the software vault keeps its sealed blobs
# there, inside the caller's transaction: so it must be the same Database object).
KeyStores = Callable[[Database], KeyStoreRegistry]


def build_context(settings: Settings, clock: Clock | None = None,
                  keystores: KeyStores | None = None) -> Context:
    """The context for ``settings``; ``clock`` and ``keystores`` replace the system clock
    and the key stores of ``settings`` (the software vault of ``settings.master_key()``
    and the ``[stores.NAME]`` tokens, each checked now: module, token and PIN)."""
    scanners = build_scanners(settings)
    if keystores is None:
        master_key = settings.master_key()  # unreadable or malformed: ConfigError now
        hsms = hsm_stores(settings)  # a PIN that cannot be read: ConfigError now
        for hsm in hsms:
            hsm.check()  # no module, no such token, a wrong PIN: ConfigError now

        def keystores(db: Database) -> KeyStoreRegistry:
            return key_stores(master_key, db, hsms, settings.default_store)

    db = Database(settings.database_url)
    return Context(settings, db, keystores(db), clock or SystemClock(), scanners=scanners,
                   signing=Pipeline, witnessing=Witnessing)


def hsm_stores(settings: Settings) -> list[Pkcs11KeyStore]:
    """The PKCS#11 stores of ``config.toml``, their PINs read (not yet connected)."""
    return [Pkcs11KeyStore(name, table.module, table.token, table.pin(name))
            for name, table in settings.stores.items()]


def key_stores(master_key: bytes, db: Database, hsms: Sequence[Pkcs11KeyStore] = (),
               default_store: str = SOFT) -> KeyStoreRegistry:
    """The software vault over the database's sealed blobs, the HSM stores, and where
    one-time keys are made, used and destroyed: the in-memory vault (same master key), or
    session objects on the token when the default store is an HSM."""
    soft = SoftwareKeyStore(master_key, DatabaseBlobs(db))
    names: dict[str, KeyStore] = {SOFT: soft, **{h.name: h for h in hsms}}
    default = names[default_store]
    one_time: KeyStore = (default.one_time_store() if isinstance(default, Pkcs11KeyStore)
                          else one_time_store(master_key))
    return KeyStoreRegistry(default, *names.values(), one_time=one_time, names=names)


def build_scanners(settings: Settings) -> Scanners:
    """The scanner set of ``config.toml``; YARA rules that do not compile: ConfigError."""
    return Scanners(clamd_socket=settings.scan_clamd_socket, yara_dir=settings.scan_yara_dir,
                    timeout_seconds=settings.scan_timeout_seconds,
                    yara_max_concurrent=settings.scan_yara_max_concurrent)
