"""Signing requests that wait for approvals: the rows, as the use cases
(``service/requests.py``) and the signing pipeline (``pipeline/hold.py``) read and write
them. Session helpers only: the decisions are ``policy/approvals.py``'s.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record, entry_bytes, time_text
from signgate.crypto.canonical import canonical_json
from signgate.errors import NotFound
from signgate.policy.approvals import RequestSnapshot, RequestState, effective_state
from signgate.policy.model import Federation, Scope
from signgate.service.context import Context
from signgate.service.records.log import log_tree
from signgate.service.views import (
    ApprovalView,
    BuilderView,
    Receipt,
    RequestView,
    SignResult,
)
from signgate.store.models import (
    Approval,
    ApprovalRequest,
    AuditEntry,
    BuilderSubmission,
    Identity,
    Key,
    LogCheckpoint,
    Project,
)
from signgate.transparency.proof import TlogProof, format_proofs

OPEN_STATES = (RequestState.PENDING.value, RequestState.APPROVED.value,
               RequestState.SIGNED.value)


@dataclasses.dataclass(frozen=True)
class NewRequest:
    """What a held signing needs to be made later, exactly as it was asked."""

    key_id: int
    key_ref: str
    project: str
    requester_id: int
    requester: str
    artifact_name: str
    digest_algorithm: str
    digest: str
    format: str
    params: Mapping[str, str]
    metadata: Mapping[str, str]
    timestamp: bool
    scan: dict[str, Any] | None
    client_address: str | None
    required: int
    approver_scope: Scope
    federation: Federation | None = None
    # Independent-build agreement: the release label and how many builders must agree
    # (the request then starts ``awaiting_builders``).
    release: str | None = None
    release_id: str | None = None
    builders_required: int = 0


def find_same(session: Session, new: NewRequest, now: datetime) -> ApprovalRequest | None:
    """The request this one repeats (same requester, key, digest, artifact name and
    format) that is still open or already signed: a re-run joins it."""
    rows = session.execute(
        select(ApprovalRequest).where(
            ApprovalRequest.requester_id == new.requester_id,
            ApprovalRequest.key_id == new.key_id, ApprovalRequest.digest == new.digest,
            ApprovalRequest.state.in_(OPEN_STATES))
        .order_by(ApprovalRequest.created_at.desc())
    ).scalars().all()
    for row in rows:
        if (row.artifact_name == new.artifact_name and row.format == new.format
                and row.digest_algorithm == new.digest_algorithm
                and not (row.state == RequestState.PENDING.value and now >= row.expires_at)):
            return row
    return None


def create(ctx: Context, session: Session, new: NewRequest, now: datetime) -> ApprovalRequest:
    """A new pending request, and its ``request.create`` audit entry."""
    request_id = str(uuid.uuid4())
    expires = now + timedelta(minutes=ctx.settings.approval_ttl_minutes)
    details: dict[str, Any] = {
        "request_id": request_id, "digest_algorithm": new.digest_algorithm,
        "digest": new.digest, "format": new.format, "required": new.required,
        "approver_scope": str(new.approver_scope), "expires_at": expires.isoformat()}
    if new.client_address:
        details["client"] = new.client_address
    if new.metadata:
        details["metadata"] = dict(new.metadata)
    if new.builders_required:
        details["release"] = new.release
        details["builders_required"] = new.builders_required
    seq = ctx.record(session, Record(new.requester, Action.REQUEST_CREATE, Outcome.ALLOWED,
                                     new.artifact_name, new.project, new.key_ref, details),
                     now)
    row = ApprovalRequest(
        id=request_id, key_id=new.key_id, requester_id=new.requester_id,
        artifact_name=new.artifact_name, digest_algorithm=new.digest_algorithm,
        digest=new.digest, format=new.format,
        params_json=canonical_json(dict(new.params)).decode(),
        metadata_json=canonical_json(dict(new.metadata)).decode(), timestamp=new.timestamp,
        scan_json=canonical_json(new.scan).decode() if new.scan is not None else None,
        client_address=new.client_address, required=new.required,
        federation_json=(canonical_json(new.federation.record()).decode()
                         if new.federation is not None else None),
        approver_scope=str(new.approver_scope),
        state=(RequestState.AWAITING_BUILDERS if new.builders_required else
               RequestState.PENDING).value,
        created_at=now, expires_at=expires, audit_seq=seq, release=new.release,
        release_id=new.release_id, builders_required=new.builders_required)
    session.add(row)
    session.flush()
    return row


def check_id(request_id: str) -> str:
    """A request id is a UUID; anything else is simply not found."""
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        raise NotFound(f"no signing request {request_id[:64]!r}") from None


def get_request(session: Session, request_id: str, *, lock: bool = False) -> ApprovalRequest:
    """The request, locked for update with ``lock`` (PostgreSQL: a row lock; SQLite's
    writers are serialised already)."""
    stmt = select(ApprovalRequest).where(ApprovalRequest.id == check_id(request_id))
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None:
        raise NotFound(f"no signing request {request_id!r}")
    return row


def key_of(session: Session, row: ApprovalRequest) -> tuple[str, str]:
    """The project and key name of ``row``'s key."""
    found = session.execute(
        select(Project.name, Key.name).join(Key, Key.project_id == Project.id)
        .where(Key.id == row.key_id)).one()
    return found[0], found[1]


def identity_name(session: Session, identity_id: int) -> str:
    return session.execute(select(Identity.name).where(Identity.id == identity_id)).scalar_one()


def decisions(session: Session, row: ApprovalRequest) -> list[ApprovalView]:
    found = session.execute(
        select(Approval, Identity.name).join(Identity, Identity.id == Approval.identity_id)
        .where(Approval.request_id == row.id).order_by(Approval.audit_seq)).all()
    return [ApprovalView(name, a.decision, a.created_at, a.audit_seq, a.comment)
            for a, name in found]


def builders(session: Session, row: ApprovalRequest) -> list[tuple[BuilderView, str]]:
    """The release's builder submissions, oldest first, each with the digest it named."""
    found = session.execute(
        select(BuilderSubmission, Identity.name)
        .join(Identity, Identity.id == BuilderSubmission.identity_id)
        .where(BuilderSubmission.request_id == row.id)
        .order_by(BuilderSubmission.audit_seq)).all()
    return [(BuilderView(name, b.created_at, b.audit_seq), b.digest) for b, name in found]


def snapshot(session: Session, row: ApprovalRequest,
             views: list[ApprovalView] | None = None) -> RequestSnapshot:
    project, key = key_of(session, row)
    views = decisions(session, row) if views is None else views
    denied = next((v.identity for v in views if v.decision == "deny"), None)
    return RequestSnapshot(
        id=row.id, key_ref=f"{project}/{key}",
        requester=identity_name(session, row.requester_id), state=RequestState(row.state),
        required=row.required, approver_scope=Scope.parse(row.approver_scope),
        expires_at=row.expires_at,
        approvers=frozenset(v.identity for v in views if v.decision == "approve"),
        denied_by=denied)


def view(ctx: Context, session: Session, row: ApprovalRequest, now: datetime,
         with_result: bool = True) -> RequestView:
    views = decisions(session, row)
    snap = snapshot(session, row, views)
    state = effective_state(snap, now)
    result = result_of(ctx, session, row) if with_result and state is \
        RequestState.SIGNED else None
    return RequestView(
        request_id=row.id, key=snap.key_ref, artifact_name=row.artifact_name,
        digest_algorithm=row.digest_algorithm, digest=row.digest, format=row.format,
        requester=snap.requester, state=state.value, required=row.required,
        approver_scope=row.approver_scope, created_at=row.created_at,
        expires_at=row.expires_at, audit_seq=row.audit_seq, approvals=views,
        reason=row.reason, signature_id=row.signature_id, result=result,
        release=row.release, builders_required=row.builders_required or 0,
        builders=[b for b, d in builders(session, row) if d == row.digest])


def approval_details(row: ApprovalRequest, views: list[ApprovalView],
                     agreed: list[BuilderView] | None = None) -> dict[str, Any]:
    """What the signature's audit entry and receipt say of its approvals (and, for a key
    that needs independent builders, of the builders that agreed)."""
    extra: dict[str, Any] = {}
    if row.builders_required:
        extra = {"release": row.release, "builders_required": row.builders_required,
                 "builders": [{"identity": b.identity, "at": b.at.isoformat(),
                               "audit_seq": b.audit_seq} for b in agreed or []]}
    return {**extra, "request_id": row.id, "request_seq": row.audit_seq, "required": row.required,
            "approvals": [{"identity": v.identity, "at": v.at.isoformat(),
                           "audit_seq": v.audit_seq,
                           **({"comment": v.comment} if v.comment else {})}
                          for v in views if v.decision == "approve"]}


def store_result(row: ApprovalRequest, result: SignResult) -> None:
    """Keep the signing's result (without its log proof, made anew when read)."""
    body = dataclasses.asdict(dataclasses.replace(result, log_proof=None))
    row.result_json = json.dumps(body, default=_jsonable, sort_keys=True)
    row.signature_id = result.receipt.signature_id


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def result_of(ctx: Context, session: Session, row: ApprovalRequest) -> SignResult | None:
    """The signed request's result as a direct signing returns it, with the receipt's
    inclusion proof in the newest checkpoint (``signgate log verify-receipt`` checks it)."""
    if row.result_json is None:
        return None
    body = json.loads(row.result_json)
    receipt = dict(body["receipt"])
    for name in ("signed_at", "timestamp_time"):
        if receipt.get(name):
            receipt[name] = datetime.fromisoformat(receipt[name])
    result = SignResult(body["signature"], Receipt(**receipt), body.get("timestamp"),
                        body.get("certificate"))
    seq = result.receipt.audit_seq
    checkpoint = session.execute(select(LogCheckpoint).order_by(LogCheckpoint.size.desc())
                                 .limit(1)).scalars().first()
    if checkpoint is None or checkpoint.size < seq:  # no log key yet, as a direct signing
        return result
    entry = session.execute(select(AuditEntry).where(AuditEntry.seq == seq)).scalar_one()
    leaf = entry_bytes(entry.seq, time_text(entry.time), entry.actor, entry.action,
                       entry.outcome, entry.subject, entry.project, entry.key_ref,
                       entry.details, entry.prev_hash)
    tree = log_tree(ctx, session)
    note = checkpoint.note.encode("utf-8")
    proof = TlogProof(seq - 1, tuple(tree.inclusion(seq - 1, checkpoint.size)), note,
                      extra=leaf)
    text = format_proofs(note, [proof])[0].decode("utf-8")
    receipt_now = dataclasses.replace(result.receipt, log_index=seq - 1,
                                      log_size=checkpoint.size,
                                      log_cosignatures=checkpoint.cosignatures)
    return dataclasses.replace(result, receipt=receipt_now, log_proof=text)
