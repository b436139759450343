"""Independent-build agreement inside the signing pipeline: a builder's submission of a
release's digest, held until N distinct builders agree.

A key whose policy requires N builders does not sign when asked: the signing names a
release label, and :func:`submit` records the caller as one builder of (key, artifact
name, label), in the one request that release waits in (``awaiting_builders``; its first
builder is its requester, as for approvals). The N-th distinct builder naming the same
digest moves it on with a conditional update, so that of two N-th builders at once
exactly one does: to ``pending`` when the key also needs approvals (``hold.py`` and
``service/requests.py`` take over: builders agree, then humans approve), else to
``approved``, and the batch then signs it at once through the approvals' claim, exactly
once. A builder naming a different digest is refused (``builder_mismatch``), recorded
with both digests and both builders, and the release's request ends ``mismatch``: it is
never signed. The decisions are ``policy/builders.py``'s.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import Conflict, ErrorCode
from signgate.policy import builders as decide
from signgate.policy.approvals import ApprovalPolicy, RequestState
from signgate.policy.model import Scope
from signgate.service.pipeline.authorize import Authorized
from signgate.service.pipeline.work import Work
from signgate.service.records import requests as records
from signgate.service.sign_request import SignRequest
from signgate.service.views import BuilderView, RequestView
from signgate.store.models import ApprovalRequest, BuilderSubmission, table

_requests = table(ApprovalRequest)


def needed(authorized: Authorized) -> bool:
    """Must this signing wait for independent builders to agree?"""
    return authorized.key.require_builders > 0


def submit(work: Work, request: SignRequest, authorized: Authorized) -> tuple[RequestView, bool]:
    """Record the caller's build of the release; the release's request, and whether it
    is now approved (the caller's batch signs it)."""
    key = authorized.key
    release = decide.check_release(request.release, key.ref, key.require_builders)
    rid = decide.release_id(request.artifact_name, release)
    now = work.ctx.clock.now()
    row = _find(work, key.key_id, rid)
    if row is None:
        policy = ApprovalPolicy(key.approvals, Scope.parse(key.approver_scope)
                                if key.approver_scope else None)
        row = records.create(work.ctx, work.session, records.NewRequest(
            key_id=key.key_id, key_ref=key.ref, project=key.project,
            requester_id=authorized.identity_id, requester=authorized.actor.name,
            artifact_name=request.artifact_name,
            digest_algorithm=authorized.digest_algorithm.value,
            digest=authorized.digest.hex(), format=request.format, params=request.params,
            metadata=authorized.metadata, timestamp=request.timestamp,
            scan=request.scan.details() if request.scan is not None else None,
            client_address=request.caller.address, required=key.approvals,
            approver_scope=policy.scope_for(key.project, key.name),
            federation=authorized.actor.federation, release=release, release_id=rid,
            builders_required=key.require_builders), now)
    submitted = records.builders(work.session, row)
    snap = decide.Release(RequestState(row.state), row.digest, row.builders_required,
                          {b.identity: d for b, d in submitted})
    builder, digest = authorized.actor.name, authorized.digest.hex()
    what = f"{request.artifact_name} release {release} of {key.ref}"
    verdict = decide.submit(snap, builder, digest, what)
    if verdict.step is decide.Step.STOPPED:
        raise Conflict(verdict.reason, code=ErrorCode.RELEASE_STOPPED)
    if verdict.step is decide.Step.MISMATCH:
        _stop(work, request, authorized, row, submitted, release, verdict.reason)
        raise Conflict(verdict.reason, code=ErrorCode.BUILDER_MISMATCH)
    agreed = False
    if verdict.records_submission:
        seq = work.ctx.record(work.session, Record(
            builder, Action.REQUEST_BUILD, Outcome.ALLOWED, request.artifact_name,
            key.project, key.ref,
            {"request_id": row.id, "request_seq": row.audit_seq, "release": release,
             "digest_algorithm": row.digest_algorithm, "digest": digest,
             "builders": verdict.agreeing, "builders_required": row.builders_required}),
            now)
        work.session.add(BuilderSubmission(request_id=row.id,
                                           identity_id=authorized.identity_id,
                                           digest=digest, created_at=now, audit_seq=seq))
        work.session.flush()
        if verdict.step is decide.Step.AGREED:
            agreed = _advance(work, row.id, row.required > 0)
    work.session.refresh(row)
    view = records.view(work.ctx, work.session, row, now, with_result=False)
    if agreed and row.state == RequestState.PENDING.value:
        work.held.append(view)  # approvers are told now, not while builders still differ
    return view, agreed and row.state == RequestState.APPROVED.value


def _find(work: Work, key_id: int, rid: str) -> ApprovalRequest | None:
    """The release's request, locked (PostgreSQL: a row lock, so that builders of one
    release are decided one after the other)."""
    return work.session.execute(
        select(ApprovalRequest).where(ApprovalRequest.key_id == key_id,
                                      ApprovalRequest.release_id == rid)
        .with_for_update()).scalars().first()


def _advance(work: Work, request_id: str, approvals: bool) -> bool:
    """Builders agree: on to approvals (with their full time from now) or to the signing.
    Conditional: of two submissions that both made the quorum, one moves it."""
    now = work.ctx.clock.now()
    values: dict[str, object] = {"state": (RequestState.PENDING if approvals else
                                           RequestState.APPROVED).value}
    if approvals:
        values["expires_at"] = now + timedelta(minutes=work.ctx.settings.approval_ttl_minutes)
    else:
        values["decided_at"] = now
    done = work.conn.execute(
        update(_requests).where(_requests.c.id == request_id,
                                _requests.c.state == RequestState.AWAITING_BUILDERS.value)
        .values(**values))
    return done.rowcount == 1


def _stop(work: Work, request: SignRequest, authorized: Authorized, row: ApprovalRequest,
          submitted: list[tuple[BuilderView, str]], release: str,
          reason: str) -> None:
    """A builder disagrees: record the mismatch (both digests, both sides' builders) and
    stop the release's request if it is still open (a signed one stays signed)."""
    key = authorized.key
    now = work.ctx.clock.now()
    state = RequestState(row.state)
    work.ctx.record(work.session, Record(
        authorized.actor.name, Action.REQUEST_MISMATCH, Outcome.REFUSED,
        request.artifact_name, key.project, key.ref,
        {"request_id": row.id, "request_seq": row.audit_seq, "release": release,
         "digest_algorithm": row.digest_algorithm,
         "expected": {"digest": row.digest,
                      "builders": [{"identity": b.identity, "audit_seq": b.audit_seq}
                                   for b, d in submitted if d == row.digest]},
         "submitted": {"digest": authorized.digest.hex(), "builder": authorized.actor.name},
         "state": state.value,
         "stopped": state.open}), now)
    if state.open:
        work.conn.execute(
            update(_requests).where(_requests.c.id == row.id,
                                    _requests.c.state == state.value)
            .values(state=RequestState.MISMATCH.value, decided_at=now, reason=reason))
