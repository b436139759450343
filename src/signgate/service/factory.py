"""Assemble a service context from settings: database, key stores, clock."""

from __future__ import annotations

from signgate.clock import Clock, SystemClock
from signgate.config import Settings
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore, one_time_store
from signgate.service.context import Context
from signgate.store.db import Database
from signgate.store.vault import DatabaseBlobs


def build_context(settings: Settings, clock: Clock | None = None) -> Context:
    db = Database(settings.database_url)
    keystores = key_stores(settings.master_key(), db)
    return Context(settings, db, keystores, clock or SystemClock())


def key_stores(master_key: bytes, db: Database) -> KeyStoreRegistry:
    """The software vault over the database's sealed blobs, and the in-memory vault that
    one-time keys are made, used and destroyed in (same master key)."""
    return KeyStoreRegistry(SoftwareKeyStore(master_key, DatabaseBlobs(db)),
                            one_time=one_time_store(master_key))
