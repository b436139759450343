"""The service-level tests' context: a real database of each backend and the service on it
(``Env``, made by ``test_service.make_env``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_service import Env, make_env


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    e = make_env(database_url, tmp_path)
    try:
        yield e
    finally:
        e.ctx.close()
