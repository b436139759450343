"""The state of one batch transaction: its session, its look-ups, the signatures it has
made so far (written once, at its end), and the savepoint discipline for work that changes
keys mid-batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from signgate.pki import tsa as rfc3161
from signgate.service.context import Context
from signgate.service.pipeline.lookups import Cache, Lookups
from signgate.service.views import RequestView
from signgate.store.models import KeyVersion, SignatureRecord, table

_versions = table(KeyVersion)
ADD_SIGNATURES = (
    update(_versions).where(_versions.c.id == bindparam("version_id"))
    .values(signature_count=_versions.c.signature_count + bindparam("n"))
)
INSERT_SIGNATURE = insert(table(SignatureRecord))


class Ledger:
    """Signatures made in this batch: counters per key version and signature rows, kept in
    memory and written with one statement each (executemany)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}  # by key version id
        self.rows: list[dict[str, object]] = []

    def add(self, version_id: int, row: dict[str, object]) -> None:
        self.counts[version_id] = self.counts.get(version_id, 0) + 1
        self.rows.append(row)

    def flush_counts(self, work: Work) -> None:
        if self.counts:
            work.conn.execute(ADD_SIGNATURES, [{"version_id": v, "n": n}
                                               for v, n in self.counts.items()])
            self.counts.clear()

    def flush(self, work: Work) -> None:
        self.flush_counts(work)
        if self.rows:
            work.conn.execute(INSERT_SIGNATURE, self.rows)
            self.rows = []


class Work:
    """The work of one transaction, handed to each step."""

    def __init__(self, ctx: Context, session: Session, cache: Cache) -> None:
        self.ctx = ctx
        self.session = session
        self.conn = session.connection()  # Core statements: the ORM costs too much here
        self.ledger = Ledger()
        self.lookups = Lookups(session, self.conn, cache, self.ledger.counts)
        self.tsa: rfc3161.Authority | None = None  # signgate's own TSA, loaded once per batch
        self.held: list[RequestView] = []  # requests made in this batch (approvers are told)

    def flush(self) -> None:
        """Write what the batch has only counted so far (before its commit)."""
        self.ledger.flush(self)

    @contextlib.contextmanager
    def savepoint(self, ref: str) -> Iterator[None]:
        """A savepoint around work that changes the key ``ref`` mid-batch: if it fails, its
        rows, its audit entries and the cached key go with it; either way the key is read
        anew afterwards."""
        self.ledger.flush_counts(self)
        writer = self.ctx.audit_writer(self.session)
        mark = writer.mark()
        savepoint = self.session.begin_nested()
        try:
            yield
        except BaseException:
            savepoint.rollback()
            writer.reset(mark)
            self.lookups.forget(ref)
            raise
        savepoint.commit()
        self.lookups.forget(ref)
