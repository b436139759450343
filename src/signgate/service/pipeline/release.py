"""Release windows and quotas inside the signing pipeline: may this signing happen now,
and which window does it count against?

Both are counted in the batch's transaction, which holds the audit head lock from its
start (every write transaction takes it first), so no other worker or node can sign with
the key between the count and the signature: a window of N signatures and a quota of N
per day allow exactly N, however many ask at once. The decisions are pure
(``policy/windows.py``); this module reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from signgate.policy import windows as policy
from signgate.service.pipeline.authorize import Authorized
from signgate.service.pipeline.work import Work
from signgate.service.records import windows as records


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
    """Refuse the signing outside an open window of an offline key or beyond the
    identity's daily quota (``records.windows.check``)."""
    key = authorized.key
    if not key.offline and key.max_per_identity_per_day <= 0:
        return Admission(None)
    if key.max_per_identity_per_day > 0:
        work.ledger.flush(work)  # this batch's signatures so far, so that they count
    return Admission(records.check(
        work.conn, key.ref, key.key_id, key.offline, key.max_per_identity_per_day,
        authorized.actor.name, authorized.identity_id, work.ctx.clock.now()))


def count(work: Work, admission: Admission) -> None:
    """The signing was made: its window has one signature fewer left."""
    if admission.window is not None:
        records.count_signature(work.conn, admission.window.id)
