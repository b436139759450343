"""Reading the server's metrics (``GET /metrics``): who may, and the values that are read
from the database at scrape time rather than counted in memory.

The metrics name every key that signed or was refused and say how much each was used:
the business of every project at once. So reading them with ``metrics = "token"`` takes
what reading the whole audit log takes, an auditor or admin grant on ``*``; a refusal is
recorded like any other.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, require
from signgate.store.models import AuditHead

TARGET = Target(Action.AUDIT_READ, "/metrics")


def authorize(ctx: Context, caller: Caller) -> int:
    """Refuse a caller without a global auditor or admin grant; the log's size otherwise."""

    def run(session: Session, actor: Actor) -> int:
        d = decide.may_read_audit(actor, None)
        if not d.allowed and actor.enabled:
            d = decide.Decision.deny(f"identity {actor.name} may not read /metrics: no "
                                     "auditor or admin grant on '*'")
        require(d.allowed, d.reason)
        return _size(session)

    return ctx.read(caller, TARGET, run)


def log_size(ctx: Context) -> int:
    """The audit log's size (entries), for a scrape that needs no token."""
    with ctx.db.read() as session:
        return _size(session)


def _size(session: Session) -> int:
    return int(session.execute(select(AuditHead.seq)).scalar_one())
