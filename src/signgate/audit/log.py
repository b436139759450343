"""Append to the audit chain (verifying it is audit/verify.py's job).

Each entry stores the hash of the previous one and its own hash over a canonical
encoding of all its fields (``audit.model.compute_hash``). Appends run inside the
caller's transaction, so an entry is committed together with the change it records, or
not at all. The ``audit_head`` row holds the last sequence number and hash; locking it
(``SELECT ... FOR UPDATE``) at the start of every write transaction orders concurrent
writers, also across API nodes.
"""

from __future__ import annotations

from datetime import datetime
from hashlib import sha256

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from signgate.audit.model import Outcome, Record, entry_bytes, time_text
from signgate.audit.tree import HashCache, LogTree
from signgate.crypto.canonical import canonical_json
from signgate.store.models import AuditEntry, AuditHead, LogHash, table

_entry_table, _head, _hashes = table(AuditEntry), table(AuditHead), table(LogHash)
LOCK_HEAD = select(_head.c.seq, _head.c.entry_hash, _head.c.tree_size).where(
    _head.c.id == 1).with_for_update()
INSERT_ENTRY = insert(_entry_table)
READ_HEAD = select(_head.c.seq).where(_head.c.id == 1)
CONTROL_SINCE = select(_entry_table.c.seq).where(
    _entry_table.c.seq > bindparam("after"), _entry_table.c.outcome != Outcome.REFUSED.value,
    _entry_table.c.action.not_in(bindparam("neutral", expanding=True))).limit(1)
MOVE_HEAD = update(_head).where(_head.c.id == 1).values(
    seq=bindparam("new_seq"), entry_hash=bindparam("new_hash"), tree_size=bindparam("new_tree"))


def head_seq(conn: Connection) -> int:
    """Where the chain stands, read without the lock (a write transaction's head is
    :attr:`AuditWriter.seq`)."""
    return int(conn.execute(READ_HEAD).scalar_one())


class AuditWriter:
    """Appends entries to the chain within one write transaction.

    Created when the transaction begins: it locks the head row at once, so that every
    writer (on any API node) is ordered and the reads it makes afterwards see all earlier
    commits. Entries are hashed as they are appended, added to the log's Merkle tree as
    leaves (``tree``), and inserted together by ``flush``, which the transaction owner calls
    just before committing (and ``committed`` after).
    """

    def __init__(self, session: Session, cache: HashCache | None = None) -> None:
        self._conn = session.connection()
        head = self._conn.execute(LOCK_HEAD).one()
        self.seq: int = head.seq
        self.head_hash: str = head.entry_hash
        self._rows: list[dict[str, object]] = []
        # The leaf data of this transaction's entries by seq: a receipt carries its entry.
        self.leaves: dict[int, bytes] = {}
        # The checkpoint note signed for this transaction, set by its owner on commit.
        self.checkpoint: bytes | None = None
        # Whether every entry of this transaction records a refusal: such a transaction
        # may commit when the log key cannot sign its checkpoint (see Context.transaction).
        self.only_refusals = True
        self.tree = LogTree(self._conn, head.tree_size, cache or HashCache())
        self._tree_at_start = head.tree_size
        if head.tree_size != head.seq:  # a database from before the log: build it now
            self.tree.catch_up(head.seq)

    def append(self, record: Record, now: datetime) -> int:
        """Hash ``record`` onto the chain; returns its sequence number."""
        seq = self.seq + 1
        if record.outcome is not Outcome.REFUSED:
            self.only_refusals = False
        # details hold JSON values only, so hashing their canonical text equals hashing
        # what verify_chain reads back from the stored text.
        details = canonical_json(record.details).decode("utf-8")
        leaf = entry_bytes(
            seq, time_text(now), record.actor, record.action.value, record.outcome.value,
            record.subject, record.project, record.key_ref, details, self.head_hash,
        )
        entry_hash = sha256(leaf).hexdigest()
        self.tree.append(leaf)
        self.leaves[seq] = leaf
        self._rows.append({
            "seq": seq, "time": now, "actor": record.actor, "action": record.action.value,
            "outcome": record.outcome.value, "subject": record.subject,
            "project": record.project, "key_ref": record.key_ref, "details": details,
            "prev_hash": self.head_hash, "entry_hash": entry_hash,
        })
        self.seq, self.head_hash = seq, entry_hash
        return seq

    def settled_since(self, seq: int, neutral: frozenset[str]) -> bool:
        """Whether every entry committed after ``seq`` (up to this transaction's start)
        records a refusal or one of the ``neutral`` actions: nothing a decision made as
        of ``seq`` depended on can have changed since."""
        if seq == self.seq:
            return True
        return self._conn.execute(CONTROL_SINCE, {"after": seq,
                                                  "neutral": sorted(neutral)}).first() is None

    def mark(self) -> tuple[int, str, int]:
        """Where the chain stands now, for :meth:`reset` (undoing a savepoint's entries)."""
        return self.seq, self.head_hash, len(self._rows)

    def reset(self, mark: tuple[int, str, int]) -> None:
        seq, self.head_hash, pending = mark
        if pending > len(self._rows):
            raise RuntimeError("audit entries were flushed after the mark")
        del self._rows[pending:]
        for gone in range(seq + 1, self.seq + 1):
            self.leaves.pop(gone, None)
        self.tree.truncate(self.tree.size - (self.seq - seq))
        self.seq = seq

    @property
    def grew(self) -> bool:
        """Whether this transaction added leaves to the tree (then it gets a checkpoint)."""
        return bool(self.tree.size != self._tree_at_start)

    def flush(self) -> None:
        if self._rows:
            self._conn.execute(INSERT_ENTRY, self._rows)
            self._rows = []
        self.tree.flush()
        if self.grew:
            self._conn.execute(MOVE_HEAD, {"new_seq": self.seq, "new_hash": self.head_hash,
                                           "new_tree": self.tree.size})

    def committed(self) -> None:
        """The transaction committed: what the tree wrote may now be cached for others."""
        self.tree.committed()

