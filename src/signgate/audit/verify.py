"""Verify the audit chain, and the log's Merkle tree over it, from the stored rows.

Every entry is re-encoded from its stored text (``entry_bytes``), hashed and compared with
its stored hash and with its successor's ``prev``; the entries up to the newest signed
checkpoint are hashed into the log's tree and its root compared with the checkpoint's.

A big log is checked in ranges by worker processes, one per core: re-encoding and hashing
is CPU work, and one Python process reading a million rows through a database driver runs
at about the driver's own pace (90,000 rows/s on PostgreSQL here), below the 100,000/s a
million-entry check must reach. Each range is a power-of-two run of entries that starts at
a multiple of its length, so its leaves form whole subtrees of the log's tree and the
ranges' subtree hashes fold into the same root a single pass computes. Each worker checks
everything inside its range; the links between ranges (the first entry's sequence number
and ``prev``), the head and the tree are checked here, in the order a single pass meets
them, so both ways name the same first bad entry with the same words.

Workers read the snapshot this transaction reads: PostgreSQL's exported snapshot
(``pg_export_snapshot``, imported with ``SET TRANSACTION SNAPSHOT``); on SQLite each
worker's read sees every committed entry up to the head read here (entries are only ever
appended), and the entries beyond that head are looked for here, in this snapshot.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Select, create_engine, func, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from signgate.audit.model import GENESIS_HASH, entry_bytes, time_text
from signgate.store.models import AuditEntry, AuditHead, LogCheckpoint, LogHash, table
from signgate.transparency.merkle import StreamingRoot, leaf_hash, stored_hash_index

_table, _hashes = table(AuditEntry), table(LogHash)

# Below this many entries a pool of processes costs more (its start-up) than it saves.
PARALLEL_FROM = 200_000
_MIN_RANGE = 1 << 14


def _entries(dialect: str) -> Select[tuple[Any, ...]]:
    """Every stored field of the entries, oldest first, the time as the database driver
    gives it without the column type's conversion: naive UTC (``time_text`` formats an
    aware time the same, but looking its zone up costs a fifth of a PostgreSQL check)."""
    time: ColumnElement[Any] = _table.c.time
    if dialect == "postgresql":
        time = func.timezone("UTC", time)
    return select(_table.c.seq, type_coerce(time, DateTime()), _table.c.actor,
                  _table.c.action, _table.c.outcome, _table.c.subject, _table.c.project,
                  _table.c.key_ref, _table.c.details, _table.c.prev_hash,
                  _table.c.entry_hash).order_by(_table.c.seq)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass
class _Range:
    """What checking one range of entries found. The first entry is only checked against
    its own hash here: its sequence number and ``prev`` are the caller's to link."""

    count: int = 0  # entries that passed, from the first, before ``bad_seq``
    first_seq: int | None = None
    first_prev: str = ""
    last_seq: int = 0
    last_hash: str = ""
    bad_seq: int | None = None
    problem: str | None = None
    subtrees: list[tuple[int, bytes]] = field(default_factory=list)


def _check(rows: Iterable[Any], tree_size: int) -> _Range:
    out = _Range()
    tree = StreamingRoot()
    expected = prev = None
    for seq, time, actor, action, outcome, subject, project, key_ref, details, \
            stored_prev, entry_hash in rows:
        if expected is None:
            out.first_seq, out.first_prev = seq, stored_prev
        elif seq != expected:
            out.bad_seq, out.problem = _out_of_sequence(seq, expected)
            break
        data = entry_bytes(seq, time_text(time), actor, action, outcome, subject, project,
                           key_ref, details, stored_prev)
        if seq <= tree_size:
            tree.add(leaf_hash(data))
        if sha256(data).hexdigest() != entry_hash:
            out.bad_seq, out.problem = seq, _edited(seq, details)
            break
        if prev is not None and stored_prev != prev:
            out.bad_seq, out.problem = seq, _not_following(seq)
            break
        prev, expected = entry_hash, seq + 1
        out.count += 1
        out.last_seq, out.last_hash = seq, entry_hash
    out.subtrees = tree.subtrees()
    return out


# Told (entries checked so far, entries to check) as a verification goes: a client that
# waits for a million-entry check sees it move (the API streams it, never timing out).
Progress = Callable[[int, int], None]


def _counted(rows: Any, progress: Progress, total: int) -> Iterator[Any]:
    """The rows of a ``yield_per`` result, telling ``progress`` after each partition."""
    done = 0
    for part in rows.partitions():
        yield from part
        done += len(part)
        progress(done, total)


def verify_chain(session: Session, *, workers: int | None = None,
                 progress: Progress | None = None) -> ChainReport:
    """Recompute the chain and the tree; name the first entry that was edited, deleted,
    inserted or moved.

    ``session`` must read one snapshot (``Database.read(snapshot=True)``): the head and the
    entries are compared with each other, so they must be of the same instant. ``workers``
    (default: one per core, and one for a log under :data:`PARALLEL_FROM` entries) is how
    many processes check ranges at once; ``progress`` is told how far the check is (from
    this thread, at least once per range or per 5,000 entries).
    """
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    checkpoint = session.execute(
        select(LogCheckpoint.size, LogCheckpoint.root_hash)
        .order_by(LogCheckpoint.size.desc()).limit(1)).first()
    tree_size = checkpoint.size if checkpoint is not None else 0
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if head.seq >= PARALLEL_FROM else 1
    if progress is not None:
        progress(0, head.seq)
    if workers > 1 and head.seq > _MIN_RANGE:
        ranges = _parallel(session, head.seq, tree_size, workers, progress)
    else:
        conn = session.connection().execution_options(yield_per=5000)
        everything = _entries(conn.dialect.name).where(_table.c.seq <= head.seq)
        rows = conn.execute(everything)
        ranges = [_check(rows if progress is None else _counted(rows, progress, head.seq),
                         tree_size)]

    tree = StreamingRoot()
    expected, prev, count = 1, GENESIS_HASH, 0

    def bad(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, count, head.seq, head.entry_hash, seq, problem)

    for r in ranges:
        if r.first_seq is None:  # every entry of the range is missing: the next one says
            continue
        if r.first_seq != expected:
            return bad(*_out_of_sequence(r.first_seq, expected))
        if r.bad_seq == r.first_seq:
            return bad(r.bad_seq, r.problem or "")
        if r.first_prev != prev:
            return bad(r.first_seq, _not_following(r.first_seq))
        count += r.count
        if r.bad_seq is not None:
            return bad(r.bad_seq, r.problem or "")
        expected, prev = r.last_seq + 1, r.last_hash
        tree.extend(r.subtrees)
    last = expected - 1
    beyond = session.execute(select(func.max(_table.c.seq))
                             .where(_table.c.seq > head.seq)).scalar()
    if beyond is not None:
        last = beyond
    if head.seq != last or head.entry_hash != prev:
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


def _parallel(session: Session, head_seq: int, tree_size: int, workers: int,
              progress: Progress | None = None) -> list[_Range]:
    """Check ``[1, head_seq]`` in power-of-two ranges (about four per worker, so a slow
    range does not leave the other workers idle), each range by a worker process."""
    length = _MIN_RANGE
    while length * workers * 4 < head_seq:
        length *= 2
    conn = session.connection()
    snapshot = None
    if conn.dialect.name == "postgresql":
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    url = conn.engine.url.render_as_string(hide_password=False)
    starts = range(1, head_seq + 1, length)
    ends = [min(start + length, head_seq + 1) for start in starts]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_check_range, url, snapshot, start, end, tree_size)
                   for start, end in zip(starts, ends, strict=True)]
        if progress is not None:
            _tell(futures, [end - start for start, end in zip(starts, ends, strict=True)],
                  progress, head_seq)
        return [f.result() for f in futures]


def _tell(futures: list[Future[_Range]], sizes: list[int], progress: Progress,
          total: int) -> None:
    """Tell ``progress`` as ranges finish, in any order (the sum of the finished ones)."""
    from concurrent.futures import as_completed

    size = dict(zip(map(id, futures), sizes, strict=True))
    done = 0
    for f in as_completed(futures):
        done += size[id(f)]
        progress(done, total)


def _check_range(url: str, snapshot: str | None, start: int, end: int,
                 tree_size: int) -> _Range:
    """A worker process: check entries ``[start, end)`` over its own connection."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        if snapshot is not None:
            engine = engine.execution_options(isolation_level="REPEATABLE READ",
                                              postgresql_readonly=True)
        with engine.connect() as conn:
            if snapshot is not None:
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{_snapshot_id(snapshot)}'")
            rows = conn.execution_options(yield_per=5000).execute(
                _entries(conn.dialect.name).where(_table.c.seq >= start, _table.c.seq < end))
            return _check(rows, tree_size)
    finally:
        engine.dispose()


def _snapshot_id(snapshot: str) -> str:
    """PostgreSQL's snapshot ids are hex and dashes (``00000003-0000001B-1``); checked
    anyway before it goes into a statement that takes no parameters."""
    if not snapshot or any(c not in "0123456789ABCDEFabcdef-" for c in snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def _out_of_sequence(seq: int, expected: int) -> tuple[int, str]:
    if seq > expected:
        gap = (f"entry {expected} is missing" if seq == expected + 1
               else f"entries {expected}-{seq - 1} are missing")
        return expected, f"{gap} (deleted); the chain resumes at {seq}"
    return seq, f"entry {seq} is out of sequence"


def _edited(seq: int, details: str) -> str:
    if not _is_json(details):
        return f"entry {seq} was edited: its details are not valid JSON"
    return f"entry {seq} does not match its hash: it was edited, or moved here from another " \
           "position"


def _not_following(seq: int) -> str:
    return f"entry {seq} does not follow entry {seq - 1}: an entry was inserted, replaced " \
           "or reordered"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _first_unlike_stored_leaf(session: Session, size: int) -> int | None:
    """The first entry whose leaf is not the one the stored tree holds, if any (read in
    chunks: the failure path of a million-entry check stays in bounded memory)."""
    conn = session.connection()
    rows = conn.execution_options(yield_per=5000).execute(
        _entries(conn.dialect.name).where(_table.c.seq <= size))
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

