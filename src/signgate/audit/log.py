"""Append to the audit chain and verify it.

Each entry stores the hash of the previous one and its own hash over a canonical
encoding of all its fields (``audit.model.compute_hash``). Appends run inside the
caller's transaction, so an entry is committed together with the change it records, or
not at all. The ``audit_head`` row holds the last sequence number and hash; locking it
(``SELECT ... FOR UPDATE``) at the start of every write transaction orders concurrent
writers, also across API nodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from signgate.audit.model import GENESIS_HASH, Record, compute_hash
from signgate.crypto.canonical import canonical_json
from signgate.store.models import AuditEntry, AuditHead, table

_entry_table, _head = table(AuditEntry), table(AuditHead)
LOCK_HEAD = select(_head.c.seq, _head.c.entry_hash).where(_head.c.id == 1).with_for_update()
INSERT_ENTRY = insert(_entry_table)
MOVE_HEAD = update(_head).where(_head.c.id == 1).values(
    seq=bindparam("new_seq"), entry_hash=bindparam("new_hash"))


class AuditWriter:
    """Appends entries to the chain within one write transaction.

    Created when the transaction begins: it locks the head row at once, so that every
    writer (on any API node) is ordered and the reads it makes afterwards see all earlier
    commits. Entries are hashed as they are appended and inserted together by ``flush``,
    which the transaction owner calls just before committing.
    """

    def __init__(self, session: Session) -> None:
        self._conn = session.connection()
        head = self._conn.execute(LOCK_HEAD).one()
        self.seq: int = head.seq
        self.head_hash: str = head.entry_hash
        self._rows: list[dict[str, object]] = []

    def append(self, record: Record, now: datetime) -> int:
        """Hash ``record`` onto the chain; returns its sequence number."""
        seq = self.seq + 1
        # details hold JSON values only, so hashing them as given equals hashing what
        # verify_chain parses back from the stored text.
        details = record.details
        entry_hash = compute_hash(
            seq, now, record.actor, record.action.value, record.outcome.value, record.subject,
            record.project, record.key_ref, details, self.head_hash,
        )
        self._rows.append({
            "seq": seq, "time": now, "actor": record.actor, "action": record.action.value,
            "outcome": record.outcome.value, "subject": record.subject,
            "project": record.project, "key_ref": record.key_ref,
            "details": canonical_json(details).decode("utf-8"),
            "prev_hash": self.head_hash, "entry_hash": entry_hash,
        })
        self.seq, self.head_hash = seq, entry_hash
        return seq

    def mark(self) -> tuple[int, str, int]:
        """Where the chain stands now, for :meth:`reset` (undoing a savepoint's entries)."""
        return self.seq, self.head_hash, len(self._rows)

    def reset(self, mark: tuple[int, str, int]) -> None:
        self.seq, self.head_hash, pending = mark
        if pending > len(self._rows):
            raise RuntimeError("audit entries were flushed after the mark")
        del self._rows[pending:]

    def flush(self) -> None:
        if not self._rows:
            return
        self._conn.execute(INSERT_ENTRY, self._rows)
        self._conn.execute(MOVE_HEAD, {"new_seq": self.seq, "new_hash": self.head_hash})
        self._rows = []


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def _entries(session: Session) -> Iterator[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000)
    yield from session.execute(stmt).scalars()


def verify_chain(session: Session) -> ChainReport:
    """Recompute the chain; name the first entry that was edited, deleted, inserted or moved.

    ``session`` must read one snapshot (``Database.read(snapshot=True)``): the head and the
    entries are compared with each other, so they must be of the same instant.
    """
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0

    def bad(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, count, head.seq, head.entry_hash, seq, problem)

    for e in _entries(session):
        if e.seq != expected_seq:
            if e.seq > expected_seq:
                gap = (
                    f"entry {expected_seq} is missing"
                    if e.seq == expected_seq + 1
                    else f"entries {expected_seq}-{e.seq - 1} are missing"
                )
                return bad(expected_seq, f"{gap} (deleted); the chain resumes at {e.seq}")
            return bad(e.seq, f"entry {e.seq} is out of sequence")
        try:
            details = json.loads(e.details)
        except ValueError:
            return bad(e.seq, f"entry {e.seq} was edited: its details are not valid JSON")
        recomputed = compute_hash(
            e.seq, e.time, e.actor, e.action, e.outcome, e.subject, e.project, e.key_ref,
            details, e.prev_hash,
        )
        if recomputed != e.entry_hash:
            return bad(
                e.seq,
                f"entry {e.seq} does not match its hash: it was edited, or moved here "
                "from another position",
            )
        if e.prev_hash != prev_hash:
            return bad(
                e.seq,
                f"entry {e.seq} does not follow entry {e.seq - 1}: an entry was inserted, "
                "replaced or reordered",
            )
        prev_hash = e.entry_hash
        expected_seq += 1
        count += 1
    last = expected_seq - 1
    if head.seq != last or head.entry_hash != prev_hash:
        if head.seq > last:
            return bad(last + 1, f"entries {last + 1}-{head.seq} are missing (deleted)")
        return bad(
            head.seq + 1 if head.seq < last else last,
            f"the chain head (entry {head.seq}) does not match the last entry ({last}): "
            "entries were added or edited outside signgate",
        )
    return ChainReport(True, count, head.seq, head.entry_hash)
