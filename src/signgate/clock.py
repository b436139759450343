"""Time as a dependency, so that time-dependent rules are tested without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without offset is taken as UTC."""
    from signgate.errors import ErrorCode, InvalidInput

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-11-28T09:00:00Z",
            code=ErrorCode.BAD_TIME
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000
        raise InvalidInput(f"time {text!r} is out of range", code=ErrorCode.BAD_TIME) from None
