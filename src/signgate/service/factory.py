"""Assemble a service context from settings: database, key stores, clock."""

from __future__ import annotations

from signgate.clock import Clock, SystemClock
from signgate.config import Settings
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore
from signgate.scan.scanners import Scanners
from signgate.service.context import Context
from signgate.store.db import Database


def build_context(settings: Settings, clock: Clock | None = None) -> Context:
    db = Database(settings.database_url)
    keystores = KeyStoreRegistry(SoftwareKeyStore(settings.master_key()))
    return Context(settings, db, keystores, clock or SystemClock())


def build_scanners(settings: Settings) -> Scanners:
    """The scanner set of ``config.toml``; YARA rules that do not compile: ConfigError."""
    return Scanners(clamd_socket=settings.scan_clamd_socket, yara_dir=settings.scan_yara_dir,
                    timeout_seconds=settings.scan_timeout_seconds,
                    yara_max_concurrent=settings.scan_yara_max_concurrent)
