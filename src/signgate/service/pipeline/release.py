"""Release windows and quotas inside the signing pipeline: may this signing happen now,
and which window does it count against?

Both are counted in the batch's transaction, which holds the audit head lock from its
start (every write transaction takes it first), so no other worker or node can sign with
the key between the count and the signature: a window of N signatures and a quota of N
per day allow exactly N, however many ask at once. The decisions are pure
(``policy/windows.py``); this module reads and writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from signgate.errors import Denied, LimitExceeded
from signgate.policy import windows as policy
from signgate.service.pipeline.authorize import Authorized
from signgate.service.pipeline.work import Work
from signgate.store.models import KeyVersion, ReleaseWindow, SignatureRecord, table

_windows, _versions, _signatures = table(ReleaseWindow), table(KeyVersion), \
    table(SignatureRecord)
_COLUMNS = (_windows.c.id, _windows.c.until, _windows.c.max_signatures,
            _windows.c.signers_json, _windows.c.signatures, _windows.c.closed_at,
            _windows.c.label, _windows.c.opened_at)


@dataclass(frozen=True, slots=True)
class Admission:
    """A signing the key's windows and quota allow: the window it counts against."""

    window: policy.Window | None

    def details(self) -> dict[str, object] | None:
        """What the signature's audit entry says of its window."""
        w = self.window
        if w is None:
            return None
        return {"id": w.id, "label": w.label, "until": w.until.isoformat(),
                "signature": w.signatures + 1, "max_signatures": w.max_signatures}


def admit(work: Work, authorized: Authorized) -> Admission:
    """Refuse the signing outside an open window of an offline key (403
    ``no_release_window``, saying how to open one) or beyond the identity's daily quota
    (429 ``quota_exceeded``)."""
    key, now = authorized.key, work.ctx.clock.now()
    name = authorized.actor.name
    window = None
    if key.offline:
        d, window = policy.choose_window(name, key.ref, _windows_of(work, key.key_id, now),
                                         now)
        if not d.allowed:
            raise Denied(d.reason, code=d.code)
    limit = key.max_per_identity_per_day
    if limit > 0:
        work.ledger.flush(work)  # this batch's signatures so far, so that they count
        signed = _signed_since(work, key.key_id, authorized.identity_id,
                               policy.day_start(now))
        d = policy.within_quota(name, key.ref, limit, signed, now)
        if not d.allowed:
            raise LimitExceeded(d.reason, code=d.code)
    return Admission(window)


def count(work: Work, admission: Admission) -> None:
    """The signing was made: its window has one signature fewer left."""
    if admission.window is not None:
        work.conn.execute(update(_windows).where(_windows.c.id == admission.window.id)
                          .values(signatures=_windows.c.signatures + 1))


def _windows_of(work: Work, key_id: int, now: datetime) -> list[policy.Window]:
    """The key's open windows, and the latest one that is over (a refusal names it)."""
    rows = list(work.conn.execute(
        select(*_COLUMNS).where(_windows.c.key_id == key_id,
                                _windows.c.closed_at.is_(None), _windows.c.until > now)))
    rows += work.conn.execute(
        select(*_COLUMNS).where(_windows.c.key_id == key_id)
        .where((_windows.c.closed_at.is_not(None)) | (_windows.c.until <= now))
        .order_by(_windows.c.opened_at.desc(), _windows.c.id.desc()).limit(1)).all()
    return [window(r) for r in rows]


def window(r: Any) -> policy.Window:
    """A row of ``_COLUMNS`` (or a ``ReleaseWindow``) as the decisions see it."""
    signers = json.loads(r.signers_json) if r.signers_json else None
    return policy.Window(r.id, r.until, r.max_signatures,
                         frozenset(signers) if signers is not None else None,
                         r.signatures or 0, r.closed_at, r.label, r.opened_at)


def _signed_since(work: Work, key_id: int, identity_id: int, since: datetime) -> int:
    """Signatures ``identity_id`` made with any version of the key since ``since``
    (ix_signatures_totals answers it per version)."""
    found = work.conn.execute(
        select(func.count()).select_from(_signatures)
        .join(_versions, _signatures.c.key_version_id == _versions.c.id)
        .where(_versions.c.key_id == key_id, _signatures.c.identity_id == identity_id,
               _signatures.c.signed_at >= since)).scalar_one()
    return int(found)
