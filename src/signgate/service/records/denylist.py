"""The hash deny-list inside a session, as the scanners read it. Session helpers only; the
use cases (add, remove, list) are service/denylist.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.store.models import DenyListEntry


def denied(session: Session) -> dict[str, str]:
    """sha256 -> reason, for the scanners."""
    rows = session.execute(select(DenyListEntry.sha256, DenyListEntry.reason)).all()
    return {sha: reason for sha, reason in rows}
