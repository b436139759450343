"""The software vault's blobs in the database: they join the caller's transaction (commit
and roll back with it, never wait on the write lock it holds), or use their own."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from signgate.clock import FixedClock
from signgate.config import Settings
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import KeyStoreError
from signgate.keystore.base import KeyRef
from signgate.keystore.soft import SoftwareKeyStore
from signgate.service import keys, projects
from signgate.service.bootstrap import bootstrap_admin
from signgate.service.context import Caller, Context
from signgate.service.factory import build_context, key_stores
from signgate.service.records.keys import get_key, new_version
from signgate.store.db import Database
from signgate.store.models import KeyVersion, VaultEntry
from signgate.store.vault import DatabaseBlobs

T = TypeVar("T")
MASTER = os.urandom(32)
URI = "soft:00000000-0000-0000-0000-000000000001"


class Rollback(Exception):
    pass


def within(seconds: float, work: Callable[[], T]) -> T:
    """Run ``work`` on a thread; fail (instead of hanging the suite) if it does not end in
    time, as a second writer waiting on SQLite's write gate would not."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "deadlocked: a second write transaction was opened"
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


def _rows(db: Database) -> int:
    with db.read() as session:
        return session.execute(select(func.count()).select_from(VaultEntry)).scalar_one()


def test_own_transactions_outside_any(db: Database) -> None:
    blobs = DatabaseBlobs(db)
    assert blobs.get(URI) is None
    blobs.put(URI, b"\x01sealed")
    assert blobs.get(URI) == b"\x01sealed"
    assert _rows(db) == 1
    blobs.delete(URI)
    assert blobs.get(URI) is None
    blobs.delete(URI)  # nothing to delete: no error
    assert _rows(db) == 0


def test_joins_the_write_transaction_and_commits_with_it(db: Database) -> None:
    blobs = DatabaseBlobs(db)

    def work() -> None:
        with db.write():
            blobs.put(URI, b"\x01sealed")
            assert blobs.get(URI) == b"\x01sealed"  # seen inside the transaction
            # ... and by nobody else before the commit
            seen = within(30, lambda: DatabaseBlobs(db).get(URI))
            assert seen is None
            blobs.delete(URI)
            blobs.put(URI, b"\x01again")

    within(30, work)
    assert blobs.get(URI) == b"\x01again"


def test_rolls_back_with_the_write_transaction(db: Database) -> None:
    store = SoftwareKeyStore(MASTER, DatabaseBlobs(db))

    made: list[str] = []

    def generate_then_fail() -> None:
        with db.write():
            generated = store.generate(KeyAlgorithm.ECDSA_P256)
            made.append(generated.uri)
            ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P256)
            store.sign(ref, DigestAlgorithm.SHA256, bytes(32))  # opens from this transaction
            raise Rollback

    def work() -> str:
        with pytest.raises(Rollback):
            generate_then_fail()
        return made[0]

    uri = within(30, work)
    assert DatabaseBlobs(db).get(uri) is None
    assert _rows(db) == 0
    with pytest.raises(KeyStoreError, match="no such key"):
        SoftwareKeyStore(MASTER, DatabaseBlobs(db)).probe(KeyRef(uri, KeyAlgorithm.ECDSA_P256))


def test_reads_join_the_read_transaction(db: Database) -> None:
    """A read inside a snapshot sees the snapshot, not a blob committed after it began."""
    blobs = DatabaseBlobs(db)
    with db.read(snapshot=True) as session:
        session.execute(select(func.count()).select_from(VaultEntry)).scalar_one()
        within(30, lambda: blobs.put(URI, b"\x01later"))
        assert blobs.get(URI) is None
    assert blobs.get(URI) == b"\x01later"


@pytest.fixture
def ctx(db: Database, database_url: str, tmp_path: Path) -> Iterator[Context]:
    """A context on the database ``db`` upgraded (its own Database object, as serve's)."""
    context = build_context(Settings(tmp_path, database_url),
                            FixedClock(datetime(2026, 3, 1, tzinfo=UTC)),
                            lambda own: key_stores(MASTER, own))
    admin = Caller(bootstrap_admin(context))
    projects.create(context, admin, "p")
    keys.create(context, admin, "p/k")
    yield context
    context.close()


def test_a_key_version_and_its_blob_commit_or_roll_back_together(ctx: Context) -> None:
    db = ctx.db
    before = _rows(db)

    made: list[str] = []

    def new_version_then_fail() -> None:
        with ctx.transaction() as session:
            key = get_key(session, "p", "k")
            made.append(new_version(ctx, session, key, key.current_version + 1,
                                    ctx.clock.now()).uri)
            raise Rollback

    def rolled_back() -> str:
        with pytest.raises(Rollback):
            new_version_then_fail()
        return made[0]

    uri = within(60, rolled_back)
    assert _rows(db) == before
    with db.read() as session:
        assert session.execute(select(KeyVersion).where(KeyVersion.uri == uri)).first() is None

    def committed() -> str:
        with ctx.transaction() as session:
            key = get_key(session, "p", "k")
            return new_version(ctx, session, key, key.current_version + 1,
                               ctx.clock.now()).uri

    uri = within(60, committed)
    assert _rows(db) == before + 1
    assert DatabaseBlobs(db).get(uri) is not None
    ctx.keystores.probe(KeyRef(uri, KeyAlgorithm.ECDSA_P256))
