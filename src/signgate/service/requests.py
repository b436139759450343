"""Signing requests that wait for quorum approvals: list, show, approve, deny.

A signing with a key whose policy asks for M approvals is held by the signing pipeline
(``pipeline/hold.py``) as a pending request. Approvers with the approver role on the
request's scope approve or deny it here, each decision its own audit entry; the
decisions themselves are ``policy/approvals.py``'s. The M-th approval moves the request
to ``approved`` in its transaction (the request row locked), and the same call then has
the signing pipeline sign it, with the key version current at that moment, as its
requester asked; the pipeline's conditional update on the request's state makes sure
that two approvals arriving at once produce one signature.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate import errors
from signgate.audit.model import Action, Outcome, Record
from signgate.errors import Denied, ErrorCode, NotFound
from signgate.policy import approvals as decide
from signgate.policy.approvals import RequestState
from signgate.policy.decide import Decision
from signgate.policy.model import Actor
from signgate.service.context import Caller, Context, Target, authenticate
from signgate.service.records import requests as records
from signgate.service.sign_request import SignRequest
from signgate.service.views import RequestView
from signgate.store.models import Approval, ApprovalRequest

MAX_LISTED = 1000


def list_requests(ctx: Context, caller: Caller, pending: bool = False) -> list[RequestView]:
    """The requests ``caller`` may see (its own, those it may approve, and those of keys it
    administers or audits), newest first; ``pending``: only those awaiting approvals."""

    def run(session: Session, actor: Actor) -> list[RequestView]:
        now = ctx.clock.now()
        stmt = select(ApprovalRequest).order_by(ApprovalRequest.created_at.desc())
        if pending:
            stmt = stmt.where(ApprovalRequest.state == RequestState.PENDING.value,
                              ApprovalRequest.expires_at > now)
        out: list[RequestView] = []
        for row in session.execute(stmt.limit(MAX_LISTED * 4)).scalars():
            project, key = records.key_of(session, row)
            if decide.may_see_request(actor, records.snapshot(session, row), project, key):
                out.append(records.view(ctx, session, row, now, with_result=False))
                if len(out) >= MAX_LISTED:
                    break
        return out

    return ctx.read(caller, Target(Action.READ, "requests"), run)


def show(ctx: Context, caller: Caller, request_id: str) -> RequestView:
    """The request, and once signed the result a direct signing returns. An approved
    request whose signing did not complete (the server stopped in between) is signed now."""
    found = _show(ctx, caller, request_id)
    if found.state == RequestState.APPROVED.value:
        return _finish(ctx, caller, request_id)
    return found


def _show(ctx: Context, caller: Caller, request_id: str) -> RequestView:
    def run(session: Session, actor: Actor) -> RequestView:
        return records.view(ctx, session, _visible(session, actor, request_id),
                            ctx.clock.now())

    return ctx.read(caller, Target(Action.READ, request_id[:64]), run)


def approve(ctx: Context, caller: Caller, request_id: str,
            comment: str | None = None) -> RequestView:
    """One approval; the M-th has the request signed before this returns."""
    state = _decide(ctx, caller, request_id, approving=True, text=comment)
    if state is RequestState.APPROVED:
        return _finish(ctx, caller, request_id)
    return _show(ctx, caller, request_id)


def deny(ctx: Context, caller: Caller, request_id: str, reason: str) -> RequestView:
    """A denial: the request ends here, whatever approvals it had."""
    if not reason or not reason.strip():
        raise errors.InvalidInput("a denial needs --reason")
    _decide(ctx, caller, request_id, approving=False, text=reason)
    return _show(ctx, caller, request_id)


def _decide(ctx: Context, caller: Caller, request_id: str, *, approving: bool,
            text: str | None) -> RequestState:
    action = Action.REQUEST_APPROVE if approving else Action.REQUEST_DENY
    text = decide.check_comment(text, "--comment" if approving else "--reason")

    def run(session: Session, actor: Actor) -> RequestState:
        row = records.get_request(session, request_id, lock=True)
        project, key = records.key_of(session, row)
        snap = records.snapshot(session, row)
        if not decide.may_see_request(actor, snap, project, key):
            raise NotFound(f"no signing request {request_id!r}")
        now = ctx.clock.now()
        _require(decide.may_decide(actor, snap, now, approving))
        identity_id, _ = authenticate(session, caller, ctx.clock)
        if approving:
            new = decide.after_approval(snap, actor.name)
            count = len(snap.approvers) + 1
        else:
            new, count = RequestState.DENIED, len(snap.approvers)
        details: dict[str, object] = {
            "request_id": row.id, "request_seq": row.audit_seq, "digest": row.digest,
            "digest_algorithm": row.digest_algorithm, "requester": snap.requester,
            "approvals": count, "required": row.required, "state": new.value}
        if text:
            details["comment" if approving else "reason"] = text
        seq = ctx.record(session, Record(actor.name, action, Outcome.ALLOWED,
                                         row.artifact_name, project, snap.key_ref, details),
                         now)
        session.add(Approval(request_id=row.id, identity_id=identity_id,
                             decision="approve" if approving else "deny",
                             comment=text, created_at=now, audit_seq=seq))
        row.state = new.value
        if new is not RequestState.PENDING:
            row.decided_at = now
        if not approving:
            row.reason = text
        return new

    return ctx.write(caller, Target(action, request_id[:64]), run)


def _finish(ctx: Context, caller: Caller, request_id: str) -> RequestView:
    """Have the pipeline sign the approved request (or answer that another did)."""
    asked = _show(ctx, caller, request_id)
    project, _, key = asked.key.partition("/")
    ctx.signing.submit(SignRequest(caller, project, key, asked.digest_algorithm,
                                   asked.digest, asked.artifact_name, format=asked.format,
                                   approval_request=asked.request_id))
    return _show(ctx, caller, request_id)


def _visible(session: Session, actor: Actor, request_id: str) -> ApprovalRequest:
    row = records.get_request(session, request_id)
    project, key = records.key_of(session, row)
    if not decide.may_see_request(actor, records.snapshot(session, row), project, key):
        raise NotFound(f"no signing request {request_id!r}")
    return row


def _require(d: Decision) -> None:
    if d.allowed:
        return
    cls = errors.class_of(d.code.value) if d.code is not None else None
    if cls is None or d.code is None:
        raise Denied(d.reason)
    raise errors.rebuild(cls, d.reason, ErrorCode(d.code.value))
