"""The audit log's Merkle tree in the database: every entry a leaf, written in the same
transaction as the entry, caught up for databases made before it, equal to the tree an
independent in-memory build computes, with proofs that read O(log n) rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from signgate.audit.log import AuditWriter
from signgate.audit.model import Action, Outcome, Record, entry_bytes, time_text
from signgate.audit.tree import HashCache, LogTree
from signgate.store.db import Database
from signgate.store.models import AuditEntry, AuditHead, LogHash
from signgate.transparency import merkle

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    d = Database(database_url)
    d.upgrade()
    yield d
    d.dispose()


def append(db: Database, n: int, start: int = 0, cache: HashCache | None = None) -> None:
    with db.write() as session:
        writer = AuditWriter(session, cache)
        for i in range(start, start + n):
            writer.append(Record(f"ci-{i % 3}", Action.SIGN, Outcome.ALLOWED, f"a{i}.bin",
                                 "p", "p/k", {"i": i, "name": "é\u2028"}),
                          T0 + timedelta(seconds=i))
        writer.flush()
    writer.committed()


def reference(db: Database) -> merkle.MemoryHashStore:
    """The same leaves (each entry's canonical bytes) in the pure in-memory tree."""
    ref = merkle.MemoryHashStore()
    with db.read() as session:
        for e in session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars():
            ref.append(entry_bytes(e.seq, time_text(e.time), e.actor, e.action, e.outcome,
                                   e.subject, e.project, e.key_ref, e.details, e.prev_hash))
    return ref


class CountingTree(LogTree):
    reads = 0

    def read_hashes(self, indexes: list[int]) -> list[bytes]:  # type: ignore[override]
        CountingTree.reads += len(indexes)
        return super().read_hashes(indexes)


def test_the_stored_tree_is_the_tree_of_the_entries(db: Database) -> None:
    for batch in (1, 2, 5, 37, 256):  # sizes that end on and off power-of-two boundaries
        append(db, batch, start=0 if batch == 1 else 10_000 + batch)
    ref = reference(db)
    with db.read() as session:
        head = session.execute(select(AuditHead)).scalar_one()
        assert head.tree_size == head.seq == ref.size
        tree = LogTree(session.connection(), head.tree_size, HashCache())
        assert tree.root() == ref.root()
        stored = session.execute(select(func.count()).select_from(LogHash)).scalar_one()
        assert stored == merkle.stored_hash_count(ref.size)
        for index in (0, 1, ref.size // 2, ref.size - 1):
            proof = tree.inclusion(index)
            assert proof == merkle.prove_record(ref.size, index, ref)
            assert merkle.verify_inclusion(index, ref.size, ref.hashes[
                merkle.stored_hash_index(0, index)], proof, ref.root())
        for old in (1, 3, 100, ref.size - 1):
            assert tree.consistency(old) == merkle.prove_tree(ref.size, old, ref)


def test_a_savepoint_rolled_back_takes_its_leaves_with_it(db: Database) -> None:
    append(db, 3)
    with db.write() as session:
        writer = AuditWriter(session)
        writer.append(Record("a", Action.SIGN, Outcome.ALLOWED, "kept"), T0)
        mark = writer.mark()
        for i in range(4):
            writer.append(Record("a", Action.SIGN, Outcome.ALLOWED, f"undone {i}"), T0)
        writer.reset(mark)
        writer.append(Record("a", Action.SIGN, Outcome.ALLOWED, "after"), T0)
        writer.flush()
    ref = reference(db)
    assert ref.size == 5
    with db.read() as session:
        assert LogTree(session.connection(), 5, HashCache()).root() == ref.root()


def test_a_failed_transaction_leaves_no_leaves(db: Database) -> None:
    append(db, 4)

    def failing() -> None:
        with db.write() as session:
            writer = AuditWriter(session)
            writer.append(Record("a", Action.SIGN, Outcome.ALLOWED, "lost"), T0)
            writer.flush()
            raise RuntimeError("the commit fails")

    with pytest.raises(RuntimeError):
        failing()
    append(db, 2, start=50)
    ref = reference(db)
    with db.read() as session:
        assert session.execute(select(AuditHead.tree_size)).scalar_one() == 6
        assert LogTree(session.connection(), 6, HashCache()).root() == ref.root()


def test_a_database_from_before_the_log_is_caught_up_by_the_next_writer(db: Database) -> None:
    append(db, 40)
    with db.write() as session:  # as after upgrading: entries, no tree
        session.execute(LogHash.__table__.delete())
        session.execute(update(AuditHead).values(tree_size=0))
    append(db, 3, start=40)
    ref = reference(db)
    with db.read() as session:
        assert session.execute(select(AuditHead.tree_size)).scalar_one() == 43
        assert LogTree(session.connection(), 43, HashCache()).root() == ref.root()


def test_proofs_read_logarithmically_many_hashes(db: Database) -> None:
    append(db, 3000)
    with db.read() as session:
        tree = CountingTree(session.connection(), 3000, HashCache(size=0))
        CountingTree.reads = 0
        tree.root()
        tree.inclusion(1234)
        tree.consistency(1777)
        # root, one inclusion and one consistency proof: each O(log n), not O(n)
        assert CountingTree.reads <= 6 * (3000).bit_length()
