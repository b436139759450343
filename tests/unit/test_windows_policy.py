"""Release windows and quotas, decided (policy/windows.py): pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.windows import (
    Window,
    WindowRequest,
    WindowState,
    check_quota,
    check_window_approvals,
    choose_window,
    day_start,
    may_approve_window,
    seconds_to_reset,
    within_quota,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REF = "app/release"


def window(wid: str = "w1", hours: float = 1, max_signatures: int | None = None,
           signatures: int = 0, signers: set[str] | None = None,
           closed: bool = False, label: str | None = None) -> Window:
    return Window(wid, NOW + timedelta(hours=hours), max_signatures,
                  frozenset(signers) if signers is not None else None, signatures,
                  NOW if closed else None, label, NOW - timedelta(hours=1))


def test_window_states() -> None:
    assert window().state(NOW) is WindowState.OPEN
    assert window(hours=0).state(NOW) is WindowState.EXPIRED  # its end is excluded
    assert window(hours=-1).state(NOW) is WindowState.EXPIRED
    assert window(max_signatures=3, signatures=2).state(NOW) is WindowState.OPEN
    assert window(max_signatures=3, signatures=3).state(NOW) is WindowState.EXHAUSTED
    assert window(closed=True).state(NOW) is WindowState.CLOSED


def test_no_window_refuses_with_the_next_step() -> None:
    d, w = choose_window("ci", REF, [], NOW)
    assert (d.allowed, w, d.code) == (False, None, ErrorCode.NO_RELEASE_WINDOW)
    assert "offline" in d.reason
    assert "has no release window open" in d.reason
    assert f"ask an admin of {REF}: signgate release open {REF} --until TIME" in d.reason


@pytest.mark.parametrize(("over", "why"), [
    (window(hours=-1), "ended at"),
    (window(closed=True), "was closed at"),
    (window(max_signatures=2, signatures=2), "has made all its 2 signatures"),
])
def test_a_window_that_is_over_is_named(over: Window, why: str) -> None:
    d, w = choose_window("ci", REF, [over], NOW)
    assert w is None
    assert not d.allowed
    assert f"its latest release window w1 {why}" in d.reason


def test_signers_of_a_window() -> None:
    only_alice = window(signers={"alice"}, label="v1")
    d, w = choose_window("alice", REF, [only_alice], NOW)
    assert d.allowed
    assert w == only_alice
    d, w = choose_window("bob", REF, [only_alice], NOW)
    assert w is None
    assert "w1 (v1)" in d.reason
    assert "does not list bob as a signer" in d.reason
    assert "--signer bob" in d.reason


def test_the_window_that_ends_first_counts() -> None:
    long, short = window("long", hours=5), window("short", hours=1)
    full = window("full", hours=0.5, max_signatures=1, signatures=1)
    d, w = choose_window("ci", REF, [long, full, short], NOW)
    assert d.allowed
    assert w is not None
    assert w.id == "short"


def test_window_request_checks() -> None:
    ok = WindowRequest.parse(NOW, NOW + timedelta(hours=1), 5, ["b", "a"], "v1")
    assert (ok.max_signatures, ok.signers, ok.label) == (5, frozenset({"a", "b"}), "v1")
    assert WindowRequest.parse(NOW, NOW + timedelta(days=366), None, [], None).signers is None
    bad = [
        (NOW, None, [], None),  # not in the future
        (NOW + timedelta(days=367), None, [], None),  # too long
        (NOW + timedelta(hours=1), 0, [], None),
        (NOW + timedelta(hours=1), 2**31, [], None),
        (NOW + timedelta(hours=1), None, ["a b"], None),
        (NOW + timedelta(hours=1), None, [""], None),
        (NOW + timedelta(hours=1), None, ["x"] * 65, None),
        (NOW + timedelta(hours=1), None, [], ""),
        (NOW + timedelta(hours=1), None, [], "a\nb"),
        (NOW + timedelta(hours=1), None, [], "x" * 128),
    ]
    for until, n, signers, label in bad:
        with pytest.raises(InvalidInput) as refused:
            WindowRequest.parse(NOW, until, n, signers, label)
        assert refused.value.code is ErrorCode.BAD_RELEASE_POLICY
    with pytest.raises(InvalidInput):  # a time without a zone is ambiguous
        WindowRequest.parse(NOW, datetime(2026, 6, 2), None, [], None)


def test_quota_edge_and_day_boundary() -> None:
    assert within_quota("ci", REF, 0, 10**6, NOW).allowed  # 0: no quota
    assert within_quota("ci", REF, 5, 4, NOW).allowed  # the 5th signature
    d = within_quota("ci", REF, 5, 5, NOW)
    assert (d.allowed, d.code) == (False, ErrorCode.QUOTA_EXCEEDED)
    assert "resets at 2026-06-02T00:00:00+00:00" in d.reason
    assert day_start(NOW) == datetime(2026, 6, 1, tzinfo=UTC)
    late = datetime(2026, 6, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert day_start(late) == datetime(2026, 6, 1, tzinfo=UTC)
    assert day_start(late + timedelta(microseconds=1)) == datetime(2026, 6, 2, tzinfo=UTC)
    # UTC days, whatever the zone of the time given.
    east = datetime(2026, 6, 2, 1, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    assert day_start(east) == datetime(2026, 6, 2, tzinfo=UTC)
    assert seconds_to_reset(NOW) == 12 * 3600
    assert seconds_to_reset(late) == 1
    assert seconds_to_reset(datetime(2026, 6, 2, tzinfo=UTC)) == 86400
    assert check_quota(0) == 0
    with pytest.raises(InvalidInput):
        check_quota(-1)
    with pytest.raises(InvalidInput):
        check_quota(2**31)


def test_a_window_waits_for_its_approvals() -> None:
    w = Window("w1", NOW + timedelta(hours=1), None, None, 0, None, None, NOW, 2,
               frozenset(), "admin")
    assert w.state(NOW) is WindowState.PENDING
    d, chosen = choose_window("ci", REF, [w], NOW)
    assert chosen is None
    assert "awaits 2 more approval(s) of 2" in d.reason
    assert "signgate release approve w1" in d.reason
    assert may_approve_window("alice", True, w, NOW).allowed
    assert may_approve_window("alice", False, w, NOW).code is None  # no grant: denied
    assert not may_approve_window("alice", False, w, NOW).allowed
    assert may_approve_window("admin", True, w, NOW).code is ErrorCode.SELF_APPROVAL
    one = Window("w1", w.until, None, None, 0, None, None, NOW, 2, frozenset({"alice"}),
                 "admin")
    assert one.state(NOW) is WindowState.PENDING
    assert may_approve_window("alice", True, one, NOW).code is ErrorCode.ALREADY_APPROVED
    two = Window("w1", w.until, None, None, 0, None, None, NOW, 2,
                 frozenset({"alice", "bob"}), "admin")
    assert two.state(NOW) is WindowState.OPEN  # the M-th approval opens it
    assert may_approve_window("carol", True, two, NOW).code is ErrorCode.WINDOW_CLOSED
    # Pending, but its time ran out: expired, and no longer approvable.
    assert w.state(w.until) is WindowState.EXPIRED
    assert may_approve_window("alice", True, w, w.until).code is ErrorCode.WINDOW_CLOSED
    assert check_window_approvals(16) == 16
    with pytest.raises(InvalidInput):
        check_window_approvals(17)
