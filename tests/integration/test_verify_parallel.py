"""`audit verify` in ranges by worker processes finds exactly what one pass finds.

A log of a few thousand entries is checked with the range length lowered (so it spans
several ranges and two worker processes, as a million-entry log does), clean and after each
kind of tampering, on SQLite and PostgreSQL; the report, down to the first bad entry and the
words, must equal the single pass's. The single pass is the one the e2e tamper tests and the
rewrite tests pin to their expected findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from hashlib import sha256

import pytest
from sqlalchemy import delete, insert, select, update

from signgate.audit import verify
from signgate.audit.log import AuditWriter
from signgate.audit.model import Action, Outcome, Record, entry_bytes, time_text
from signgate.store.db import Database
from signgate.store.models import AuditEntry, AuditHead, LogCheckpoint, table
from tests.support import postgres

T0 = datetime(2026, 5, 1, tzinfo=UTC)
RANGE = 1024  # the lowered range length: 4,500 entries make five ranges
ENTRIES = 4_500
_entries, _head = table(AuditEntry), table(AuditHead)


@pytest.fixture(scope="module")
def db(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with ExitStack() as stack:
        url = (stack.enter_context(postgres.temporary_database()) if backend == "postgres"
               else f"sqlite:///{tmp_path_factory.mktemp('verify') / 'signgate.db'}")
        yield from _log(url)


def _log(url: str) -> Iterator[Database]:
    d = Database(url)
    d.upgrade()
    with d.write() as session:
        writer = AuditWriter(session)
        for i in range(ENTRIES):
            writer.append(Record(f"ci-{i % 3}", Action.SIGN, Outcome.ALLOWED, f"a{i}.bin",
                                 "p", "p/k", {"i": i}), T0 + timedelta(seconds=i))
        writer.flush()
        root = writer.tree.root()
        # The checkpoint a write transaction signs (its note does not matter here).
        session.execute(insert(table(LogCheckpoint)).values(
            size=ENTRIES, root_hash=root, note="", created_at=T0, cosignatures=0))
    yield d
    d.dispose()


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "_MIN_RANGE", RANGE)


def both_ways(db: Database) -> verify.ChainReport:
    with db.read(snapshot=True) as session:
        single = verify.verify_chain(session, workers=1)
    with db.read(snapshot=True) as session:
        parallel = verify.verify_chain(session, workers=2)
    assert parallel == single
    return single


def row(db: Database, seq: int) -> dict[str, object]:
    with db.read() as session:
        return dict(session.execute(select(_entries).where(_entries.c.seq == seq))
                    .one()._mapping)


def tampered(db: Database, change: Callable[[Database], None]) -> verify.ChainReport:
    """The report on the log as ``change`` leaves it; the log is restored afterwards."""
    with db.read() as session:
        saved = [dict(r._mapping) for r in session.execute(select(_entries))]
        head = dict(session.execute(select(_head)).one()._mapping)
    try:
        change(db)
        return both_ways(db)
    finally:
        with db.write() as session:
            session.execute(delete(_entries))
            session.execute(insert(_entries), saved)
            session.execute(update(_head).values(**head))


def test_a_clean_log_is_intact_both_ways(db: Database) -> None:
    report = both_ways(db)
    assert report.ok
    assert report.entries == ENTRIES


@pytest.mark.parametrize("seq", [2 * RANGE + 1, 2 * RANGE + 7, ENTRIES])
def test_an_edited_entry(db: Database, seq: int) -> None:
    def edit(d: Database) -> None:
        with d.write() as session:
            session.execute(update(_entries).where(_entries.c.seq == seq)
                            .values(subject="evil.bin"))

    report = tampered(db, edit)
    assert not report.ok
    assert report.first_bad_seq == seq
    assert f"entry {seq} does not match its hash" in (report.problem or "")


@pytest.mark.parametrize("seqs", [[RANGE + 1], [RANGE, RANGE + 1],
                                  list(range(RANGE + 1, 2 * RANGE + 1)), [ENTRIES]])
def test_deleted_entries(db: Database, seqs: list[int]) -> None:
    """One at a range's start, two across a boundary, a whole range, the newest."""
    def drop(d: Database) -> None:
        with d.write() as session:
            session.execute(delete(_entries).where(_entries.c.seq.in_(seqs)))

    report = tampered(db, drop)
    assert not report.ok
    assert report.first_bad_seq == seqs[0]
    assert "missing (deleted)" in (report.problem or "")


def test_a_history_rewritten_so_the_chain_checks_is_caught_by_the_tree(db: Database) -> None:
    """Edit an entry at a range boundary, rehash it and every later entry and move the
    head: the chain is intact, the tree is not the signed checkpoint's."""
    def rewrite(d: Database) -> None:
        first = 3 * RANGE + 1
        prev = row(d, first - 1)["entry_hash"]
        with d.write() as session:
            rows = session.execute(select(_entries).where(_entries.c.seq >= first)
                                   .order_by(_entries.c.seq)).all()
            for r in rows:
                subject = "evil.bin" if r.seq == first else r.subject
                data = entry_bytes(r.seq, time_text(r.time), r.actor, r.action, r.outcome,
                                   subject, r.project, r.key_ref, r.details, str(prev))
                new = sha256(data).hexdigest()
                session.execute(update(_entries).where(_entries.c.seq == r.seq).values(
                    subject=subject, prev_hash=prev, entry_hash=new))
                prev = new
            session.execute(update(_head).values(entry_hash=prev))

    report = tampered(db, rewrite)
    assert not report.ok
    assert report.first_bad_seq == 3 * RANGE + 1
    assert "do not hash to the log's signed checkpoint" in (report.problem or "")


def test_an_entry_beyond_the_head(db: Database) -> None:
    def forge(d: Database) -> None:
        last = row(d, ENTRIES)
        with d.write() as session:
            session.execute(insert(_entries).values({**last, "seq": ENTRIES + 1,
                                                     "prev_hash": last["entry_hash"]}))

    report = tampered(db, forge)
    assert not report.ok
    assert report.first_bad_seq == ENTRIES + 1
    assert "added or edited outside signgate" in (report.problem or "")
