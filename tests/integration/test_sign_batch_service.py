"""Batch signing at the service level (``signing.sign_batch_async``): every item decided
and recorded on its own, all of them in one transaction even when the group is larger than
the committer's batch limit, refusals returned in place, malformed batches refused whole
before anything is queued."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import func, select

from signgate.audit.verify import verify_chain
from signgate.errors import AuthenticationFailed, InvalidInput
from signgate.service import grants, identities, signing
from signgate.service.bootstrap import ensure_all
from signgate.service.context import Caller
from signgate.service.pipeline.batch import MAX_BATCH
from signgate.service.views import SignResult
from signgate.store.models import AuditEntry, SignatureRecord
from tests.integration.test_service import Env, new_key
from tests.support.signing import sign_request


def digest(i: int) -> str:
    return hashlib.sha256(f"file {i}".encode()).hexdigest()


def ci_caller(env: Env, ref: str) -> Caller:
    token = identities.create(env.ctx, env.admin, "ci").token
    grants.add(env.ctx, env.admin, "ci", "signer", ref)
    return Caller(token, "10.0.0.7")


def test_a_group_larger_than_the_batch_limit_is_one_transaction(env: Env) -> None:
    ref = new_key(env)
    ensure_all(env.ctx)  # the log key: receipts carry the size of their commit's tree
    ci = ci_caller(env, ref)
    n = MAX_BATCH + 44
    requests = [sign_request(ci, ref, "sha256", digest(i), f"file-{i}.bin") for i in range(n)]
    requests[7] = sign_request(ci, ref, "sha256", "not hex", "file-7.bin")
    outcomes = asyncio.run(signing.sign_batch_async(env.ctx, requests))
    assert len(outcomes) == n
    assert isinstance(outcomes[7], InvalidInput)
    signed = [o for o in outcomes if isinstance(o, SignResult)]
    assert len(signed) == n - 1
    assert [o.receipt.artifact_name for o in signed[:8]] == [
        f"file-{i}.bin" for i in (0, 1, 2, 3, 4, 5, 6, 8)]
    # One transaction: every receipt is proved in the one checkpoint of its commit, and
    # the entries (the refusal among them, in its place) are consecutive.
    assert {o.receipt.log_size for o in signed} == {signed[-1].receipt.audit_seq}
    assert signed[0].log_proof is not None
    seqs = [o.receipt.audit_seq for o in signed]
    assert seqs[7] == seqs[6] + 2  # the refusal's entry between them
    assert seqs[-1] - seqs[0] == n - 1
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar_one() == \
            n - 1
        refused = s.execute(select(AuditEntry).where(AuditEntry.seq == seqs[6] + 1)).scalar_one()
        assert refused.outcome == "refused"
        assert refused.subject == "file-7.bin"
        assert verify_chain(s).ok


def test_malformed_batches_are_refused_before_anything_is_queued(env: Env) -> None:
    ref = new_key(env)
    other = new_key(env, name="other")
    ci = ci_caller(env, ref)
    one = sign_request(ci, ref, "sha256", digest(1), "a.bin")
    with env.ctx.db.read() as s:
        head = verify_chain(s).head_seq
    cases = [[], [one] * 1001, [one, sign_request(ci, other, "sha256", digest(2), "b.bin")]]
    for requests in cases:
        with pytest.raises(InvalidInput):
            asyncio.run(signing.sign_batch_async(env.ctx, requests))
    with env.ctx.db.read() as s:
        assert verify_chain(s).head_seq == head


def test_a_caller_that_fails_authentication_fails_the_whole_batch(env: Env) -> None:
    ref = new_key(env)
    nobody = Caller("not-a-token", "10.0.0.8")
    requests = [sign_request(nobody, ref, "sha256", digest(i), f"{i}.bin") for i in range(3)]
    with pytest.raises(AuthenticationFailed):
        asyncio.run(signing.sign_batch_async(env.ctx, requests))
