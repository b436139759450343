"""Which database backends a test module's servers run on.

Every end-to-end module runs its servers on SQLite and PostgreSQL (tests/conftest.py,
``backend``), unless it imports :func:`sqlite_only`, with a comment saying why SQLite alone
is enough: its checks do not depend on the database (an ecosystem verifier judges what the
server makes), or the same decisions run on both backends in the service tests it names.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", name="backend")
def sqlite_only() -> str:
    """Imported into a module (``from tests.support.backends import sqlite_only as
    sqlite_only``), this replaces the module's ``backend``: SQLite alone."""
    return "sqlite"
