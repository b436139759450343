"""Step 0: decide and sign before the chain's lock, record under it.

Every write transaction holds the audit head lock from its start to its commit, so
whatever a batch does inside its transaction, no other worker or node can do at the same
time. Deciding and signing (authentication, grants, key state, the format, the key
store's signature, the RFC 3161 token) is most of a plain signing's work and needs no
lock: only its record does. So :func:`sign_early` does that part first, in a read
transaction, as of the chain's head ``seen``; the batch's transaction then records the
results, after checking that nothing those decisions depended on can have changed since
``seen`` (:meth:`AuditWriter.settled_since`: every entry since is a signature, a
timestamp, a scan, a read or a refusal). If anything else was committed meanwhile (a
revocation, a grant removed, a disabled identity, a policy change, on any node), the
early results are dropped unused, never returned, and the batch decides and signs again
under the lock, as it always did. So the early path changes where the work is done, not
what is decided: a signing is still decided with the state its entry is recorded after.

Only signings whose decision rests on nothing but that state go early: not keys that
count signatures (a version's limit, release windows, daily quotas), wait for approvals
or builders, are due to rotate, or make a one-time key (these write before they sign);
nor a refusal (decided again under the lock, where it is recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from signgate.audit.log import head_seq
from signgate.audit.model import Action
from signgate.policy import decide
from signgate.service.context import Context
from signgate.service.pipeline.authorize import Authorized, authorize
from signgate.service.pipeline.lookups import Cache
from signgate.service.pipeline.produce import Produced, produce
from signgate.service.pipeline.work import Work
from signgate.service.sign_request import SignRequest

# Entries that change nothing a signing decision reads.
NEUTRAL: Final = frozenset(a.value for a in (
    Action.SIGN, Action.TIMESTAMP, Action.SCAN, Action.AUDIT_READ, Action.READ,
    Action.CERT_REQUEST, Action.CRL_PUBLISH))


@dataclass(frozen=True, slots=True)
class EarlySigning:
    authorized: Authorized
    produced: Produced


@dataclass(frozen=True, slots=True)
class Early:
    """What was decided and signed as of the chain's head ``seen``, by request position."""

    seen: int
    signed: dict[int, EarlySigning]


def sign_early(ctx: Context, cache: Cache, requests: list[SignRequest]) -> Early:
    with ctx.db.read() as session:
        seen = head_seq(session.connection())
        cache.valid_at(seen)
        work = Work(ctx, session, cache)
        signed: dict[int, EarlySigning] = {}
        for at, request in enumerate(requests):
            if request.approval_request is not None:
                continue
            try:
                identity_id, actor = work.lookups.actor(request.caller, ctx.clock.now())
                authorized = authorize(work.lookups, request, identity_id, actor)
                if not _plain(authorized, work):
                    continue
                signed[at] = EarlySigning(authorized, produce(work, request, authorized))
            except Exception:  # noqa: S112 - refused or failed: decided again, and
                continue  # recorded, under the lock
        cache.head_seq = seen
    return Early(seen, signed)


def _plain(authorized: Authorized, work: Work) -> bool:
    """A signing that only reads: no counters, no waiting, no rotation, no one-time key."""
    key = authorized.key
    return (not key.one_time and key.max_signatures is None and key.approvals == 0
            and key.require_builders == 0 and not key.offline
            and key.max_per_identity_per_day <= 0
            and decide.rotation_due(key.snapshot(), work.ctx.clock.now()) is None)
