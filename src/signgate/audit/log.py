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
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256

from sqlalchemy import DateTime, bindparam, insert, select, type_coerce, update
from sqlalchemy.orm import Session

from signgate.audit.model import GENESIS_HASH, Record, entry_bytes, time_text
from signgate.audit.tree import HashCache, LogTree
from signgate.crypto.canonical import canonical_json
from signgate.store.models import AuditEntry, AuditHead, LogCheckpoint, LogHash, table
from signgate.transparency.merkle import StreamingRoot, leaf_hash, stored_hash_index

_entry_table, _head, _hashes = table(AuditEntry), table(AuditHead), table(LogHash)
LOCK_HEAD = select(_head.c.seq, _head.c.entry_hash, _head.c.tree_size).where(
    _head.c.id == 1).with_for_update()
INSERT_ENTRY = insert(_entry_table)
MOVE_HEAD = update(_head).where(_head.c.id == 1).values(
    seq=bindparam("new_seq"), entry_hash=bindparam("new_hash"), tree_size=bindparam("new_tree"))


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
        self.tree = LogTree(self._conn, head.tree_size, cache or HashCache())
        self._tree_at_start = head.tree_size
        if head.tree_size != head.seq:  # a database from before the log: build it now
            self.tree.catch_up(head.seq)

    def append(self, record: Record, now: datetime) -> int:
        """Hash ``record`` onto the chain; returns its sequence number."""
        seq = self.seq + 1
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


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


# The time as the database driver gives it (naive UTC on SQLite), without the column
# type's conversion to an aware datetime: time_text formats either the same.
ENTRIES = select(_entry_table.c.seq, type_coerce(_entry_table.c.time, DateTime(timezone=True)),
                 _entry_table.c.actor,
                 _entry_table.c.action, _entry_table.c.outcome, _entry_table.c.subject,
                 _entry_table.c.project, _entry_table.c.key_ref, _entry_table.c.details,
                 _entry_table.c.prev_hash, _entry_table.c.entry_hash,
                 ).order_by(_entry_table.c.seq)


def verify_chain(session: Session) -> ChainReport:
    """Recompute the chain; name the first entry that was edited, deleted, inserted or moved.

    ``session`` must read one snapshot (``Database.read(snapshot=True)``): the head and the
    entries are compared with each other, so they must be of the same instant. Rows are
    read as plain tuples in batches and hashed from their stored text (``entry_bytes``):
    a million entries in seconds.
    """
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    checkpoint = session.execute(
        select(LogCheckpoint.size, LogCheckpoint.root_hash)
        .order_by(LogCheckpoint.size.desc()).limit(1)).first()
    tree = StreamingRoot()
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0

    def bad(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, count, head.seq, head.entry_hash, seq, problem)

    rows = session.connection().execution_options(yield_per=5000).execute(ENTRIES)
    for seq, time, actor, action, outcome, subject, project, key_ref, details, \
            stored_prev, entry_hash in rows:
        if seq != expected_seq:
            if seq > expected_seq:
                gap = (
                    f"entry {expected_seq} is missing"
                    if seq == expected_seq + 1
                    else f"entries {expected_seq}-{seq - 1} are missing"
                )
                return bad(expected_seq, f"{gap} (deleted); the chain resumes at {seq}")
            return bad(seq, f"entry {seq} is out of sequence")
        data = entry_bytes(seq, time_text(time), actor, action, outcome, subject, project,
                           key_ref, details, stored_prev)
        recomputed = sha256(data).hexdigest()
        if checkpoint is not None and seq <= checkpoint.size:
            tree.add(leaf_hash(data))
        if recomputed != entry_hash:
            if not _is_json(details):
                return bad(seq, f"entry {seq} was edited: its details are not valid JSON")
            return bad(
                seq,
                f"entry {seq} does not match its hash: it was edited, or moved here "
                "from another position",
            )
        if stored_prev != prev_hash:
            return bad(
                seq,
                f"entry {seq} does not follow entry {seq - 1}: an entry was inserted, "
                "replaced or reordered",
            )
        prev_hash = entry_hash
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
    if checkpoint is not None and tree.root() != checkpoint.root_hash:
        edited = _first_unlike_stored_leaf(session, checkpoint.size)
        return bad(edited or 1, f"the entries do not hash to the log's signed checkpoint of "
                   f"size {checkpoint.size}" + (f": entry {edited} differs from the leaf "
                   "logged for it" if edited else "") + "; the chain was recomputed after "
                   "an edit")
    return ChainReport(True, count, head.seq, head.entry_hash)


def _first_unlike_stored_leaf(session: Session, size: int) -> int | None:
    """The first entry whose leaf is not the one the stored tree holds, if any (read in
    chunks: the failure path of a million-entry check stays in bounded memory)."""
    rows = session.connection().execution_options(yield_per=5000).execute(
        ENTRIES.where(_entry_table.c.seq <= size))
    for chunk in rows.partitions():
        leaves = {}
        for seq, time, actor, action, outcome, subject, project, key_ref, details, prev, _ \
                in chunk:
            leaves[stored_hash_index(0, seq - 1)] = (seq, leaf_hash(entry_bytes(
                seq, time_text(time), actor, action, outcome, subject, project, key_ref,
                details, prev)))
        stored = dict(session.execute(
            select(_hashes.c.id, _hashes.c.hash).where(_hashes.c.id.in_(list(leaves)))).all())
        for index, (seq, leaf) in sorted(leaves.items()):
            if stored.get(index) != leaf:
                return int(seq)
    return None
