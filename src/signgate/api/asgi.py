"""ASGI entry point for 'signgate serve' (and any ASGI server): the data directory comes
from SIGNGATE_DATA_DIR, the database from SIGNGATE_DATABASE_URL or the data directory.

Under uvicorn, run it with ``--http signgate.api.protocol:DeadlineProtocol`` (as 'signgate
serve' does) to keep the header deadline; the factory sets it from config.toml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from signgate.api import protocol
from signgate.api.app import create_app
from signgate.config import DEFAULT_DATA_DIR, load_settings
from signgate.service.factory import build_context


def create() -> Any:
    settings = load_settings(Path(os.environ.get("SIGNGATE_DATA_DIR", DEFAULT_DATA_DIR)))
    protocol.configure(settings.http_header_timeout_seconds)
    return create_app(build_context(settings))
