"""Failed authentications: limited per client address, recorded with their count.

Recording every failed authentication as its own durable audit entry let an anonymous
flood grow the database without bound and queue behind the audit head lock that signing
needs. Instead, time is cut into fixed windows (``auth_failure_window_seconds``, aligned
to the epoch) and, per client address and window:

- the first failure is recorded at once, as its own entry, before it is answered: who
  (``anonymous``, or the disabled identity whose token it was), from where, what was
  attempted, ``attempts: 1``;
- later failures are counted in memory (what they attempted, which disabled identities)
  and recorded as one summary entry with their number when the window has ended (checked
  every second) or the server stops;
- past ``auth_failure_limit`` failures, the answer is 429 with Retry-After (the end of the
  window) instead of 401. The token is still looked up (a read): a valid token from the
  same address is never refused for someone else's failures.

So the log grows by at most two entries per address and window, whatever the number of
attempts, and the ``attempts`` of those entries add up to the exact number of failures.
Each server process keeps its own tallies: with N workers or nodes an address can make up
to N times the limit before every process answers 429, but each process records exactly
what it refused. What a crash (``kill -9``) can lose: the count of failures after the
first of each address in the current window, and of a window that ended less than a
second ago. A clean stop records them.

At most ``MAX_ADDRESSES`` addresses are tracked per window; failures from further
addresses are counted together under ``*`` (no entry of their own), so that a flood from
many addresses cannot grow memory or the log beyond that either.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import AuthenticationFailed, AuthenticationThrottled, ErrorCode
from signgate.service.caller import Caller, Target

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.orm import Session

    from signgate.clock import Clock
    from signgate.config import Settings

log = logging.getLogger("signgate.auth")

ANONYMOUS = "anonymous"
MAX_ADDRESSES = 10_000
OTHER_ADDRESSES = "*"
UNKNOWN_ADDRESS = "unknown"
FLUSH_EVERY = 1.0  # seconds between checks for ended windows
REASON = "authentication failed: missing or invalid token"


@dataclass
class _Tally:
    """One address's failures in one window."""

    attempts: int = 0
    recorded: int = 0  # recorded as entries of their own (the first), or already summed
    throttled: int = 0  # answered 429 (not yet summed)
    attempted: Counter[str] = field(default_factory=Counter)  # actions, not yet summed
    identities: Counter[str] = field(default_factory=Counter)  # disabled ones, likewise

    @property
    def pending(self) -> int:
        return self.attempts - self.recorded


@dataclass(frozen=True)
class Verdict:
    """What to do with one failed authentication."""

    record: Record | None  # the entry to append now (the first of its window), or None
    error: AuthenticationFailed  # what to answer: 401, or 429 past the limit


def failure_reason(exc: AuthenticationFailed) -> tuple[str, ErrorCode]:
    """The (reason, code) the audit entry gives: the truth, which the answer does not."""
    if exc.identity is not None:
        return f"identity {exc.identity} is disabled", ErrorCode.IDENTITY_DISABLED
    if exc.code is not AuthenticationFailed.code:  # e.g. an OIDC exchange's token expired
        return str(exc), exc.code
    return REASON, AuthenticationFailed.code


class Context(Protocol):
    """What the tallies need of the service context (service/context.py, which owns an
    instance of this class: a protocol rather than an import keeps the two acyclic)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    def transaction(self) -> AbstractContextManager[Session]: ...

    def record(self, session: Session, record: Record, now: datetime | None = None) -> int: ...


class AuthFailures:
    """The per-process tallies of failed authentications, and their summary entries."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.limit = ctx.settings.auth_failure_limit
        self.window = ctx.settings.auth_failure_window_seconds
        self._lock = threading.Lock()
        self._start = -1  # the current window, in seconds since the epoch
        self._tallies: dict[str, _Tally] = {}
        self._ended: list[tuple[int, int, dict[str, _Tally]]] = []  # (start, end, tallies)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tally(self, address: str) -> tuple[str, _Tally]:
        """The current window's tally of ``address`` (under the lock), made on its first
        failure; beyond MAX_ADDRESSES addresses, the shared one of the rest."""
        tally = self._tallies.get(address)
        if tally is None:
            if len(self._tallies) >= MAX_ADDRESSES:
                address = OTHER_ADDRESSES
                tally = self._tallies.setdefault(address, _Tally())
            else:
                tally = self._tallies[address] = _Tally()
        return address, tally

    def failed(self, caller: Caller, target: Target, exc: AuthenticationFailed) -> Verdict:
        """Count one failure; returns the entry to record now (if any) and the answer."""
        now = self.ctx.clock.now()
        address = caller.address or UNKNOWN_ADDRESS
        with self._lock:
            self._roll(now)
            address, tally = self._tally(address)
            tally.attempts += 1
            throttled = tally.attempts > self.limit
            record: Record | None = None
            if tally.attempts == 1 and address != OTHER_ADDRESSES:
                tally.recorded = 1
                record = self._first(caller, target, exc, throttled)
            else:
                tally.attempted[target.action.value] += 1
                if exc.identity is not None:
                    tally.identities[exc.identity] += 1
                if throttled:
                    tally.throttled += 1
            window_end = self._start + self.window
        self._start_thread()
        if throttled:
            retry = max(1, math.ceil(window_end - now.timestamp()))
            return Verdict(record, AuthenticationThrottled(retry))
        return Verdict(record, exc)

    def refused_elsewhere(self, caller: Caller, target: Target) -> AuthenticationThrottled | None:
        """Count a refusal that its caller records as an entry of its own, with its own
        reason (a refused OIDC exchange, service/oidc.py), toward the same per-address limit.
        Past the limit, returns the 429 to answer instead, and the refusal is left to the
        window's summary entry: a flood of bad CI tokens grows the log no more than a flood
        of bad API tokens."""
        now = self.ctx.clock.now()
        address = caller.address or UNKNOWN_ADDRESS
        with self._lock:
            self._roll(now)
            address, tally = self._tally(address)
            tally.attempts += 1
            throttled = tally.attempts > self.limit
            if throttled:
                tally.attempted[target.action.value] += 1
                tally.throttled += 1
            else:
                tally.recorded += 1
            window_end = self._start + self.window
        if not throttled:
            return None
        self._start_thread()
        return AuthenticationThrottled(max(1, math.ceil(window_end - now.timestamp())))

    def lost(self, caller: Caller, target: Target, exc: AuthenticationFailed) -> None:
        """An immediate entry that was not committed after all: count it in the summary."""
        address = caller.address or UNKNOWN_ADDRESS
        with self._lock:
            tally = self._tallies.get(address)
            if tally is not None and tally.recorded > 0:
                tally.recorded -= 1
                tally.attempted[target.action.value] += 1
                if exc.identity is not None:
                    tally.identities[exc.identity] += 1

    def _first(self, caller: Caller, target: Target, exc: AuthenticationFailed,
               throttled: bool) -> Record:
        reason, code = failure_reason(exc)
        details: dict[str, object] = {
            "reason": reason, "code": code, "attempted": target.action.value, "attempts": 1,
            "window_start": _iso(self._start),
        }
        if caller.address:
            details["client"] = caller.address
        if throttled:
            details["throttled"] = 1
        return Record(actor=exc.identity or ANONYMOUS, action=Action.AUTHENTICATE,
                      outcome=Outcome.REFUSED, subject=_storable(target.subject) or "",
                      project=_storable(target.project), key_ref=_storable(target.key_ref),
                      details=details)

    def _roll(self, now: datetime) -> None:
        """Close the current window if ``now`` is past it (caller holds the lock)."""
        start = int(now.timestamp()) // self.window * self.window
        if start == self._start:
            return
        if self._tallies:
            self._ended.append((self._start, self._start + self.window, self._tallies))
        self._start, self._tallies = start, {}

    def _summaries(self, windows: list[tuple[int, int, dict[str, _Tally]]]) -> list[Record]:
        records = []
        for start, end, tallies in windows:
            for address, t in sorted(tallies.items()):
                if t.pending <= 0:
                    continue
                details: dict[str, object] = {
                    "reason": REASON, "code": AuthenticationFailed.code,
                    "attempts": t.pending, "throttled": t.throttled,
                    "attempted": dict(sorted(t.attempted.items())),
                    "window_start": _iso(start), "window_end": _iso(end),
                    "summary": True,
                }
                if address != UNKNOWN_ADDRESS:
                    details["client"] = address
                if t.identities:
                    details["disabled_identities"] = dict(sorted(t.identities.items()))
                records.append(Record(ANONYMOUS, Action.AUTHENTICATE, Outcome.REFUSED,
                                      f"{t.pending} failed authentications from {address}",
                                      details=details))
        return records

    def flush(self, everything: bool = False) -> int:
        """Record the summaries of ended windows (and of the current one too with
        ``everything``, at shutdown); returns how many entries were appended."""
        with self._lock:
            self._roll(self.ctx.clock.now())
            if everything and self._tallies:
                end = min(int(self.ctx.clock.now().timestamp()) + 1, self._start + self.window)
                self._ended.append((self._start, end, self._tallies))
                self._tallies = {}
            ended, self._ended = self._ended, []
        records = self._summaries(ended)
        if not records:
            return 0
        try:
            with self.ctx.transaction() as session:
                for record in records:
                    self.ctx.record(session, record)
        except Exception:
            with self._lock:  # kept for the next attempt (say, the database is back)
                self._ended[:0] = ended
            raise
        return len(records)

    def _start_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="signgate-auth-failures")
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            try:
                self.flush()
            except Exception as exc:  # an outage: the tallies wait for the next round
                log.warning("failed authentications not recorded yet: %s", exc)

    def close(self) -> None:
        """Stop the flusher and record everything counted so far."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush(everything=True)
        except Exception as exc:  # the database is gone: say what is lost, stop anyway
            lost = sum(t.pending for _, _, ts in self._ended for t in ts.values())
            log.error("%d failed authentications could not be recorded: %s", lost, exc)


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")


def _storable(text: str | None) -> str | None:
    """A refused request's own words, with NUL (which PostgreSQL cannot store) escaped."""
    return None if text is None else text.replace("\x00", "\\x00")
