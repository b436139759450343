"""Independent-build agreement on the service layer, on SQLite and PostgreSQL: a key that
requires N builders signs an artifact once N distinct identities submitted the same digest
for it and its release label (exactly once, then on to approvals if the key needs them);
a different digest is refused, recorded and stops the release for good."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import pytest
from sqlalchemy import func, select

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import Conflict, Denied, ErrorCode, InvalidInput
from signgate.service import keys, requests, signing
from signgate.service.context import Caller
from signgate.service.sign_request import SignOutcome, SignRequest
from signgate.service.views import RequestView, SignResult
from signgate.store.models import ApprovalRequest, AuditEntry, SignatureRecord
from tests.integration.test_approvals import person
from tests.integration.test_service import Env, new_key

DIGEST = hashlib.sha256(b"release 2.0\n").hexdigest()
EVIL = hashlib.sha256(b"release 2.0 with a backdoor\n").hexdigest()


def setup(e: Env, builders: int = 2, approvals: int = 0) -> tuple[str, list[Caller]]:
    ref = new_key(e)
    keys.set_builder_policy(e.ctx, e.admin, ref, builders)
    if approvals:
        keys.set_approval_policy(e.ctx, e.admin, ref, approvals)
    return ref, [person(e, f"builder-{i}", ("signer", ref)) for i in range(3)]


def build(e: Env, caller: Caller, ref: str, digest: str = DIGEST,
          release: str | None = "v2.0", name: str = "app.tar.gz") -> SignOutcome:
    project, _, key = ref.partition("/")
    return signing.sign(e.ctx, SignRequest(caller, project, key, "sha256", digest, name,
                                           release=release))


def signatures(e: Env) -> int:
    with e.ctx.db.read() as s:
        return int(s.execute(select(func.count()).select_from(SignatureRecord)).scalar_one())


def test_policy_is_recorded_and_shown(env: Env) -> None:
    ref = new_key(env)
    view = keys.set_builder_policy(env.ctx, env.admin, ref, 2)
    assert view.require_builders == 2
    assert keys.show(env.ctx, env.admin, ref).require_builders == 2
    entry = env.entries()[-1]
    assert entry.action == "key.policy"
    assert json.loads(entry.details) == {"from": {"require_builders": 0},
                                         "to": {"require_builders": 2}}
    with pytest.raises(InvalidInput) as bad:
        keys.set_builder_policy(env.ctx, env.admin, ref, 17)
    assert bad.value.code is ErrorCode.BAD_BUILDER_POLICY
    signer = person(env, "someone", ("signer", ref))
    with pytest.raises(Denied):
        keys.set_builder_policy(env.ctx, signer, ref, 0)
    assert keys.set_builder_policy(env.ctx, env.admin, ref, 0).require_builders == 0


def test_release_label_is_required(env: Env) -> None:
    ref, (a, _, _) = setup(env)
    with pytest.raises(InvalidInput) as missing:
        build(env, a, ref, release=None)
    assert missing.value.code is ErrorCode.RELEASE_REQUIRED
    assert "--release" in str(missing.value)
    with pytest.raises(InvalidInput):
        build(env, a, ref, release="bad\nlabel")
    assert env.entries()[-1].outcome == "refused"
    assert signatures(env) == 0


def test_two_builders_agree_then_it_is_signed_once(env: Env) -> None:
    ref, (a, b, c) = setup(env)
    first = build(env, a, ref)
    assert isinstance(first, RequestView)
    assert first.state == "awaiting_builders"
    assert (first.release, first.builders_required) == ("v2.0", 2)
    assert [x.identity for x in first.builders] == ["builder-0"]
    # The same builder twice counts once.
    again = build(env, a, ref)
    assert isinstance(again, RequestView)
    assert again.request_id == first.request_id
    assert [x.identity for x in again.builders] == ["builder-0"]
    assert signatures(env) == 0
    # Another release label, or another artifact name, is another release.
    other = build(env, b, ref, release="v2.1")
    assert isinstance(other, RequestView)
    assert other.request_id != first.request_id
    # The second distinct builder agrees: signed now, as the first builder asked.
    done = build(env, b, ref)
    assert isinstance(done, SignResult), done
    assert done.receipt.identity == "builder-0"
    approval = done.receipt.approval
    assert approval is not None
    assert approval["request_id"] == first.request_id
    assert approval["release"] == "v2.0"
    assert [x["identity"] for x in approval["builders"]] == ["builder-0", "builder-1"]
    entries = {e.seq: e for e in env.entries()}
    assert [entries[x["audit_seq"]].action for x in approval["builders"]] == [
        "request.build", "request.build"]
    assert json.loads(entries[done.receipt.audit_seq].details)["approval"] == approval
    public = keys.public(env.ctx, env.admin, ref).public_key_pem
    assert verify_digest(load_public_key(public), None, DigestAlgorithm.SHA256,
                         bytes.fromhex(DIGEST), base64.b64decode(done.signature))
    shown = requests.show(env.ctx, a, first.request_id)
    assert shown.state == "signed"
    assert shown.result is not None
    assert shown.result.signature == done.signature
    # A third builder after the signing: answered with the signed request, no new signature.
    late = build(env, c, ref)
    assert isinstance(late, RequestView)
    assert late.state == "signed"
    assert signatures(env) == 1
    env.chain_ok()


def test_a_different_digest_stops_the_release(env: Env) -> None:
    ref, (a, b, c) = setup(env, builders=3)
    first = build(env, a, ref)
    assert isinstance(first, RequestView)
    build(env, b, ref)
    with pytest.raises(Conflict) as refused:
        build(env, c, ref, EVIL)
    assert refused.value.code is ErrorCode.BUILDER_MISMATCH
    assert DIGEST in str(refused.value)
    assert EVIL in str(refused.value)
    mismatch = [e for e in env.entries() if e.action == "request.mismatch"]
    assert len(mismatch) == 1
    details = json.loads(mismatch[0].details)
    assert mismatch[0].outcome == "refused"
    assert mismatch[0].actor == "builder-2"
    assert details["expected"]["digest"] == DIGEST
    assert [x["identity"] for x in details["expected"]["builders"]] == [
        "builder-0", "builder-1"]
    assert details["submitted"] == {"digest": EVIL, "builder": "builder-2"}
    assert details["stopped"] is True
    assert env.entries()[-1].action == "signature.create"  # the refusal, recorded too
    assert env.entries()[-1].outcome == "refused"
    shown = requests.show(env.ctx, a, first.request_id)
    assert shown.state == "mismatch"
    assert shown.reason is not None
    assert EVIL in shown.reason
    assert [r.state for r in requests.list_requests(env.ctx, env.admin)] == ["mismatch"]
    # Never signed afterwards, whoever agrees with either digest.
    with pytest.raises(Conflict) as stopped:
        build(env, c, ref)
    assert stopped.value.code is ErrorCode.RELEASE_STOPPED
    with pytest.raises(Conflict):
        build(env, a, ref)
    assert signatures(env) == 0
    env.chain_ok()


def test_builders_agree_then_humans_approve(env: Env) -> None:
    ref, (a, b, _) = setup(env, approvals=1)
    approver = person(env, "approver", ("approver", ref))
    first = build(env, a, ref)
    assert isinstance(first, RequestView)
    assert first.state == "awaiting_builders"
    # Nothing to approve while the builders have not agreed.
    with pytest.raises(Conflict) as early:
        requests.approve(env.ctx, approver, first.request_id)
    assert early.value.code is ErrorCode.REQUEST_CLOSED
    agreed = build(env, b, ref)
    assert isinstance(agreed, RequestView)
    assert agreed.state == "pending"
    assert [r.request_id for r in requests.list_requests(env.ctx, approver, pending=True)] \
        == [first.request_id]
    assert signatures(env) == 0
    done = requests.approve(env.ctx, approver, first.request_id)
    assert done.state == "signed"
    assert done.result is not None
    approval = done.result.receipt.approval
    assert approval is not None
    assert [x["identity"] for x in approval["builders"]] == ["builder-0", "builder-1"]
    assert [x["identity"] for x in approval["approvals"]] == ["approver"]
    assert signatures(env) == 1


def test_concurrent_nth_builders_make_one_signature(env: Env) -> None:
    ref, (a, b, c) = setup(env)
    build(env, a, ref)
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def submit(caller: Caller) -> None:
        barrier.wait()
        try:
            outcomes.append(build(env, caller, ref))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=submit, args=(x,)) for x in (b, c, b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 4
    assert sum(isinstance(o, SignResult) for o in outcomes) == 1
    assert all(isinstance(o, SignResult | RequestView) for o in outcomes), outcomes
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar() == 1
        assert s.execute(select(ApprovalRequest.state)).scalar_one() == "signed"
        signs = s.execute(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.action == "signature.create",
                                 AuditEntry.outcome == "allowed")).scalar()
        assert signs == 1


def test_keys_without_builders_ignore_the_label(env: Env) -> None:
    ref = new_key(env)
    a = person(env, "ci", ("signer", ref))
    assert isinstance(build(env, a, ref), SignResult)
