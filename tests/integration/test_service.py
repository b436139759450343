"""The service layer on real databases (SQLite and PostgreSQL), with an injected clock."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from signgate.audit.verify import verify_chain
from signgate.clock import FixedClock
from signgate.config import Settings
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import (
    AuthenticationFailed,
    Conflict,
    Denied,
    InvalidInput,
    KeyStoreError,
    NotFound,
)
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore, one_time_store
from signgate.service import audit, grants, identities, keys, projects, signing
from signgate.service.audit import AuditQuery
from signgate.service.bootstrap import bootstrap_admin
from signgate.service.context import Caller, Context
from signgate.service.factory import build_context
from signgate.service.views import SignResult
from signgate.store.db import Database
from signgate.store.models import AuditEntry, Base, KeyVersion, SignatureRecord
from signgate.store.vault import DatabaseBlobs
from tests.support.signing import sign_request

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class SwitchableStore:
    """The software vault, whose signing can be made to fail (a broken HSM, say)."""

    scheme = "soft"
    name = "switchable vault"

    def __init__(self, db: Database) -> None:
        self.inner = SoftwareKeyStore(os.urandom(32), DatabaseBlobs(db))
        self.fail_with: Exception | None = None

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        return self.inner.generate(algorithm)

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        if self.fail_with is not None:
            raise self.fail_with
        return self.inner.sign(ref, digest_algorithm, digest)

    def probe(self, ref: KeyRef) -> None:
        self.inner.probe(ref)

    def destroy(self, ref: KeyRef) -> None:
        self.inner.destroy(ref)


@dataclass
class Env:
    ctx: Context
    clock: FixedClock
    admin: Caller
    store: SwitchableStore

    def signer(self, name: str, scope: str) -> Caller:
        token = identities.create(self.ctx, self.admin, name).token
        grants.add(self.ctx, self.admin, name, "signer", scope)
        return Caller(token, "10.0.0.7")

    def sign(self, caller: Caller, ref: str, data: bytes, name: str = "app.bin") -> SignResult:
        digest = hashlib.sha256(data).hexdigest()
        return signing.sign(self.ctx, sign_request(caller, ref, "sha256", digest, name,
                                                   {"build": "1"}))

    def entries(self) -> list[AuditEntry]:
        with self.ctx.db.read() as s:
            return list(s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())

    def versions(self, ref: str) -> list[tuple[int, int]]:
        view = keys.show(self.ctx, self.admin, ref)
        return [(v.version, v.signatures) for v in view.versions]

    def chain_ok(self) -> None:
        with self.ctx.db.read() as s:
            report = verify_chain(s)
        assert report.ok, report.problem
        assert audit.verify(self.ctx, self.admin).ok

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, for 'nothing else changed' checks."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.ctx.db.read() as s:
            for table in Base.metadata.sorted_tables:
                rows = s.execute(select(table)).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out


def make_env(url: str, data_dir: Path) -> Env:
    clock = FixedClock(T0)
    ctx = build_context(Settings(data_dir=data_dir, database_url=url), clock,
                        lambda db: KeyStoreRegistry(SwitchableStore(db),
                                                    one_time=one_time_store(os.urandom(32))))
    store = ctx.keystores.default
    assert isinstance(store, SwitchableStore)
    assert ctx.db.upgrade() == "0015"
    return Env(ctx, clock, Caller(bootstrap_admin(ctx), "127.0.0.1"), store)


def new_key(e: Env, project: str = "app", name: str = "release", **policy: Any) -> str:
    if project not in {p.name for p in projects.list_projects(e.ctx, e.admin)}:
        projects.create(e.ctx, e.admin, project)
    ref = f"{project}/{name}"
    keys.create(e.ctx, e.admin, ref, **policy)
    return ref


# -- migrations ---------------------------------------------------------------------------


def test_upgrade_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert db.upgrade() == "0015"
        assert db.upgrade() == "0015"
        with db.read() as s:
            assert s.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == 0
            report = verify_chain(s)
        assert report.ok
        assert report.head_seq == 0
        assert report.head_hash == "0" * 64
    finally:
        db.dispose()
    again = Database(database_url)
    try:
        assert again.upgrade() == "0015"
    finally:
        again.dispose()


# -- time-driven rotation -----------------------------------------------------------------


def test_rotation_by_age_uses_the_injected_clock(env: Env) -> None:
    ref = new_key(env, rotate_every_days=30)
    ci = env.signer("ci", ref)
    assert env.sign(ci, ref, b"day 0").receipt.key_version == 1
    env.clock.advance(timedelta(days=29))
    assert env.sign(ci, ref, b"day 29").receipt.key_version == 1
    env.clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    assert env.sign(ci, ref, b"day 29 late").receipt.key_version == 1
    seq_before = env.entries()[-1].seq

    env.clock.advance(timedelta(seconds=1))  # exactly 30 days after version 1 was made
    day30 = T0 + timedelta(days=30)
    assert env.clock.now() == day30
    result = env.sign(ci, ref, b"day 30")
    assert result.receipt.key_version == 2
    assert result.receipt.signed_at == day30

    new = [e for e in env.entries() if e.seq > seq_before]
    assert [(e.action, e.outcome) for e in new] == [("key.rotate", "allowed"),
                                                   ("signature.create", "allowed")]
    rotate, sig = new
    assert rotate.actor == "ci"
    assert rotate.key_ref == ref
    assert '"reason":"version 1 is older than 30 days"' in rotate.details
    assert '"from_version":1' in rotate.details
    assert '"to_version":2' in rotate.details
    assert rotate.time == day30
    assert '"key_version":2' in sig.details
    assert result.receipt.audit_seq == sig.seq

    view = keys.show(env.ctx, env.admin, ref)
    assert view.current_version == 2
    v1, v2 = view.versions
    assert v1.retired_at == day30
    assert v1.signatures == 3
    assert not v1.current
    assert v2.created_at == day30
    assert v2.retired_at is None
    assert v2.signatures == 1
    assert v2.current
    # the signature was made with version 2's key, and version 1 no longer signs
    pem2 = keys.public(env.ctx, env.admin, ref, 2).public_key_pem
    assert verify_digest(load_public_key(pem2), None, DigestAlgorithm.SHA256,
                         hashlib.sha256(b"day 30").digest(), base64.b64decode(result.signature))
    env.chain_ok()


def test_rotation_by_count(env: Env) -> None:
    ref = new_key(env, max_signatures=3)
    ci = env.signer("ci", "app")
    got = [env.sign(ci, ref, f"build {i}".encode()).receipt.key_version for i in range(10)]
    assert got == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    assert env.versions(ref) == [(1, 3), (2, 3), (3, 3), (4, 1)]
    rotations = [e for e in env.entries() if e.action == "key.rotate"]
    assert len(rotations) == 3
    for n, e in enumerate(rotations, start=1):
        assert f'"reason":"version {n} reached its limit of 3 signatures"' in e.details
    with env.ctx.db.read() as s:
        rows = s.execute(select(KeyVersion.version, func.count(SignatureRecord.audit_seq))
                         .join(SignatureRecord, SignatureRecord.key_version_id == KeyVersion.id)
                         .group_by(KeyVersion.version).order_by(KeyVersion.version)).all()
    assert [tuple(r) for r in rows] == [(1, 3), (2, 3), (3, 3), (4, 1)]
    env.chain_ok()


# -- revocation ---------------------------------------------------------------------------


def test_revocation_splits_signatures_at_compromise_time(env: Env) -> None:
    ref = new_key(env, algorithm="ed25519")
    ci = env.signer("ci", ref)
    env.clock.advance(timedelta(hours=1))
    before = env.sign(ci, ref, b"good build")
    env.clock.advance(timedelta(hours=2))
    after = env.sign(ci, ref, b"stolen build")
    env.clock.advance(timedelta(hours=1))
    compromised = T0 + timedelta(hours=2)

    with pytest.raises(InvalidInput, match="future"):
        keys.revoke(env.ctx, env.admin, ref, env.clock.now() + timedelta(seconds=1), "x")
    view = keys.revoke(env.ctx, env.admin, ref, compromised, "laptop stolen")
    assert view.state == "revoked"
    assert view.compromised_at == compromised

    def check(data: bytes, result: SignResult) -> Any:
        return signing.verify(env.ctx, ci, ref, "sha256", hashlib.sha256(data).hexdigest(),
                              result.signature)

    ok = check(b"good build", before)
    assert ok.valid
    assert ok.signed_by == "ci"
    assert ok.signature_id == before.receipt.signature_id
    assert "before app/release was compromised" in ok.reason
    bad = check(b"stolen build", after)
    assert not bad.valid
    assert bad.key_version == 1
    assert bad.signed_at == T0 + timedelta(hours=3)
    assert "after app/release was compromised" in bad.reason
    # a signature for another file is not valid at all
    wrong = check(b"other file", before)
    assert not wrong.valid
    assert "does not match" in wrong.reason

    with pytest.raises(Denied, match="revoked"):
        env.sign(ci, ref, b"more")
    with pytest.raises(Conflict, match="already revoked"):
        keys.revoke(env.ctx, env.admin, ref, compromised, None)
    with pytest.raises(Conflict):
        keys.rotate(env.ctx, env.admin, ref)
    assert env.versions(ref) == [(1, 2)]
    env.chain_ok()


# -- refusals and atomicity ---------------------------------------------------------------


def test_refusal_is_recorded_and_nothing_else(env: Env) -> None:
    ref = new_key(env)
    token = identities.create(env.ctx, env.admin, "intruder").token
    before = env.snapshot()

    with pytest.raises(Denied) as info:
        env.sign(Caller(token, "10.9.9.9"), ref, b"x", name="evil.bin")
    assert "intruder" in str(info.value)
    assert "no signer grant" in str(info.value)

    after = env.snapshot()
    for table in before:
        if table not in ("audit_entries", "audit_head", "log_hashes", "log_checkpoints"):
            assert after[table] == before[table], table
    assert after["signatures"] == []
    assert env.versions(ref) == [(1, 0)]
    new = env.entries()[len(before["audit_entries"]):]
    assert len(new) == 1
    e = new[0]
    assert (e.actor, e.action, e.outcome, e.subject, e.project, e.key_ref) == \
        ("intruder", "signature.create", "refused", "evil.bin", "app", ref)
    assert '"code":"denied"' in e.details
    assert '"client":"10.9.9.9"' in e.details
    assert str(info.value) in e.details
    env.chain_ok()


def test_unknown_token_is_recorded_as_anonymous(env: Env) -> None:
    ref = new_key(env)
    n = len(env.entries())
    for token in (None, "sgt_not-a-real-token", "sgt_another"):
        with pytest.raises(AuthenticationFailed):
            env.sign(Caller(token, "10.1.1.1"), ref, b"x")
    # The window's first failure at once; the others counted, recorded when it ends.
    first = env.entries()[n:]
    assert [(e.actor, e.action, e.outcome, e.key_ref) for e in first] == \
        [("anonymous", "auth.authenticate", "refused", ref)]
    assert json.loads(first[0].details)["attempts"] == 1
    assert env.ctx.auth_failures.flush() == 0  # the window has not ended
    env.clock.advance(timedelta(seconds=env.ctx.settings.auth_failure_window_seconds))
    env.ctx.auth_failures.flush()  # (or its flusher thread did, within a second)
    new = env.entries()[n:]
    assert [(e.actor, e.action, e.outcome) for e in new] == \
        [("anonymous", "auth.authenticate", "refused")] * 2
    summary = json.loads(new[1].details)
    assert (summary["attempts"], summary["attempted"], summary["client"], summary["summary"]) \
        == (2, {"signature.create": 2}, "10.1.1.1", True)
    assert all("sgt_" not in e.details for e in new)
    assert env.ctx.auth_failures.flush() == 0  # counted once
    env.chain_ok()


def test_failed_use_case_leaves_no_partial_state(env: Env) -> None:
    ref = new_key(env, algorithm="ecdsa-p384")
    before = env.snapshot()
    with pytest.raises(Conflict, match="already exists"):
        keys.create(env.ctx, env.admin, ref, algorithm="ed25519")
    with pytest.raises(NotFound):
        keys.create(env.ctx, env.admin, "nope/release")
    with pytest.raises(Conflict):
        projects.create(env.ctx, env.admin, "app")
    after = env.snapshot()
    for table in before:
        if table not in ("audit_entries", "audit_head", "log_hashes", "log_checkpoints"):
            assert after[table] == before[table], table
    assert after["audit_entries"][: len(before["audit_entries"])] == before["audit_entries"]
    new = env.entries()[len(before["audit_entries"]):]
    assert [(e.action, e.outcome) for e in new] == [("key.create", "refused"),
                                                   ("key.create", "refused"),
                                                   ("project.create", "refused")]
    assert '"code":"conflict"' in new[0].details
    assert keys.show(env.ctx, env.admin, ref).algorithm == "ecdsa-p384"
    env.chain_ok()


def test_failure_after_rotation_rolls_the_rotation_back(env: Env) -> None:
    """Signing rotates first, then the key store fails: the rotation must not survive."""
    ref = new_key(env, max_signatures=1)
    ci = env.signer("ci", ref)
    env.sign(ci, ref, b"one")
    before = env.snapshot()

    env.store.fail_with = KeyStoreError("the HSM is on fire")
    with pytest.raises(KeyStoreError):
        env.sign(ci, ref, b"two")
    after = env.snapshot()
    for table in before:
        if table not in ("audit_entries", "audit_head", "log_hashes", "log_checkpoints"):
            assert after[table] == before[table], table
    new = env.entries()[len(before["audit_entries"]):]
    assert [(e.action, e.outcome) for e in new] == [("signature.create", "refused")]
    assert "the HSM is on fire" in new[0].details

    env.store.fail_with = RuntimeError("bug")
    with pytest.raises(KeyStoreError) as refused:  # that job refused, on the record
        env.sign(ci, ref, b"two")
    assert refused.value.code == "keystore_error"
    assert "the key store 'switchable vault' failed to sign with key soft:" in str(refused.value)
    assert "bug" not in str(refused.value)  # a foreign message stays in the server log
    later = env.snapshot()
    for table in after:
        if table not in ("audit_entries", "audit_head", "log_hashes", "log_checkpoints"):
            assert later[table] == after[table], table

    env.store.fail_with = None
    assert env.sign(ci, ref, b"two").receipt.key_version == 2
    assert env.versions(ref) == [(1, 1), (2, 1)]
    env.chain_ok()


def test_bad_input_is_refused_before_any_change(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    before = env.snapshot()
    with pytest.raises(InvalidInput):
        signing.sign(env.ctx, sign_request(ci, ref, "sha256", "ab" * 31, "a.bin"))
    with pytest.raises(InvalidInput):
        signing.sign(env.ctx, sign_request(ci, ref, "md5", "ab" * 16, "a.bin"))
    with pytest.raises(InvalidInput):
        signing.sign(env.ctx, sign_request(ci, ref, "sha256", "ab" * 32, "bad\nname"))
    with pytest.raises(InvalidInput):
        audit.query(env.ctx, env.admin, AuditQuery(action="no.such"))
    with pytest.raises(InvalidInput):
        audit.query(env.ctx, env.admin, AuditQuery(limit=0))
    after = env.snapshot()
    for table in before:
        if table not in ("audit_entries", "audit_head", "log_hashes", "log_checkpoints"):
            assert after[table] == before[table], table
    assert env.versions(ref) == [(1, 0)]
    env.chain_ok()


def test_audit_query_pages_and_filters(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    for i in range(5):
        env.clock.advance(timedelta(minutes=1))
        env.sign(ci, ref, bytes([i]))
    page = audit.query(env.ctx, env.admin, AuditQuery(action="signature.create", limit=2))
    assert len(page.entries) == 2
    assert page.next_after == page.entries[-1].seq
    rest = audit.query(env.ctx, env.admin, AuditQuery(action="signature.create",
                                                      after=page.next_after or 0))
    assert len(rest.entries) == 3
    assert rest.next_after is None
    window = audit.query(env.ctx, env.admin, AuditQuery(
        since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)))
    assert [e.time for e in window.entries] == [T0 + timedelta(minutes=2),
                                                T0 + timedelta(minutes=3)]
    env.chain_ok()


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_signing_keeps_limits_and_chain(env: Env) -> None:
    threads_n, per_thread, limit = 8, 25, 10
    ref = new_key(env, max_signatures=limit)
    callers = [env.signer(f"ci-{i}", ref) for i in range(threads_n)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work(i: int) -> None:
        try:
            start.wait()
            for j in range(per_thread):
                env.sign(callers[i], ref, f"{i}-{j}".encode(), name=f"t{i}-{j}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    total = threads_n * per_thread
    versions = env.versions(ref)
    assert sum(n for _, n in versions) == total
    assert all(n <= limit for _, n in versions), versions
    assert versions == [(v, limit) for v in range(1, total // limit + 1)]
    with env.ctx.db.read() as s:
        sigs = s.execute(select(SignatureRecord.audit_seq, KeyVersion.version)
                         .join(KeyVersion, SignatureRecord.key_version_id == KeyVersion.id)
                         ).all()
    assert len(sigs) == total
    assert len({seq for seq, _ in sigs}) == total
    per_version: dict[int, int] = {}
    for _, v in sigs:
        per_version[v] = per_version.get(v, 0) + 1
    assert per_version == dict.fromkeys(range(1, total // limit + 1), limit)

    entries = env.entries()
    seqs = [e.seq for e in entries]
    assert seqs == list(range(1, len(entries) + 1))
    by_seq = {e.seq: e for e in entries}
    assert all(by_seq[seq].action == "signature.create" for seq, _ in sigs)
    assert sum(e.action == "key.rotate" for e in entries) == total // limit - 1
    assert not [e for e in entries if e.outcome == "refused"]
    env.chain_ok()
