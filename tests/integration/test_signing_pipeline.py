"""The signing pipeline's group commit (service/pipeline/batch.py): each request decided
on its own, all committed together, none returned before the commit, nothing recorded when
the commit fails, caches never stale."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from signgate.audit.verify import verify_chain
from signgate.clock import FixedClock
from signgate.config import Settings
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import (
    AuthenticationFailed,
    Denied,
    InvalidInput,
    KeyStoreError,
    SigngateError,
)
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore, one_time_store
from signgate.service import grants, identities, keys, projects, signing
from signgate.service.bootstrap import bootstrap_admin
from signgate.service.context import Caller, Context
from signgate.service.factory import build_context
from signgate.service.pipeline.batch import Pipeline
from signgate.service.sign_request import SignRequest
from signgate.service.views import SignResult
from signgate.store.db import Database
from signgate.store.models import AuditEntry, SignatureRecord
from signgate.store.vault import DatabaseBlobs
from tests.support.signing import sign_request

DIGEST = hashlib.sha256(b"artifact").hexdigest()


class FlakyKeyStore:
    """A real software vault that fails (like a broken HSM session) when told to."""

    scheme = "soft"
    name = "flaky vault"

    def __init__(self, db: Database) -> None:
        self.inner = SoftwareKeyStore(os.urandom(32), DatabaseBlobs(db))
        self.fail_on_sign = False

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        return self.inner.generate(algorithm)

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        if self.fail_on_sign:
            raise RuntimeError("token removed")
        return self.inner.sign(ref, digest_algorithm, digest)

    def probe(self, ref: KeyRef) -> None:
        self.inner.probe(ref)

    def destroy(self, ref: KeyRef) -> None:
        self.inner.destroy(ref)


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Context, FlakyKeyStore, str, str]]:
    """A context with project p, key p/k, and identity ci (signer on p/k)."""
    ctx = build_context(Settings(tmp_path, database_url),
                        FixedClock(datetime(2026, 3, 1, tzinfo=UTC)),
                        lambda db: KeyStoreRegistry(FlakyKeyStore(db),
                                                    one_time=one_time_store(os.urandom(32))))
    store = ctx.keystores.default
    assert isinstance(store, FlakyKeyStore)
    ctx.db.upgrade()
    admin = bootstrap_admin(ctx)
    a = Caller(admin)
    projects.create(ctx, a, "p")
    keys.create(ctx, a, "p/k")
    keys.create(ctx, a, "p/other")
    ci = identities.create(ctx, a, "ci").token
    grants.add(ctx, a, "ci", "signer", "p/k")
    yield ctx, store, admin, ci
    ctx.close()


def _job(token: str, key: str = "k", digest: str = DIGEST) -> SignRequest:
    return SignRequest(Caller(token), "p", key, "sha256", digest, "a.bin")


def _sign(ctx: Context, caller: Caller) -> SignResult:
    return signing.sign(ctx, sign_request(caller, "p/k", "sha256", DIGEST, "a.bin"))


def _counts(ctx: Context) -> tuple[int, int]:
    with ctx.db.read() as s:
        entries = s.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
        sigs = s.execute(select(func.count()).select_from(SignatureRecord)).scalar_one()
    return entries, sigs


def test_each_request_in_a_batch_is_decided_on_its_own(world: tuple[Context, FlakyKeyStore,
                                                                     str, str]) -> None:
    ctx, _, _, ci = world
    batcher = Pipeline(ctx)
    jobs = [_job(ci), _job("sgt_unknown"), _job(ci, key="other"), _job(ci, digest="ab"),
            _job(ci, key="missing"), _job(ci)]
    entries_before, _ = _counts(ctx)
    outcomes = batcher.process(jobs)
    assert isinstance(outcomes[0], SignResult)
    assert isinstance(outcomes[1], AuthenticationFailed)
    assert isinstance(outcomes[2], Denied)
    assert "may not sign with p/other" in str(outcomes[2])
    assert isinstance(outcomes[3], InvalidInput)
    assert isinstance(outcomes[4], Denied)  # no grant: existence is not revealed
    assert "may not sign with p/missing: no signer grant" in str(outcomes[4])
    assert isinstance(outcomes[5], SignResult)
    assert isinstance(outcomes[0], SignResult)
    assert isinstance(outcomes[5], SignResult)
    assert outcomes[5].receipt.audit_seq == outcomes[0].receipt.audit_seq + 5
    entries_after, sigs = _counts(ctx)
    assert entries_after - entries_before == 6  # one entry per decision, in order
    assert sigs == 2
    with ctx.db.read() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.seq > entries_before)
                         .order_by(AuditEntry.seq)).scalars().all()
        assert [r.outcome for r in rows] == ["allowed", "refused", "refused", "refused",
                                             "refused", "allowed"]
        assert rows[1].actor == "anonymous"
        assert rows[1].action == "auth.authenticate"
        assert rows[2].actor == "ci"
        assert rows[2].action == "signature.create"
        assert verify_chain(s).ok


def test_a_failing_job_is_refused_alone(
    world: tuple[Context, FlakyKeyStore, str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error in one job (a key store that lost its session, a format builder
    meeting input it did not expect) refuses that job, on the record; others go on. The
    key store's own exception reaches nobody: the registry turns it into a KeyStoreError."""
    ctx, store, _, ci = world
    batcher = Pipeline(ctx)
    entries_before, sigs_before = _counts(ctx)
    store.fail_on_sign = True
    outcomes = batcher.process([_job(ci), _job(ci)])
    assert all(isinstance(o, KeyStoreError) and o.code == "keystore_error" for o in outcomes)
    assert all("token removed" not in str(o) for o in outcomes)
    assert _counts(ctx) == (entries_before + 2, sigs_before)
    store.fail_on_sign = False

    from signgate.formats import cms

    def broken(*_: object) -> bytes:
        raise ValueError("unexpected")

    monkeypatch.setattr(cms.CmsBuilder, "assemble", broken)
    cms_job = replace(_job(ci), format="cms", timestamp=False)
    mixed = batcher.process([cms_job, _job(ci)])
    assert isinstance(mixed[0], SigngateError)
    assert mixed[0].code == "internal_error"
    assert isinstance(mixed[1], SignResult)
    with ctx.db.read() as s:
        last = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(2)
                         ).scalars().all()
        assert [e.outcome for e in reversed(last)] == ["refused", "allowed"]
        assert verify_chain(s).ok


def test_a_failed_commit_records_nothing_and_returns_nothing(
    world: tuple[Context, FlakyKeyStore, str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, _, _, ci = world
    batcher = Pipeline(ctx)
    before = _counts(ctx)

    def lost(self: object) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr("signgate.service.pipeline.work.Work.flush", lost)
    outcomes = batcher.process([_job(ci), _job(ci)])
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert _counts(ctx) == before
    monkeypatch.undo()
    result = _sign(ctx, Caller(ci))
    assert result.receipt.key_version == 1
    with ctx.db.read() as s:
        assert verify_chain(s).ok


def test_cached_identity_and_grants_follow_changes(
    world: tuple[Context, FlakyKeyStore, str, str],
) -> None:
    ctx, _, admin, ci = world
    caller = Caller(ci)
    _sign(ctx, caller)  # fills the cache
    identities.set_enabled(ctx, Caller(admin), "ci", False)
    with pytest.raises(AuthenticationFailed) as disabled:  # like an unknown token
        _sign(ctx, caller)
    assert str(disabled.value) == str(AuthenticationFailed())
    assert disabled.value.identity == "ci"  # for the record only
    identities.set_enabled(ctx, Caller(admin), "ci", True)
    _sign(ctx, caller)
    grants.remove(ctx, Caller(admin), "ci", "signer", "p/k")
    with pytest.raises(Denied, match="no signer grant"):
        _sign(ctx, caller)
    grants.add(ctx, Caller(admin), "ci", "signer", "p/k")
    keys.disable(ctx, Caller(admin), "p/k")
    with pytest.raises(Denied, match="p/k is disabled"):
        _sign(ctx, caller)
    keys.enable(ctx, Caller(admin), "p/k")
    keys.rotate(ctx, Caller(admin), "p/k")
    assert _sign(ctx, caller).receipt.key_version == 2
    new_token = identities.rotate_token(ctx, Caller(admin), "ci").token
    with pytest.raises(AuthenticationFailed):
        _sign(ctx, caller)
    _sign(ctx, Caller(new_token))


def test_async_waiters_get_their_own_results(
    world: tuple[Context, FlakyKeyStore, str, str],
) -> None:
    ctx, _, _, ci = world

    async def many() -> list[SignResult | BaseException]:
        tasks = [signing.sign_async(ctx, sign_request(
                     Caller(ci if i % 3 else "sgt_bad"), "p/k", "sha256",
                     hashlib.sha256(str(i).encode()).hexdigest(), f"{i}.bin"))
                 for i in range(30)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(many())
    for i, r in enumerate(results):
        if i % 3:
            assert isinstance(r, SignResult)
            assert r.receipt.artifact_name == f"{i}.bin"
            assert r.receipt.digest == hashlib.sha256(str(i).encode()).hexdigest()
        else:
            assert isinstance(r, AuthenticationFailed)
    seqs = [r.receipt.audit_seq for r in results if isinstance(r, SignResult)]
    assert len(set(seqs)) == len(seqs)


def test_every_signature_of_a_batch_carries_its_proof_in_the_commits_checkpoint(
        world: tuple[Context, FlakyKeyStore, str, str]) -> None:
    """One checkpoint (the one signed at the commit) serves the whole batch: each proof is
    in the tree of the batch's final size, refusals after it included, and verifies."""
    from signgate.service import log as log_reads
    from signgate.service.bootstrap import ensure_all
    from signgate.transparency.merkle import leaf_hash
    from signgate.transparency.note import parse_verifier_key
    from signgate.transparency.proof import parse_proof, verify_proof

    ctx, _, _, ci = world
    ensure_all(ctx)  # what 'init' does: the log key among the rest
    vkey = parse_verifier_key(log_reads.public_key(ctx).verifier_key)
    outcomes = Pipeline(ctx).process([_job(ci), _job(ci), _job("sgt_unknown"), _job(ci),
                                      _job(ci, key="other")])
    signed = [o for o in outcomes if isinstance(o, SignResult)]
    assert len(signed) == 3
    size = signed[-1].receipt.audit_seq + 1  # the refusal after the last signature
    assert log_reads.checkpoint(ctx).split(b"\n")[1] == str(size).encode()
    for result in signed:
        assert result.log_proof is not None
        assert result.receipt.log_size == size
        assert result.receipt.log_index == result.receipt.audit_seq - 1
        proof = parse_proof(result.log_proof.encode())
        assert proof.extra is not None
        assert f'"seq":{result.receipt.audit_seq}'.encode() in proof.extra
        verified = verify_proof(proof, leaf_hash(proof.extra), [vkey], vkey.name)
        assert verified.checkpoint.size == size
        with pytest.raises(SigngateError):  # another entry's leaf is not at this index
            verify_proof(proof, leaf_hash(proof.extra + b" "), [vkey], vkey.name)
