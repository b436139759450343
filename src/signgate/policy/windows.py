"""Release windows and quotas, decided: may this identity sign with this key now, given
the key's open release windows and what the identity signed with it today? Pure: the
service reads the windows and the count inside the signing transaction (which holds the
audit head lock, so the counts are exact across workers and nodes), these functions
decide, the service writes.

An *offline* key signs only inside an open release window: opened by an admin until a
time, optionally for at most N signatures and only for some signers. A window is over when
its time ran out, it was closed, or its signatures are used up. A *quota* allows at most N
signatures per identity per UTC day with one key.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.decide import Decision

MAX_WINDOW_SIGNATURES = 2**31 - 1  # a 32-bit column on PostgreSQL
MAX_DAILY_QUOTA = 2**31 - 1
MAX_SIGNERS = 64
MAX_LABEL = 127
MAX_WINDOW_LENGTH = timedelta(days=366)
MAX_IDENTITY_NAME = 255
MAX_WINDOW_APPROVALS = 16


class WindowState(enum.StrEnum):
    PENDING = "pending"  # waits for its approvals (key policy --window-approvals)
    OPEN = "open"
    EXPIRED = "expired"  # its time ran out
    CLOSED = "closed"  # an admin closed it
    EXHAUSTED = "exhausted"  # its signatures are used up


@dataclass(frozen=True)
class Window:
    """A release window as the decisions see it."""

    id: str
    until: datetime
    max_signatures: int | None
    signers: frozenset[str] | None  # None: any identity with a signer grant
    signatures: int
    closed_at: datetime | None = None
    label: str | None = None
    opened_at: datetime | None = None
    required: int = 0  # approvals it needs before it opens
    approvers: frozenset[str] = frozenset()
    opened_by: str | None = None

    def state(self, now: datetime) -> WindowState:
        if self.closed_at is not None:
            return WindowState.CLOSED
        if now >= self.until:
            return WindowState.EXPIRED
        if self.max_signatures is not None and self.signatures >= self.max_signatures:
            return WindowState.EXHAUSTED
        if len(self.approvers) < self.required:
            return WindowState.PENDING
        return WindowState.OPEN

    def admits(self, identity: str) -> bool:
        return self.signers is None or identity in self.signers


@dataclass(frozen=True)
class WindowRequest:
    """``release open``'s parameters, checked."""

    until: datetime
    max_signatures: int | None
    signers: frozenset[str] | None
    label: str | None

    @classmethod
    def parse(cls, now: datetime, until: datetime, max_signatures: int | None,
              signers: Iterable[str] | None, label: str | None) -> WindowRequest:
        if until.tzinfo is None:
            raise InvalidInput("--until needs a time zone (e.g. 2026-12-03T18:00:00Z)",
                               code=ErrorCode.BAD_RELEASE_POLICY)
        if until <= now:
            raise InvalidInput(f"--until {until.isoformat()} is not in the future",
                               code=ErrorCode.BAD_RELEASE_POLICY)
        if until - now > MAX_WINDOW_LENGTH:
            raise InvalidInput("a release window lasts at most 366 days",
                               code=ErrorCode.BAD_RELEASE_POLICY)
        if max_signatures is not None and not 1 <= max_signatures <= MAX_WINDOW_SIGNATURES:
            raise InvalidInput(f"--max-signatures must be 1 to {MAX_WINDOW_SIGNATURES}",
                               code=ErrorCode.BAD_RELEASE_POLICY)
        names = list(signers or [])
        if len(names) > MAX_SIGNERS:
            raise InvalidInput(f"at most {MAX_SIGNERS} --signer per window",
                               code=ErrorCode.BAD_RELEASE_POLICY)
        for name in names:
            if not name or len(name) > MAX_IDENTITY_NAME or any(
                    ord(c) < 32 or c.isspace() for c in name):
                raise InvalidInput(f"--signer {name!r} is not an identity name",
                                   code=ErrorCode.BAD_RELEASE_POLICY)
        if label is not None and (not label or len(label) > MAX_LABEL
                                  or any(ord(c) < 32 for c in label)):
            raise InvalidInput(f"--label must be 1 to {MAX_LABEL} printable characters",
                               code=ErrorCode.BAD_RELEASE_POLICY)
        return cls(until.astimezone(UTC), max_signatures,
                   frozenset(names) if names else None, label)


def check_quota(value: int) -> int:
    if not 0 <= value <= MAX_DAILY_QUOTA:
        raise InvalidInput(f"--max-per-identity-per-day must be 0 (off) to {MAX_DAILY_QUOTA}",
                           code=ErrorCode.BAD_RELEASE_POLICY)
    return value


def choose_window(identity: str, key_ref: str, windows: Iterable[Window],
                  now: datetime) -> tuple[Decision, Window | None]:
    """The open window this signing counts against (of several, the one that ends first,
    so that the longer ones keep their room), or a refusal that says why none does and
    what to do next."""
    windows = list(windows)
    usable = sorted((w for w in windows if w.state(now) is WindowState.OPEN
                     and w.admits(identity)), key=lambda w: (w.until, w.id))
    if usable:
        return Decision.allow(), usable[0]
    nxt = (f"ask an admin of {key_ref}: signgate release open {key_ref} --until TIME "
           f"[--max-signatures N] [--signer {identity}]")
    open_ = [w for w in windows if w.state(now) is WindowState.OPEN]
    pending = [w for w in windows if w.state(now) is WindowState.PENDING]
    if pending and not open_:
        w = pending[0]
        why = (f"its release window {_name(w)} awaits {w.required - len(w.approvers)} "
               f"more approval(s) of {w.required}")
        return Decision.deny(f"key {key_ref} is offline and signs only inside an open "
                             f"release window; {why}: ask an approver of {key_ref}: "
                             f"signgate release approve {w.id}",
                             ErrorCode.NO_RELEASE_WINDOW), None
    if open_:
        why = (f"its open release window{'s' if len(open_) > 1 else ''} "
               f"({', '.join(_name(w) for w in open_)}) "
               f"{'do' if len(open_) > 1 else 'does'} not list {identity} as a signer")
    elif windows:
        last = max(windows, key=lambda w: (w.opened_at or w.until, w.id))
        why = f"its latest release window {_name(last)} {_over(last, now)}"
    else:
        why = "it has no release window open"
    return Decision.deny(f"key {key_ref} is offline and signs only inside an open release "
                         f"window; {why}: {nxt}", ErrorCode.NO_RELEASE_WINDOW), None


def _name(w: Window) -> str:
    return f"{w.id} ({w.label})" if w.label else w.id


def _over(w: Window, now: datetime) -> str:
    state = w.state(now)
    if state is WindowState.CLOSED:
        assert w.closed_at is not None
        return f"was closed at {w.closed_at.isoformat()}"
    if state is WindowState.EXPIRED:
        return f"ended at {w.until.isoformat()}"
    if state is WindowState.EXHAUSTED:
        return f"has made all its {w.max_signatures} signatures"
    return "is open"


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: quotas count from there."""
    n = now.astimezone(UTC)
    return datetime(n.year, n.month, n.day, tzinfo=UTC)


def seconds_to_reset(now: datetime) -> int:
    """Whole seconds until the next midnight UTC (at least 1)."""
    left = day_start(now) + timedelta(days=1) - now
    return max(1, math.ceil(left.total_seconds()))


def within_quota(identity: str, key_ref: str, limit: int, signed_today: int,
                 now: datetime) -> Decision:
    """At most ``limit`` signatures (0: no quota) per identity per UTC day with the key;
    ``signed_today``: those it made since midnight UTC."""
    if limit <= 0 or signed_today < limit:
        return Decision.allow()
    reset = day_start(now) + timedelta(days=1)
    return Decision.deny(f"identity {identity} has made its {limit} signatures with "
                         f"{key_ref} for today (UTC); the quota resets at "
                         f"{reset.isoformat()}", ErrorCode.QUOTA_EXCEEDED)



def check_window_approvals(value: int) -> int:
    if not 0 <= value <= MAX_WINDOW_APPROVALS:
        raise InvalidInput(f"--window-approvals must be 0 to {MAX_WINDOW_APPROVALS}",
                           code=ErrorCode.BAD_RELEASE_POLICY)
    return value


def may_approve_window(identity: str, is_approver: bool, window: Window,
                       now: datetime) -> Decision:
    """An approver of the key approves a pending window once; never its opener."""
    if not is_approver:
        return Decision.deny(f"identity {identity} may not approve release window "
                             f"{window.id}: no approver grant on its key")
    if identity == window.opened_by:
        return Decision.deny(f"identity {identity} opened release window {window.id} and "
                             "may not approve it: approvals must come from someone else",
                             ErrorCode.SELF_APPROVAL)
    state = window.state(now)
    if state is not WindowState.PENDING:
        return Decision.deny(f"release window {window.id} is {state.value}, not waiting "
                             "for approvals", ErrorCode.WINDOW_CLOSED)
    if identity in window.approvers:
        return Decision.deny(f"identity {identity} already approved release window "
                             f"{window.id}", ErrorCode.ALREADY_APPROVED)
    return Decision.allow()
