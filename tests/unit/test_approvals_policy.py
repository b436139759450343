"""policy/approvals.py: who may approve or deny a request, when it is reached, expired or
closed; the approval policy's bounds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.approvals import (
    ApprovalPolicy,
    RequestSnapshot,
    RequestState,
    after_approval,
    check_comment,
    effective_state,
    may_decide,
    may_see_request,
)
from signgate.policy.model import Actor, Grant, Role, Scope

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
REQUEST = RequestSnapshot(
    id="r1", key_ref="acme/release", requester="ci", state=RequestState.PENDING, required=2,
    approver_scope=Scope("acme", "release"), expires_at=NOW + timedelta(hours=1),
    approvers=frozenset())


def actor(name: str, *grants: tuple[Role, str], enabled: bool = True) -> Actor:
    return Actor(name, enabled, tuple(Grant(r, Scope.parse(s)) for r, s in grants))


ALICE = actor("alice", (Role.APPROVER, "acme/release"))


def test_an_approver_on_the_scope_may_approve_and_deny() -> None:
    assert may_decide(ALICE, REQUEST, NOW, approving=True).allowed
    assert may_decide(ALICE, REQUEST, NOW, approving=False).allowed
    assert may_decide(actor("g", (Role.APPROVER, "*")), REQUEST, NOW, True).allowed
    assert may_decide(actor("p", (Role.APPROVER, "acme")), REQUEST, NOW, True).allowed


@pytest.mark.parametrize("who", [
    actor("signer", (Role.SIGNER, "acme/release")),
    actor("admin", (Role.ADMIN, "acme")),
    actor("other-key", (Role.APPROVER, "acme/debug")),
    actor("other-project", (Role.APPROVER, "beta")),
    actor("off", (Role.APPROVER, "acme/release"), enabled=False),
])
def test_anyone_else_is_refused(who: Actor) -> None:
    d = may_decide(who, REQUEST, NOW, approving=True)
    assert not d.allowed
    assert who.name in d.reason


def test_a_key_grant_does_not_cover_a_project_wide_approver_scope() -> None:
    wide = replace(REQUEST, approver_scope=Scope("acme"))
    assert not may_decide(ALICE, wide, NOW, True).allowed
    assert may_decide(actor("p", (Role.APPROVER, "acme")), wide, NOW, True).allowed


def test_the_requester_never_approves_its_own_request() -> None:
    ci = actor("ci", (Role.APPROVER, "*"), (Role.SIGNER, "acme/release"))
    d = may_decide(ci, REQUEST, NOW, approving=True)
    assert not d.allowed
    assert d.code is ErrorCode.SELF_APPROVAL


def test_one_vote_per_identity() -> None:
    once = replace(REQUEST, approvers=frozenset({"alice"}))
    d = may_decide(ALICE, once, NOW, True)
    assert d.code is ErrorCode.ALREADY_APPROVED
    assert after_approval(REQUEST, "alice") is RequestState.PENDING
    assert after_approval(once, "bob") is RequestState.APPROVED
    assert after_approval(once, "alice") is RequestState.PENDING  # never counted twice


def test_expiry_is_at_expires_at() -> None:
    at = REQUEST.expires_at
    assert effective_state(REQUEST, at - timedelta(microseconds=1)) is RequestState.PENDING
    assert effective_state(REQUEST, at) is RequestState.EXPIRED
    d = may_decide(ALICE, REQUEST, at, True)
    assert d.code is ErrorCode.REQUEST_EXPIRED
    assert "expired" in d.reason
    signed = replace(REQUEST, state=RequestState.SIGNED)
    assert effective_state(signed, at + timedelta(days=1)) is RequestState.SIGNED


@pytest.mark.parametrize("state", [RequestState.APPROVED, RequestState.SIGNED,
                                   RequestState.DENIED])
def test_closed_requests_take_no_more_votes(state: RequestState) -> None:
    d = may_decide(ALICE, replace(REQUEST, state=state, denied_by="bob"), NOW, False)
    assert d.code is ErrorCode.REQUEST_CLOSED
    assert state.value in d.reason


def test_who_may_see_a_request() -> None:
    assert may_see_request(actor("ci"), REQUEST, "acme", "release")
    assert may_see_request(ALICE, REQUEST, "acme", "release")
    assert may_see_request(actor("a", (Role.AUDITOR, "acme")), REQUEST, "acme", "release")
    assert not may_see_request(actor("x", (Role.SIGNER, "acme")), REQUEST, "acme", "release")
    assert not may_see_request(actor("ci", enabled=False), REQUEST, "acme", "release")


def test_policy_bounds() -> None:
    assert ApprovalPolicy.parse(0, None) == ApprovalPolicy()
    p = ApprovalPolicy.parse(2, "acme")
    assert p.scope_for("acme", "release") == Scope("acme")
    assert ApprovalPolicy.parse(1, None).scope_for("acme", "r") == Scope("acme", "r")
    for bad in ((-1, None), (17, None), (0, "acme"), (1, "Not A Scope")):
        with pytest.raises(InvalidInput):
            ApprovalPolicy.parse(*bad)


def test_comments() -> None:
    assert check_comment(None, "--comment") is None
    assert check_comment("fine\nby me", "--comment") == "fine\nby me"
    with pytest.raises(InvalidInput):
        check_comment("x" * 1001, "--comment")
    with pytest.raises(InvalidInput):
        check_comment("bell\x07", "--reason")
