"""Identities inside a session. Session helpers only; the use cases are
service/identities.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.errors import NotFound
from signgate.store.models import Identity


def get_identity(session: Session, name: str) -> Identity:
    row = session.execute(select(Identity).where(Identity.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no identity named {name!r}")
    return row
