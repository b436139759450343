"""Assemble a service context from settings: database, key stores, clock."""

from __future__ import annotations

from signgate.clock import Clock, SystemClock
from signgate.config import Settings
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore
from signgate.service.context import Context
from signgate.store.db import Database


def build_context(settings: Settings, clock: Clock | None = None) -> Context:
    db = Database(settings.database_url)
    keystores = KeyStoreRegistry(SoftwareKeyStore(settings.master_key()))
    return Context(settings, db, keystores, clock or SystemClock())
