"""Release windows and quota counts, read: the rows the decisions of
``policy/windows.py`` need (Core statements: the signing pipeline runs them for every
signing with an offline or quota key)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from signgate.errors import Denied, LimitExceeded
from signgate.policy import windows as policy
from signgate.store.models import KeyVersion, ReleaseWindow, SignatureRecord, table

_windows, _versions, _signatures = table(ReleaseWindow), table(KeyVersion), \
    table(SignatureRecord)
_COLUMNS = (_windows.c.id, _windows.c.until, _windows.c.max_signatures,
            _windows.c.signers_json, _windows.c.signatures, _windows.c.closed_at,
            _windows.c.label, _windows.c.opened_at, _windows.c.required_approvals,
            _windows.c.approvals_json, _windows.c.opened_by)


def window(r: Any) -> policy.Window:
    """A row of ``_COLUMNS`` (or a ``ReleaseWindow``) as the decisions see it."""
    signers = json.loads(r.signers_json) if r.signers_json else None
    return policy.Window(r.id, r.until, r.max_signatures,
                         frozenset(signers) if signers is not None else None,
                         r.signatures or 0, r.closed_at, r.label, r.opened_at,
                         r.required_approvals or 0,
                         frozenset(a["identity"] for a in approvals(r)), r.opened_by)


def approvals(r: Any) -> list[dict[str, Any]]:
    """A window's approvals so far: identity, at, audit_seq, comment."""
    found: list[dict[str, Any]] = json.loads(r.approvals_json) if r.approvals_json else []
    return found


def windows_of(conn: Connection, key_id: int, now: datetime) -> list[policy.Window]:
    """The key's open windows, and the latest one that is over (a refusal names it)."""
    rows = list(conn.execute(
        select(*_COLUMNS).where(_windows.c.key_id == key_id,
                                _windows.c.closed_at.is_(None), _windows.c.until > now)))
    rows += conn.execute(
        select(*_COLUMNS).where(_windows.c.key_id == key_id)
        .where((_windows.c.closed_at.is_not(None)) | (_windows.c.until <= now))
        .order_by(_windows.c.opened_at.desc(), _windows.c.id.desc()).limit(1)).all()
    return [window(r) for r in rows]


def count_signature(conn: Connection, window_id: str) -> None:
    """One more signature made in the window."""
    conn.execute(update(_windows).where(_windows.c.id == window_id)
                 .values(signatures=_windows.c.signatures + 1))


def signed_since(conn: Connection, key_id: int, identity_id: int, since: datetime) -> int:
    """Signatures ``identity_id`` made with any version of the key since ``since``
    (ix_signatures_totals answers it per version)."""
    found = conn.execute(
        select(func.count()).select_from(_signatures)
        .join(_versions, _signatures.c.key_version_id == _versions.c.id)
        .where(_versions.c.key_id == key_id, _signatures.c.identity_id == identity_id,
               _signatures.c.signed_at >= since)).scalar_one()
    return int(found)


def check(conn: Connection, ref: str, key_id: int, offline: bool, per_day: int,
          identity: str, identity_id: int, now: datetime) -> policy.Window | None:
    """The window a signing by ``identity`` counts against (None: the key is online);
    refused outside an open window of an offline key (403 ``no_release_window``, saying
    how to open one) or beyond the identity's daily quota (429 ``quota_exceeded``)."""
    found = None
    if offline:
        d, found = policy.choose_window(identity, ref, windows_of(conn, key_id, now), now)
        if not d.allowed:
            raise Denied(d.reason, code=d.code)
    if per_day > 0:
        signed = signed_since(conn, key_id, identity_id, policy.day_start(now))
        d = policy.within_quota(identity, ref, per_day, signed, now)
        if not d.allowed:  # retry when the quota resets (a 429's Retry-After)
            raise LimitExceeded(d.reason, code=d.code,
                                retry_after=policy.seconds_to_reset(now))
    return found
