"""The composition root: one typed context from the settings, built eagerly.

Everything the server runs on is made here, before it listens: the database, the key
stores, the clock, the scanners (YARA rules that do not compile raise ConfigError now), the
witnesses and the signing pipeline. Nothing is made on first use, so there is no
string-keyed registry of parts and no configuration error waiting for the first request.
"""

from __future__ import annotations

from collections.abc import Callable

from signgate.clock import Clock, SystemClock
from signgate.config import Settings
from signgate.keystore.registry import KeyStoreRegistry
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
    and the key stores of ``settings.master_key()`` (tests; later an HSM's store)."""
    scanners = build_scanners(settings)
    if keystores is None:
        master_key = settings.master_key()  # unreadable or malformed: ConfigError now

        def keystores(db: Database) -> KeyStoreRegistry:
            return key_stores(master_key, db)

    db = Database(settings.database_url)
    return Context(settings, db, keystores(db), clock or SystemClock(), scanners=scanners,
                   signing=Pipeline, witnessing=Witnessing)


def key_stores(master_key: bytes, db: Database) -> KeyStoreRegistry:
    """The software vault over the database's sealed blobs, and the in-memory vault that
    one-time keys are made, used and destroyed in (same master key)."""
    return KeyStoreRegistry(SoftwareKeyStore(master_key, DatabaseBlobs(db)),
                            one_time=one_time_store(master_key))


def build_scanners(settings: Settings) -> Scanners:
    """The scanner set of ``config.toml``; YARA rules that do not compile: ConfigError."""
    return Scanners(clamd_socket=settings.scan_clamd_socket, yara_dir=settings.scan_yara_dir,
                    timeout_seconds=settings.scan_timeout_seconds,
                    yara_max_concurrent=settings.scan_yara_max_concurrent)
