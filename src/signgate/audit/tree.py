"""The audit log's Merkle tree, kept in the database beside the entries it covers.

Every audit entry is a leaf, in sequence order: entry ``seq`` is leaf ``seq - 1``, and the
leaf's data is the entry's canonical bytes (``audit.model.entry_bytes``), the same bytes
its chain hash is computed over. The tree is stored as the append-only sequence of
complete-subtree hashes that ``transparency.merkle`` describes (table ``log_hashes``, one
row per stored hash, never updated), so a tree hash or a proof reads O(log n) rows.

Appends happen inside the write transaction of the entries themselves (``AuditWriter``):
an entry and its leaf commit together or not at all, and ``audit_head.tree_size`` says how
many entries the tree covers. A database from before the log (or one whose tree lags for
any other reason) is caught up by the next writer, from the stored entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, insert, select

from signgate.audit.model import entry_bytes, time_text
from signgate.errors import Unavailable
from signgate.store.models import AuditEntry, LogHash, table
from signgate.transparency import merkle

_hashes, _entries = table(LogHash), table(AuditEntry)
READ_HASHES = select(_hashes.c.id, _hashes.c.hash).where(
    _hashes.c.id.in_(bindparam("ids", expanding=True)))
INSERT_HASHES = insert(_hashes)
ENTRIES_FROM = select(
    _entries.c.seq, _entries.c.time, _entries.c.actor, _entries.c.action, _entries.c.outcome,
    _entries.c.subject, _entries.c.project, _entries.c.key_ref, _entries.c.details,
    _entries.c.prev_hash,
).where(_entries.c.seq > bindparam("after")).order_by(_entries.c.seq)


class HashCache:
    """Committed stored hashes, which never change: a bounded LRU shared by the writers of
    one process, so that a batch's appends and its checkpoint read few rows."""

    def __init__(self, size: int = 65536) -> None:
        self._items: OrderedDict[int, bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, index: int) -> bytes | None:
        with self._lock:
            found = self._items.get(index)
            if found is not None:
                self._items.move_to_end(index)
            return found

    def put(self, items: dict[int, bytes]) -> None:
        with self._lock:
            self._items.update(items)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class LogTree:
    """The tree as one write transaction sees it: committed rows plus its own appends."""

    def __init__(self, conn: Connection, size: int, cache: HashCache) -> None:
        self._conn = conn
        self.size = size
        self._cache = cache
        self._new: dict[int, bytes] = {}  # appended in this transaction, not yet inserted
        self._written: dict[int, bytes] = {}  # inserted in this transaction

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        found: dict[int, bytes] = {}
        missing = []
        for i in indexes:
            h = self._new.get(i) or self._written.get(i) or self._cache.get(i)
            if h is None:
                missing.append(i)
            else:
                found[i] = h
        if missing:
            result = self._conn.execute(READ_HASHES, {"ids": missing})
            rows: dict[int, bytes] = {i: h for i, h in result}
            if len(rows) != len(set(missing)):
                raise Unavailable("the log's Merkle tree is missing stored hashes "
                                  f"({len(set(missing)) - len(rows)} of them): the "
                                  "database was altered or is incomplete")
            self._cache.put(rows)
            found.update(rows)
        return [found[i] for i in indexes]

    def append(self, data: bytes) -> int:
        """Add a leaf; returns its index."""
        start = merkle.stored_hash_count(self.size)
        for offset, h in enumerate(merkle.stored_hashes(self.size, data, self)):
            self._new[start + offset] = h
        self.size += 1
        return self.size - 1

    def truncate(self, size: int) -> None:
        """Forget the leaves from ``size`` on (a savepoint rolled back); only leaves not yet
        written can go."""
        keep = merkle.stored_hash_count(size)
        if size > self.size or any(i >= keep for i in self._written):
            raise RuntimeError("log leaves were written after the savepoint")
        self._new = {i: h for i, h in self._new.items() if i < keep}
        self.size = size

    def root(self) -> bytes:
        return merkle.tree_hash(self.size, self)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.prove_record(self.size if size is None else size, index, self)

    def inclusions(self, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """:meth:`inclusion` of each of ``indexes`` in the tree of ``size``, read at once."""
        return merkle.prove_records(size, indexes, self)

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        return merkle.prove_tree(self.size if new is None else new, old, self)

    def catch_up(self, head_seq: int) -> None:
        """Append the stored entries the tree does not cover yet (up to ``head_seq``)."""
        while self.size < head_seq:
            rows = self._conn.execute(ENTRIES_FROM.limit(10000), {"after": self.size}).all()
            if not rows or rows[0].seq != self.size + 1:
                raise Unavailable(f"audit entry {self.size + 1} is missing: the log's tree "
                                  "cannot be built over a broken chain (run 'signgate audit "
                                  "verify')")
            for r in rows:
                if r.seq != self.size + 1:
                    raise Unavailable(f"audit entry {self.size + 1} is missing: the log's "
                                      "tree cannot be built over a broken chain")
                self.append(entry_bytes(r.seq, time_text(r.time), r.actor, r.action,
                                        r.outcome, r.subject, r.project, r.key_ref,
                                        r.details, r.prev_hash))
            self.flush()

    def flush(self) -> None:
        if self._new:
            self._conn.execute(INSERT_HASHES, [{"id": i, "hash": h}
                                               for i, h in self._new.items()])
            self._written.update(self._new)
            self._new = {}

    def committed(self) -> None:
        """The transaction committed: its hashes are now safe to share."""
        self._cache.put(self._written)
        self._written = {}
