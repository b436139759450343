"""The database handle: engines, sessions, durable write transactions, migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``, so a committed
audit entry survives a power cut. Writers are serialised before ``BEGIN IMMEDIATE`` by a
lock held across threads and processes, because SQLite's own busy handler waits by
sleeping and would cap throughput. PostgreSQL writers serialise on the ``audit_head`` row
(``SELECT ... FOR UPDATE``) instead, which also works across several API nodes.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from signgate.errors import ConfigError, Conflict, ErrorCode, InvalidInput, Unavailable

MIGRATIONS = Path(__file__).with_name("migrations")


class _SqliteWriteGate:
    """One writer at a time, across the threads of this process and other processes."""

    def __init__(self, lock_path: Path) -> None:
        self._thread_lock = threading.Lock()
        self._lock_path = lock_path
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class Database:
    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except Exception as exc:  # sqlalchemy raises ArgumentError with no stable type
            raise ConfigError(f"invalid database URL: {exc}") from exc
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        self._gate: _SqliteWriteGate | None = None
        if self.dialect == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise ConfigError("SQLite needs a database file (in-memory is not durable)")
            path = Path(parsed.database)
            self._gate = _SqliteWriteGate(path.with_name(path.name + ".writelock"))
            self.write_engine = self._sqlite_engine(url, "BEGIN IMMEDIATE")
            self.read_engine = self._sqlite_engine(url, "BEGIN")
        elif self.dialect == "postgresql":
            # No pre-ping: it would cost every transaction a round trip. A connection the
            # server dropped fails one transaction (503) and is replaced (SQLAlchemy
            # invalidates the pool on disconnect errors).
            self.write_engine = create_engine(url, pool_size=20, max_overflow=10,
                                              pool_recycle=1800)
            self.read_engine = self.write_engine
        else:
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)
        # One snapshot for a whole read transaction. PostgreSQL's default, READ COMMITTED,
        # takes a new snapshot per statement, so a read of the audit head and then of the
        # entries could straddle a commit and see a chain "broken" by entries newer than
        # the head. REPEATABLE READ READ ONLY takes its snapshot at the first statement
        # and never waits for or blocks writers. SQLite's deferred read transaction in WAL
        # mode is already one snapshot (its read mark is held until the transaction ends).
        snapshot_engine = self.read_engine
        if self.dialect == "postgresql":
            snapshot_engine = self.read_engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True)
        self._snapshot_reader = sessionmaker(snapshot_engine, expire_on_commit=False)
        # The transactions open in this thread (or task) now, for repositories called from
        # inside a use case that must join them instead of opening their own: see
        # current_write and store/vault.py.
        self._writing: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
            "signgate_write_session", default=None)
        self._reading: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
            "signgate_read_session", default=None)

    @staticmethod
    def _sqlite_engine(url: str, begin: str) -> Engine:
        engine = create_engine(url, pool_size=20, max_overflow=10)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from pysqlite so BEGIN is ours (SQLAlchemy docs,
            # "Serializable isolation / Savepoints / Transactional DDL" for pysqlite).
            dbapi_connection.isolation_level = None
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on error."""
        gate = self._gate.held() if self._gate is not None else contextlib.nullcontext()
        with gate, converted(), self._writer() as session, session.begin():
            token = self._writing.set(session)
            try:
                yield session
            finally:
                self._writing.reset(token)

    @contextlib.contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Session]:
        """A read transaction; with ``snapshot``, every statement in it sees the database
        as of one instant on every backend (for reads that must agree with each other)."""
        maker = self._snapshot_reader if snapshot else self._reader
        with converted(), maker() as session, session.begin():
            token = self._reading.set(session)
            try:
                yield session
            finally:
                self._reading.reset(token)

    def current_write(self) -> Session | None:
        """The session of the write transaction this thread (or task) is inside, if any.
        Work done in it commits or rolls back with the caller's; on SQLite, opening a
        second write transaction instead would wait forever on the write gate."""
        return self._writing.get()

    def current_read(self) -> Session | None:
        """The session of the transaction this thread (or task) is inside, if any: the
        write transaction's (which sees its own changes), else a read transaction's."""
        writing = self._writing.get()
        return writing if writing is not None else self._reading.get()

    def ping(self) -> None:
        with self.read() as session:
            session.execute(text("SELECT 1"))

    def upgrade(self) -> str:
        """Apply Alembic migrations up to head; returns the revision now in force."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        gate = self._gate.held() if self._gate is not None else contextlib.nullcontext()
        with gate, converted(), self.write_engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
            rev = MigrationContext.configure(conn).get_current_revision()
        return rev or "base"

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


@contextlib.contextmanager
def converted() -> Iterator[None]:
    """SQLAlchemy's errors as signgate's (Conflict, InvalidInput, Unavailable)."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict("the change conflicts with one made at the same time; retry") from exc
    except DataError as exc:  # a value the database cannot hold (NUL in text, overflow)
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "bad value"
        raise InvalidInput(f"the request holds a value the database cannot store: {reason}",
                           code=ErrorCode.UNSTORABLE_VALUE) from exc
    except OperationalError as exc:
        raise Unavailable(f"database unavailable: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise Unavailable(f"database error: {type(exc).__name__}") from exc
