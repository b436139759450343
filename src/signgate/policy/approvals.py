"""Quorum approvals, decided: may this identity approve (or deny) this request now, and
what state does the request reach with it? Pure: the service reads the request and its
approvals, these functions decide, the service writes.

A request for a key whose policy asks for M approvals moves
``pending`` -> ``approved`` (the M-th distinct approver) -> ``signed`` (the signing
pipeline made the signature), or ends ``denied`` (one denial is enough) or ``expired``
(its time ran out before the quorum). The requester never approves its own request, and
each identity counts once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.decide import Decision
from signgate.policy.model import Actor, Role, Scope

MAX_APPROVALS = 16
MAX_COMMENT = 1000


class RequestState(enum.StrEnum):
    AWAITING_BUILDERS = "awaiting_builders"  # independent builders have yet to agree
    PENDING = "pending"
    APPROVED = "approved"  # quorum reached, the signature is being made
    SIGNED = "signed"
    DENIED = "denied"
    EXPIRED = "expired"
    MISMATCH = "mismatch"  # builders submitted different digests: never signed

    @property
    def open(self) -> bool:
        """Still heading for a signature (an identical signing joins it)."""
        return self in (RequestState.AWAITING_BUILDERS, RequestState.PENDING,
                        RequestState.APPROVED)


@dataclass(frozen=True)
class ApprovalPolicy:
    """A key's approval policy: ``approvals`` approvers (0: none) with the approver role
    on ``approver_scope`` (None: the key itself)."""

    approvals: int = 0
    approver_scope: Scope | None = None

    @classmethod
    def parse(cls, approvals: int, approver_scope: str | None) -> ApprovalPolicy:
        if not 0 <= approvals <= MAX_APPROVALS:
            raise InvalidInput(f"--approvals must be 0 to {MAX_APPROVALS}",
                               code=ErrorCode.BAD_APPROVAL_POLICY)
        scope = Scope.parse(approver_scope) if approver_scope else None
        if approvals == 0 and scope is not None:
            raise InvalidInput("--approver-scope needs --approvals 1 or more",
                               code=ErrorCode.BAD_APPROVAL_POLICY)
        return cls(approvals, scope)

    def scope_for(self, project: str, key: str) -> Scope:
        return self.approver_scope or Scope(project, key)


@dataclass(frozen=True)
class RequestSnapshot:
    """A request as the decisions see it."""

    id: str
    key_ref: str
    requester: str
    state: RequestState
    required: int
    approver_scope: Scope
    expires_at: datetime
    approvers: frozenset[str]  # identities that approved so far
    denied_by: str | None = None


def effective_state(request: RequestSnapshot, now: datetime) -> RequestState:
    """A pending request whose time ran out is expired, whether or not that was written."""
    if request.state is RequestState.PENDING and now >= request.expires_at:
        return RequestState.EXPIRED
    return request.state


def may_decide(actor: Actor, request: RequestSnapshot, now: datetime,
               approving: bool) -> Decision:
    """May ``actor`` approve (``approving``) or deny ``request`` now? Refusals say why: the
    role, the requester's own request, a second vote, or a request no longer pending."""
    verb = "approve" if approving else "deny"
    if not actor.enabled:
        return Decision.deny(f"identity {actor.name} is disabled")
    scope = request.approver_scope
    if not _has_approver(actor, scope):
        return Decision.deny(f"identity {actor.name} may not {verb} requests for "
                             f"{request.key_ref}: no approver grant on {scope}")
    if actor.name == request.requester:
        return Decision.deny(f"identity {actor.name} asked for request {request.id} and may "
                             f"not {verb} it: approvals must come from someone else",
                             ErrorCode.SELF_APPROVAL)
    state = effective_state(request, now)
    if state is RequestState.EXPIRED:
        return Decision.deny(f"request {request.id} expired at "
                             f"{request.expires_at.isoformat()} without "
                             f"{request.required} approvals: ask for the signing again",
                             ErrorCode.REQUEST_EXPIRED)
    if state is RequestState.AWAITING_BUILDERS:
        return Decision.deny(f"request {request.id} still waits for its builders to agree: "
                             "it can be approved once they have", ErrorCode.REQUEST_CLOSED)
    if state is RequestState.MISMATCH:
        return Decision.deny(f"request {request.id} was stopped by a builder mismatch and is "
                             "never signed", ErrorCode.RELEASE_STOPPED)
    if state is not RequestState.PENDING:
        how = f" by {request.denied_by}" if request.denied_by else ""
        return Decision.deny(f"request {request.id} is already {state.value}{how}",
                             ErrorCode.REQUEST_CLOSED)
    if actor.name in request.approvers:
        return Decision.deny(f"identity {actor.name} already approved request {request.id}: "
                             f"{request.required} different approvers are needed",
                             ErrorCode.ALREADY_APPROVED)
    return Decision.allow()


def after_approval(request: RequestSnapshot, approver: str) -> RequestState:
    """The state once ``approver`` (allowed by :func:`may_decide`) approved: ``approved``
    when that makes ``required`` distinct approvers, else still ``pending``."""
    approvers = request.approvers | {approver}
    return RequestState.APPROVED if len(approvers) >= request.required else \
        RequestState.PENDING


def may_see_request(actor: Actor, request: RequestSnapshot, project: str, key: str) -> bool:
    """The requester, approvers of its scope, and approvers, admins or auditors over the
    key."""
    if not actor.enabled:
        return False
    if actor.name == request.requester or _has_approver(actor, request.approver_scope):
        return True
    return any(actor.has(role, project, key)
               for role in (Role.APPROVER, Role.ADMIN, Role.AUDITOR))


def _has_approver(actor: Actor, scope: Scope) -> bool:
    """An approver grant covering all of ``scope``."""
    for g in actor.grants:
        if g.role is not Role.APPROVER:
            continue
        if g.scope.is_global:
            return True
        if scope.project is not None and g.scope.covers(scope.project, scope.key):
            return True
    return False


def check_comment(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if len(text) > MAX_COMMENT or any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InvalidInput(f"{what} must be at most {MAX_COMMENT} printable characters")
    return text
