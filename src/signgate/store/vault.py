"""The software vault's sealed blobs in the database (table ``vault_entries``).

Implements ``signgate.keystore.blobs.SealedBlobs`` (structurally: ``store/`` sits below
``keystore/`` and does not import it). A blob is written in the write transaction the
caller is inside, if any, so that a key version row and its blob commit or roll back
together (and on SQLite no second writer waits on the write gate the caller holds);
otherwise in a short transaction of its own. Reads likewise join the transaction in
progress, which sees a blob written earlier in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from signgate.store.db import Database, converted
from signgate.store.models import VaultEntry, table

_vault = table(VaultEntry)
_SEALED = select(_vault.c.sealed).where(_vault.c.uri == bindparam("uri"))
_PUT = insert(_vault)
_DELETE = delete(_vault).where(_vault.c.uri == bindparam("uri"))


class DatabaseBlobs:
    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return "DatabaseBlobs(vault_entries)"

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        session = self._db.current_write()
        if session is None:
            with self._db.write() as own:
                yield own
        else:
            with converted():
                yield session

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        session = self._db.current_read()
        if session is None:
            with self._db.read() as own:
                yield own
        else:
            with converted():
                yield session

    def put(self, uri: str, blob: bytes) -> None:
        with self._writing() as session:
            session.execute(_PUT, {"uri": uri, "sealed": blob})

    def get(self, uri: str) -> bytes | None:
        with self._reading() as session:
            sealed = session.execute(_SEALED, {"uri": uri}).scalar_one_or_none()
        return None if sealed is None else bytes(sealed)

    def delete(self, uri: str) -> None:
        with self._writing() as session:
            session.execute(_DELETE, {"uri": uri})
