"""Signings decided and made before the chain's lock (service/pipeline/early.py) are
recorded only if nothing they read changed before the lock was taken; otherwise they are
decided again under it, and a revocation, a disabled identity or a removed grant that
committed in between refuses them.

Each test drives the two halves of a batch by hand (``Pipeline.early`` then
``Pipeline.commit``) and makes the change in between through the service, as another node
would.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from sqlalchemy import select

from signgate.errors import AuthenticationFailed, Denied
from signgate.service import grants, identities, keys
from signgate.service.bootstrap import ensure_all
from signgate.service.context import Caller
from signgate.service.pipeline.batch import Pipeline
from signgate.service.views import SignResult
from signgate.store.models import SignatureRecord
from tests.integration.test_service import Env, new_key
from tests.support.signing import sign_request

DIGEST = hashlib.sha256(b"artifact").hexdigest()


def _request(caller: Caller, ref: str = "app/release", timestamp: bool = False) -> object:
    return sign_request(caller, ref, "sha256", DIGEST, "app.bin", {"build": "1"},
                        timestamp=timestamp)


def _pipeline(env: Env) -> Pipeline:
    pipeline = env.ctx.signing
    assert isinstance(pipeline, Pipeline)
    return pipeline


def _signatures(env: Env) -> int:
    with env.ctx.db.read() as s:
        return len(s.execute(select(SignatureRecord.audit_seq)).all())


@pytest.mark.parametrize("timestamp", [False, True])
def test_a_plain_signing_is_made_early_and_recorded_as_made(env: Env, timestamp: bool) -> None:
    new_key(env)
    if timestamp:
        ensure_all(env.ctx)  # the CAs and signgate's own TSA, as 'signgate init' makes them
    ci = env.signer("ci", "app")
    request = _request(ci, timestamp=timestamp)
    pipeline = _pipeline(env)
    early = pipeline.early([request])  # type: ignore[list-item]
    assert set(early.signed) == {0}
    [outcome] = pipeline.commit([request], early)  # type: ignore[list-item]
    assert isinstance(outcome, SignResult)
    made = early.signed[0].produced
    assert base64.b64decode(outcome.signature) == made.signature  # the early signature
    assert (outcome.timestamp is not None) is timestamp
    env.chain_ok()


def test_other_signings_in_between_leave_the_early_decision_standing(env: Env) -> None:
    new_key(env)
    ci = env.signer("ci", "app")
    pipeline = _pipeline(env)
    request = _request(ci)
    early = pipeline.early([request])  # type: ignore[list-item]
    env.sign(ci, "app/release", b"another node's signing")  # an entry in between
    [outcome] = pipeline.commit([request], early)  # type: ignore[list-item]
    assert isinstance(outcome, SignResult)
    assert base64.b64decode(outcome.signature) == early.signed[0].produced.signature
    assert outcome.receipt.audit_seq == early.seen + 2
    env.chain_ok()


@pytest.mark.parametrize("change", ["revoke", "disable-key", "disable-identity",
                                    "remove-grant"])
def test_a_change_in_between_is_decided_again_under_the_lock(env: Env, change: str) -> None:
    ref = new_key(env)
    ci = env.signer("ci", "app")
    pipeline = _pipeline(env)
    request = _request(ci)
    early = pipeline.early([request])  # type: ignore[list-item]
    assert set(early.signed) == {0}
    if change == "revoke":
        keys.revoke(env.ctx, env.admin, ref, env.clock.now(), "leaked")
    elif change == "disable-key":
        keys.disable(env.ctx, env.admin, ref)
    elif change == "disable-identity":
        identities.set_enabled(env.ctx, env.admin, "ci", False)
    else:
        grants.remove(env.ctx, env.admin, "ci", "signer", "app")
    before = _signatures(env)
    [outcome] = pipeline.commit([request], early)  # type: ignore[list-item]
    assert isinstance(outcome, Denied | AuthenticationFailed), outcome
    assert _signatures(env) == before  # the early signature was dropped, never recorded
    last = env.entries()[-1]
    refused = "auth.authenticate" if change == "disable-identity" else "signature.create"
    assert (last.action, last.outcome) == (refused, "refused")
    env.chain_ok()


@pytest.mark.parametrize("policy", [{"max_signatures": 5}, {"one_time": True}])
def test_keys_that_count_or_write_are_signed_under_the_lock(env: Env,
                                                            policy: dict[str, object]) -> None:
    ensure_all(env.ctx)  # a one-time key's certificate needs the CAs and the TSA
    new_key(env, **policy)
    ci = env.signer("ci", "app")
    pipeline = _pipeline(env)
    request = _request(ci)
    early = pipeline.early([request])  # type: ignore[list-item]
    assert early.signed == {}
    [outcome] = pipeline.commit([request], early)  # type: ignore[list-item]
    assert isinstance(outcome, SignResult)


def test_refusals_are_decided_and_recorded_under_the_lock(env: Env) -> None:
    new_key(env)
    env.signer("ci", "app")
    stranger = Caller(identities.create(env.ctx, env.admin, "stranger").token, "10.0.0.9")
    pipeline = _pipeline(env)
    requests = [_request(stranger), _request(Caller("sgt_unknown", "10.0.0.9"))]
    early = pipeline.early(requests)  # type: ignore[arg-type]
    assert early.signed == {}
    outcomes = pipeline.commit(requests, early)  # type: ignore[arg-type]
    assert isinstance(outcomes[0], Denied)
    assert isinstance(outcomes[1], AuthenticationFailed)
