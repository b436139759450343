"""Quorum approvals on the service layer, on SQLite and PostgreSQL, with an injected clock:
a signing is held, approved by M distinct approvers (never its requester), signed with
the key version current then, and listed with its approvals in the entry and receipt."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import Conflict, Denied, ErrorCode, InvalidInput, NotFound
from signgate.service import grants, identities, keys, requests, signing
from signgate.service.context import Caller
from signgate.service.views import RequestView, SignResult
from signgate.store.models import ApprovalRequest, AuditEntry, SignatureRecord
from tests.integration.test_service import Env, new_key
from tests.support.signing import sign_request

DATA = b"release 1.0\n"
DIGEST = hashlib.sha256(DATA).hexdigest()


def person(e: Env, name: str, *roles: tuple[str, str]) -> Caller:
    token = identities.create(e.ctx, e.admin, name).token
    for role, scope in roles:
        grants.add(e.ctx, e.admin, name, role, scope)
    return Caller(token, "10.0.0.9")


def setup(e: Env, approvals: int = 2, scope: str | None = None) -> tuple[str, Caller,
                                                                          list[Caller]]:
    ref = new_key(e)
    keys.set_approval_policy(e.ctx, e.admin, ref, approvals, scope)
    ci = person(e, "ci", ("signer", ref))
    approvers = [person(e, f"approver-{i}", ("approver", scope or ref)) for i in range(3)]
    return ref, ci, approvers


def ask(e: Env, caller: Caller, ref: str, name: str = "app.bin") -> RequestView:
    out = signing.sign(e.ctx, sign_request(caller, ref, "sha256", DIGEST, name,
                                           {"build": "7"}))
    assert isinstance(out, RequestView), out
    return out


def test_policy_is_recorded_and_shown(env: Env) -> None:
    ref = new_key(env)
    view = keys.set_approval_policy(env.ctx, env.admin, ref, 2, "app")
    assert (view.approvals, view.approver_scope) == (2, "app")
    assert keys.show(env.ctx, env.admin, ref).approvals == 2
    entry = env.entries()[-1]
    assert entry.action == "key.policy"
    assert json.loads(entry.details)["to"] == {"approvals": 2, "approver_scope": "app"}
    with pytest.raises(InvalidInput):
        keys.set_approval_policy(env.ctx, env.admin, ref, 17)
    signer = person(env, "someone", ("signer", ref))
    with pytest.raises(Denied):
        keys.set_approval_policy(env.ctx, signer, ref, 0)
    assert keys.set_approval_policy(env.ctx, env.admin, ref, 0).approvals == 0


def test_held_then_signed_by_the_mth_approval(env: Env) -> None:
    ref, ci, (a, b, _) = setup(env)
    pending = ask(env, ci, ref)
    assert pending.state == "pending"
    assert pending.required == 2
    assert pending.requester == "ci"
    assert pending.digest == DIGEST
    assert pending.expires_at == pending.created_at + timedelta(minutes=1440)
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar() == 0
    # A re-run joins the same request.
    assert ask(env, ci, ref).request_id == pending.request_id
    # The requester may not approve its own request, even with the approver role.
    grants.add(env.ctx, env.admin, "ci", "approver", ref)
    with pytest.raises(Denied) as refused:
        requests.approve(env.ctx, ci, pending.request_id)
    assert refused.value.code is ErrorCode.SELF_APPROVAL
    one = requests.approve(env.ctx, a, pending.request_id, "looks right")
    assert one.state == "pending"
    assert [v.identity for v in one.approvals] == ["approver-0"]
    with pytest.raises(Conflict) as twice:
        requests.approve(env.ctx, a, pending.request_id)
    assert twice.value.code is ErrorCode.ALREADY_APPROVED
    keys.rotate(env.ctx, env.admin, ref)  # the version current at the M-th approval signs
    done = requests.approve(env.ctx, b, pending.request_id)
    assert done.state == "signed"
    assert done.result is not None
    result = done.result
    assert result.receipt.key_version == 2
    assert result.receipt.identity == "ci"
    approval = result.receipt.approval
    assert approval is not None
    assert approval["request_id"] == pending.request_id
    assert [x["identity"] for x in approval["approvals"]] == ["approver-0", "approver-1"]
    assert approval["approvals"][0]["comment"] == "looks right"
    seqs = [x["audit_seq"] for x in approval["approvals"]]
    entries = {e.seq: e for e in env.entries()}
    assert [entries[s].action for s in seqs] == ["request.approve", "request.approve"]
    sig_entry = entries[result.receipt.audit_seq]
    assert json.loads(sig_entry.details)["approval"] == approval
    assert entries[pending.audit_seq].action == "request.create"
    public = keys.public(env.ctx, env.admin, ref, 2).public_key_pem
    assert verify_digest(load_public_key(public), None, DigestAlgorithm.SHA256,
                         bytes.fromhex(DIGEST), base64.b64decode(result.signature))
    # The requester fetches the same result (its log proof: see the e2e tests, whose
    # server has a log key).
    fetched = requests.show(env.ctx, ci, pending.request_id)
    assert fetched.result == result
    # Nothing more to approve; a re-run returns the signed request, not a new one.
    with pytest.raises(Conflict):
        requests.approve(env.ctx, person(env, "late", ("approver", ref)), pending.request_id)
    again = ask(env, ci, ref)
    assert again.request_id == pending.request_id
    assert again.state == "signed"
    env.chain_ok()


def test_deny_ends_the_request(env: Env) -> None:
    ref, ci, (a, b, c) = setup(env)
    pending = ask(env, ci, ref)
    requests.approve(env.ctx, a, pending.request_id)
    with pytest.raises(InvalidInput):
        requests.deny(env.ctx, b, pending.request_id, " ")
    denied = requests.deny(env.ctx, b, pending.request_id, "not from the release branch")
    assert denied.state == "denied"
    assert denied.reason == "not from the release branch"
    with pytest.raises(Conflict) as closed:
        requests.approve(env.ctx, c, pending.request_id)
    assert closed.value.code is ErrorCode.REQUEST_CLOSED
    assert env.entries()[-1].action == "request.approve"  # the refusal is recorded
    assert env.entries()[-1].outcome == "refused"
    # A new signing of the same digest is a new request.
    assert ask(env, ci, ref).request_id != pending.request_id


def test_expired_request_cannot_be_approved(env: Env) -> None:
    ref, ci, (a, b, _) = setup(env)
    pending = ask(env, ci, ref)
    requests.approve(env.ctx, a, pending.request_id)
    env.clock.advance(timedelta(minutes=1440))
    with pytest.raises(Conflict) as expired:
        requests.approve(env.ctx, b, pending.request_id)
    assert expired.value.code is ErrorCode.REQUEST_EXPIRED
    assert "expired" in str(expired.value)
    assert requests.show(env.ctx, ci, pending.request_id).state == "expired"
    assert requests.list_requests(env.ctx, b, pending=True) == []
    fresh = ask(env, ci, ref)
    assert fresh.request_id != pending.request_id
    assert fresh.state == "pending"


def test_who_may_approve_and_see(env: Env) -> None:
    ref, ci, (a, _, _) = setup(env, approvals=1, scope="app")
    key_only = person(env, "key-approver", ("approver", ref))  # not on all of "app"
    new_key(env, "other", "key")
    stranger = person(env, "stranger", ("signer", "other"))
    pending = ask(env, ci, ref)
    with pytest.raises(Denied):
        requests.approve(env.ctx, key_only, pending.request_id)
    with pytest.raises(NotFound):
        requests.show(env.ctx, stranger, pending.request_id)
    with pytest.raises(NotFound):
        requests.show(env.ctx, ci, "not-a-uuid")
    assert [r.request_id for r in requests.list_requests(env.ctx, a, pending=True)] == [
        pending.request_id]
    assert requests.list_requests(env.ctx, stranger) == []
    done = requests.approve(env.ctx, a, pending.request_id)
    assert done.state == "signed"


def test_concurrent_mth_approvals_make_one_signature(env: Env) -> None:
    ref, ci, (a, b, c) = setup(env)
    pending = ask(env, ci, ref)
    requests.approve(env.ctx, a, pending.request_id)
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def approve(caller: Caller) -> None:
        barrier.wait()
        try:
            outcomes.append(requests.approve(env.ctx, caller, pending.request_id))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=approve, args=(x,)) for x in (b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    signed = [o for o in outcomes if isinstance(o, RequestView)]
    assert len(signed) == 1
    assert signed[0].state == "signed"
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar() == 1
        row = s.execute(select(ApprovalRequest)).scalar_one()
        assert row.state == "signed"
        signs = s.execute(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.action == "signature.create",
                                 AuditEntry.outcome == "allowed")).scalar()
        assert signs == 1


def test_a_second_submission_of_an_approved_request_does_not_sign_again(env: Env) -> None:
    ref, ci, (a, _, _) = setup(env, approvals=1)
    pending = ask(env, ci, ref)
    requests.approve(env.ctx, a, pending.request_id)
    # Submit the approved request again, as a racing look-up would.
    from signgate.service.sign_request import SignRequest

    again = env.ctx.signing.submit(SignRequest(a, "app", "release", "sha256", DIGEST,
                                               "app.bin", approval_request=pending.request_id))
    assert isinstance(again, RequestView)
    assert again.state == "signed"
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar() == 1


def test_keys_without_approvals_sign_at_once(env: Env) -> None:
    ref = new_key(env)
    ci = person(env, "ci", ("signer", ref))
    out = signing.sign(env.ctx, sign_request(ci, ref, "sha256", DIGEST, "app.bin"))
    assert isinstance(out, SignResult)
    assert out.receipt.approval is None


def test_a_held_upload_is_signed_with_the_scan_it_passed(env: Env) -> None:
    from dataclasses import replace

    from signgate.scan.base import Verdict
    from signgate.scan.outcome import ScanOutcome

    ref, ci, (a, _, _) = setup(env, approvals=1)
    keys.set_scan_policy(env.ctx, env.admin, ref, "required")
    scan = ScanOutcome(DIGEST, len(DATA), (Verdict.of("yara", [], engine_version="4.5",
                                                      ruleset_version="r7", seconds=0.2),))
    asked = replace(sign_request(ci, ref, "sha256", DIGEST, "up.bin"), scan=scan)
    held = signing.sign(env.ctx, asked)
    assert isinstance(held, RequestView)
    done = requests.approve(env.ctx, a, held.request_id)
    assert done.result is not None
    assert done.result.receipt.scan == scan.details()
    # Without a scan, the same key refuses before anything is held.
    with pytest.raises(Denied) as refused:
        signing.sign(env.ctx, sign_request(ci, ref, "sha256", DIGEST, "other.bin"))
    assert refused.value.code is ErrorCode.SCAN_REQUIRED


def test_an_approved_request_not_signed_yet_is_signed_on_the_next_look(env: Env) -> None:
    ref, ci, (a, _, _) = setup(env, approvals=1)
    pending = ask(env, ci, ref)
    identities.set_enabled(env.ctx, env.admin, "ci", False)
    with pytest.raises(Denied) as refused:
        requests.approve(env.ctx, a, pending.request_id)
    assert "disabled" in str(refused.value)
    # The approval stands; nothing was signed, and the request waits, approved.
    assert requests.list_requests(env.ctx, a)[0].state == "approved"
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar() == 0
    identities.set_enabled(env.ctx, env.admin, "ci", True)
    shown = requests.show(env.ctx, ci, pending.request_id)
    assert shown.state == "signed"
    assert shown.result is not None
    assert shown.result.receipt.identity == "ci"
