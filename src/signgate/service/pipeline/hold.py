"""Quorum approvals inside the signing pipeline: hold a signing until it is approved, and
sign an approved request exactly once.

A key whose policy asks for approvals does not sign when asked: :func:`hold` stores the
request (everything needed to sign it later) and answers with it, or with the open request
it repeats (same requester, key, digest, artifact name and format). Once the M-th approval
is in, ``service/requests.py`` submits the request again with ``approval_request`` set:
:func:`claim` moves it from ``approved`` to ``signed`` with a conditional update, in the
batch's transaction, so that of two submissions of one request (two approvers at once, or
an approver and a look-up) exactly one signs; the other is answered with the request.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import update

from signgate.errors import Conflict, Denied, ErrorCode, NotFound
from signgate.policy import claims as claim_policy
from signgate.policy.approvals import ApprovalPolicy, RequestState
from signgate.policy.model import Actor, Federation, Scope
from signgate.scan.base import Verdict
from signgate.scan.outcome import ScanOutcome
from signgate.service.actors import load_actor_by_id
from signgate.service.pipeline.authorize import Authorized
from signgate.service.pipeline.work import Work
from signgate.service.records import oidc as oidc_records
from signgate.service.records import requests as records
from signgate.service.sign_request import SignRequest
from signgate.service.views import RequestView, SignResult
from signgate.store.models import ApprovalRequest, table

_requests = table(ApprovalRequest)


def held(authorized: Authorized) -> bool:
    """Must this signing wait for approvals?"""
    return authorized.key.approvals > 0


def hold(work: Work, request: SignRequest, authorized: Authorized) -> tuple[RequestView, bool]:
    """The request this signing waits in (and whether it was made now)."""
    key = authorized.key
    now = work.ctx.clock.now()
    policy = ApprovalPolicy(key.approvals, Scope.parse(key.approver_scope)
                            if key.approver_scope else None)
    new = records.NewRequest(
        key_id=key.key_id, key_ref=key.ref, project=key.project,
        requester_id=authorized.identity_id, requester=authorized.actor.name,
        artifact_name=request.artifact_name,
        digest_algorithm=authorized.digest_algorithm.value, digest=authorized.digest.hex(),
        format=request.format, params=request.params, metadata=authorized.metadata,
        timestamp=request.timestamp,
        scan=request.scan.details() if request.scan is not None else None,
        client_address=request.caller.address, required=key.approvals,
        approver_scope=policy.scope_for(key.project, key.name),
        federation=authorized.actor.federation)
    row = records.find_same(work.session, new, now)
    created = row is None
    if row is None:
        row = records.create(work.ctx, work.session, new, now)
    return records.view(work.ctx, work.session, row, now, with_result=False), created


def as_requester(work: Work, request: SignRequest) -> tuple[SignRequest, int, Actor] | None:
    """The approved request ``request.approval_request`` as its requester asked it, with
    the requester's identity: it signs as theirs, with their grants as they are now. None
    when it is not (or no longer) approved: another submission signed it already."""
    assert request.approval_request is not None
    row = records.get_request(work.session, request.approval_request, lock=True)
    if row.state != RequestState.APPROVED.value:
        return None
    actor = load_actor_by_id(work.conn, row.requester_id)
    if actor is None or not actor.enabled:
        # Refused as a grant would be: the caller (an approver) did authenticate.
        raise Denied(f"request {row.id} was asked for by an identity that is now disabled; "
                     "nothing was signed")
    if row.federation_json is not None:
        actor = _federated(work, row.id, actor, json.loads(row.federation_json))
    project, key = records.key_of(work.session, row)
    scan = _scan(row.scan_json) if row.scan_json else None
    asked = dataclasses.replace(
        request, project=project, key=key, digest_algorithm=row.digest_algorithm,
        digest=row.digest, artifact_name=row.artifact_name,
        metadata=json.loads(row.metadata_json), timestamp=row.timestamp, format=row.format,
        params=json.loads(row.params_json), scan=scan)
    return asked, row.requester_id, actor


def _federated(work: Work, request_id: str, identity: Actor,
               federation: dict[str, Any]) -> Actor:
    """An OIDC job's request signs with the grants its claims earn now (the claim bindings
    of its issuer as they are at the last approval, like any requester's grants), and
    its signature's entry names the job, as a direct signing's would."""
    issuer, claims = str(federation["issuer"]), dict(federation["claims"])
    try:
        found = oidc_records.get_issuer(work.session, issuer)
    except NotFound:
        earned, why = None, f"issuer {issuer} was removed"
    else:
        earned = claim_policy.match(issuer, oidc_records.bindings(work.session, found), claims)
        why = earned.reason
    if earned is None or not earned.allowed:
        raise Denied(f"request {request_id} was asked for by an OIDC job whose claims no "
                     f"longer earn a grant ({why}); nothing was signed")
    return dataclasses.replace(identity, grants=earned.grants, federation=Federation(
        issuer, earned.claims, work.ctx.clock.now()))


def claim(work: Work, request_id: str) -> dict[str, object]:
    """Move the approved request to ``signed`` (exactly one submission can); the
    approvals the signature's entry and receipt list."""
    now = work.ctx.clock.now()
    done = work.conn.execute(
        update(_requests).where(_requests.c.id == request_id,
                                _requests.c.state == RequestState.APPROVED.value)
        .values(state=RequestState.SIGNED.value, decided_at=now))
    if done.rowcount != 1:
        raise Conflict(f"request {request_id} is no longer approved",
                       code=ErrorCode.REQUEST_CLOSED)
    row = records.get_request(work.session, request_id)
    work.session.refresh(row)
    agreed = [b for b, digest in records.builders(work.session, row) if digest == row.digest]
    return records.approval_details(row, records.decisions(work.session, row), agreed)


def unclaim(work: Work, request_id: str) -> None:
    """The signing failed after :func:`claim`: the request is approved again (a later
    look-up retries it)."""
    work.conn.execute(
        update(_requests).where(_requests.c.id == request_id)
        .values(state=RequestState.APPROVED.value, decided_at=None))


def answered(work: Work, request_id: str) -> RequestView:
    """The request as it is now (signed by another submission, say)."""
    row = records.get_request(work.session, request_id)
    work.session.refresh(row)
    return records.view(work.ctx, work.session, row, work.ctx.clock.now(), with_result=False)


def _scan(text: str) -> ScanOutcome:
    """The clean scan a held upload passed, as it was recorded (it is signed with it)."""
    d = json.loads(text)
    return ScanOutcome(d["artifact_sha256"], int(d["artifact_size"]), tuple(
        Verdict(clean=not e["findings"], findings=tuple(e["findings"]), engine=e["engine"],
                engine_version=e["engine_version"], ruleset_version=e["ruleset_version"],
                seconds=float(e["seconds"]))
        for e in d.get("engines", [])))


def store_result(work: Work, request_id: str, result: SignResult) -> None:
    """Keep the result on the request, for the requester to fetch."""
    row = records.get_request(work.session, request_id)
    records.store_result(row, result)
    work.session.flush()
