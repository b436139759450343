"""Release windows and quotas on the service layer, on SQLite and PostgreSQL, with an
injected clock: an offline key signs only inside an open window (until its time, its
signature count, its signers), a quota allows N signatures per identity per UTC day, and
every refusal is on the record; concurrent signings stop exactly at the limit."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from signgate.errors import Conflict, Denied, ErrorCode, InvalidInput, LimitExceeded, NotFound
from signgate.service import grants, identities, keys, requests, signing, windows
from signgate.service.context import Caller
from signgate.service.views import RequestView, SignResult
from signgate.store.models import AuditEntry, SignatureRecord
from tests.integration.test_service import T0, Env, new_key
from tests.support.signing import sign_request


def sign(e: Env, caller: Caller, ref: str, data: bytes) -> SignResult:
    out = e.sign(caller, ref, data)
    assert isinstance(out, SignResult), out
    return out


def refusals(e: Env, code: ErrorCode) -> list[AuditEntry]:
    return [x for x in e.entries() if x.outcome == "refused"
            and json.loads(x.details).get("code") == code.value]


def test_release_policy_is_recorded_and_shown(env: Env) -> None:
    ref = new_key(env)
    view = keys.set_release_policy(env.ctx, env.admin, ref, offline=True,
                                   max_per_identity_per_day=5)
    assert (view.offline, view.max_per_identity_per_day) == (True, 5)
    shown = keys.show(env.ctx, env.admin, ref)
    assert (shown.offline, shown.max_per_identity_per_day) == (True, 5)
    entry = env.entries()[-1]
    assert entry.action == "key.policy"
    assert json.loads(entry.details) == {
        "from": {"offline": False, "max_per_identity_per_day": 0, "window_approvals": 0},
        "to": {"offline": True, "max_per_identity_per_day": 5, "window_approvals": 0}}
    # One setting at a time leaves the other as it is.
    assert keys.set_release_policy(env.ctx, env.admin, ref, offline=False).\
        max_per_identity_per_day == 5
    with pytest.raises(InvalidInput):
        keys.set_release_policy(env.ctx, env.admin, ref, max_per_identity_per_day=-1)
    with pytest.raises(InvalidInput):
        keys.set_release_policy(env.ctx, env.admin, ref)
    ci = env.signer("ci", ref)
    with pytest.raises(Denied):  # a signer is no admin
        keys.set_release_policy(env.ctx, ci, ref, offline=False)
    assert refusals(env, ErrorCode.DENIED)[-1].action == "key.policy"


def test_offline_key_signs_only_inside_an_open_window(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    sign(env, ci, ref, b"online")  # online: signs as before
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True)
    with pytest.raises(Denied) as refused:
        env.sign(ci, ref, b"no window")
    assert refused.value.code is ErrorCode.NO_RELEASE_WINDOW
    msg = str(refused.value)
    assert "offline" in msg
    assert f"signgate release open {ref} --until" in msg
    entry = refusals(env, ErrorCode.NO_RELEASE_WINDOW)[-1]
    assert (entry.action, entry.actor, entry.key_ref) == ("signature.create", "ci", ref)

    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=2),
                            label="v1.0")
    assert (w.state, w.signatures, w.opened_by, w.label) == ("open", 0, "admin", "v1.0")
    opened = env.entries()[-1]
    assert opened.action == "release.open"
    assert json.loads(opened.details)["window"] == w.id
    result = sign(env, ci, ref, b"inside")
    entry = env.entries()[-1]
    assert entry.seq == result.receipt.audit_seq
    assert json.loads(entry.details)["release_window"]["id"] == w.id
    assert json.loads(entry.details)["release_window"]["label"] == "v1.0"

    # The window's time: signs one second before its end, refused at its end.
    env.clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    sign(env, ci, ref, b"last second")
    env.clock.advance(timedelta(seconds=1))
    with pytest.raises(Denied) as refused:
        env.sign(ci, ref, b"expired")
    assert refused.value.code is ErrorCode.NO_RELEASE_WINDOW
    assert f"{w.id} (v1.0) ended at" in str(refused.value)
    [listed] = windows.list_windows(env.ctx, env.admin, ref)
    assert (listed.state, listed.signatures) == ("expired", 2)
    env.chain_ok()


def test_the_last_signature_a_window_allows(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True)
    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(days=1),
                            max_signatures=3)
    for i in range(3):
        r = sign(env, ci, ref, b"build %d" % i)
        entry = next(x for x in env.entries() if x.seq == r.receipt.audit_seq)
        assert json.loads(entry.details)["release_window"]["signature"] == i + 1
    with pytest.raises(Denied) as refused:
        env.sign(ci, ref, b"one too many")
    assert refused.value.code is ErrorCode.NO_RELEASE_WINDOW
    assert "has made all its 3 signatures" in str(refused.value)
    [listed] = windows.list_windows(env.ctx, env.admin, ref)
    assert (listed.state, listed.signatures) == ("exhausted", 3)
    with pytest.raises(Conflict) as closing:  # nothing left to close
        windows.close_window(env.ctx, env.admin, w.id)
    assert closing.value.code is ErrorCode.WINDOW_CLOSED
    # A second window opens the key again.
    windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(days=1), max_signatures=1)
    sign(env, ci, ref, b"second window")


def test_window_signers_and_closing(env: Env) -> None:
    ref = new_key(env)
    alice, bob = env.signer("alice", ref), env.signer("bob", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True)
    with pytest.raises(InvalidInput):  # a typo in --signer is caught at once
        windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1),
                            signers=["alcie"])
    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1),
                            signers=["alice"])
    assert w.signers == ["alice"]
    sign(env, alice, ref, b"alice")
    with pytest.raises(Denied) as refused:
        env.sign(bob, ref, b"bob")
    assert refused.value.code is ErrorCode.NO_RELEASE_WINDOW
    assert "does not list bob as a signer" in str(refused.value)
    with pytest.raises(Denied):  # only admins of the key close it
        windows.close_window(env.ctx, alice, w.id)
    closed = windows.close_window(env.ctx, env.admin, w.id)
    assert (closed.state, closed.closed_by, closed.signatures) == ("closed", "admin", 1)
    assert env.entries()[-1].action == "release.close"
    with pytest.raises(Denied) as refused:
        env.sign(alice, ref, b"after close")
    assert "was closed at" in str(refused.value)
    with pytest.raises(Conflict):
        windows.close_window(env.ctx, env.admin, w.id)


def test_opening_windows_needs_an_admin_and_sane_input(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    with pytest.raises(Denied):
        windows.open_window(env.ctx, ci, ref, T0 + timedelta(hours=1))
    assert refusals(env, ErrorCode.DENIED)[-1].action == "release.open"
    for until, n in ((T0, None), (T0 - timedelta(hours=1), None),
                     (T0 + timedelta(days=400), None), (T0 + timedelta(hours=1), 0)):
        with pytest.raises(InvalidInput) as bad:
            windows.open_window(env.ctx, env.admin, ref, until, max_signatures=n)
        assert bad.value.code is ErrorCode.BAD_RELEASE_POLICY
    with pytest.raises(NotFound):
        windows.open_window(env.ctx, env.admin, "app/nope", T0 + timedelta(hours=1))
    with pytest.raises(NotFound):
        windows.close_window(env.ctx, env.admin, "no-such-window")
    # Someone without any grant on the key sees neither it nor its windows.
    token = identities.create(env.ctx, env.admin, "outsider").token
    grants.add(env.ctx, env.admin, "outsider", "signer", new_key(env, "other", "key"))
    outsider = Caller(token, "10.0.0.8")
    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1))
    assert windows.list_windows(env.ctx, outsider) == []
    with pytest.raises(NotFound):
        windows.close_window(env.ctx, outsider, w.id)
    assert [x.id for x in windows.list_windows(env.ctx, ci, ref)] == [w.id]


def test_quota_per_identity_per_utc_day(env: Env) -> None:
    ref = new_key(env)
    alice, bob = env.signer("alice", ref), env.signer("bob", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, max_per_identity_per_day=2)
    env.clock.advance(timedelta(hours=23))  # 23:00 UTC
    sign(env, alice, ref, b"1")
    sign(env, alice, ref, b"2")  # the last one the quota allows today
    with pytest.raises(LimitExceeded) as refused:
        env.sign(alice, ref, b"3")
    assert refused.value.code is ErrorCode.QUOTA_EXCEEDED
    assert "resets at 2026-01-02T00:00:00+00:00" in str(refused.value)
    assert refused.value.details["retry_after"] == 3600  # the HTTP answer's Retry-After
    assert refusals(env, ErrorCode.QUOTA_EXCEEDED)[-1].actor == "alice"
    sign(env, bob, ref, b"bob's own quota")
    # One second before midnight UTC: still today; at midnight: a new day.
    env.clock.advance(timedelta(minutes=59, seconds=59))
    with pytest.raises(LimitExceeded):
        env.sign(alice, ref, b"23:59:59")
    env.clock.advance(timedelta(seconds=1))
    sign(env, alice, ref, b"new day 1")
    sign(env, alice, ref, b"new day 2")
    with pytest.raises(LimitExceeded):
        env.sign(alice, ref, b"new day 3")
    # The quota counts every version of the key: rotation does not reset it.
    keys.rotate(env.ctx, env.admin, ref)
    with pytest.raises(LimitExceeded):
        env.sign(alice, ref, b"after rotation")
    keys.set_release_policy(env.ctx, env.admin, ref, max_per_identity_per_day=0)
    sign(env, alice, ref, b"quota off")
    assert len(refusals(env, ErrorCode.QUOTA_EXCEEDED)) == 4
    env.chain_ok()


def test_concurrent_signings_stop_exactly_at_the_quota_and_the_window(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, max_per_identity_per_day=5)
    other = new_key(env, name="offline")
    grants.add(env.ctx, env.admin, "ci", "signer", other)
    keys.set_release_policy(env.ctx, env.admin, other, offline=True)
    windows.open_window(env.ctx, env.admin, other, T0 + timedelta(hours=1),
                        max_signatures=7)
    outcomes: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def one(key: str, i: int) -> None:
        start.wait()
        digest = hashlib.sha256(b"%s %d" % (key.encode(), i)).hexdigest()
        try:
            out: object = signing.sign(env.ctx, sign_request(ci, key, "sha256", digest,
                                                             f"a{i}.bin"))
        except Exception as exc:
            out = exc
        with lock:
            outcomes.append((key, out))

    threads = [threading.Thread(target=one, args=(k, i)) for k in (ref, other)
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    signed = {k: sum(isinstance(o, SignResult) for kk, o in outcomes if kk == k)
              for k in (ref, other)}
    assert signed == {ref: 5, other: 7}
    quota = [o for k, o in outcomes if k == ref and not isinstance(o, SignResult)]
    assert all(isinstance(o, LimitExceeded) and o.code is ErrorCode.QUOTA_EXCEEDED
               for o in quota), quota
    window = [o for k, o in outcomes if k == other and not isinstance(o, SignResult)]
    assert all(isinstance(o, Denied) and o.code is ErrorCode.NO_RELEASE_WINDOW
               for o in window), window
    assert len(refusals(env, ErrorCode.QUOTA_EXCEEDED)) == 15
    assert len(refusals(env, ErrorCode.NO_RELEASE_WINDOW)) == 13
    with env.ctx.db.read() as s:
        assert s.execute(select(func.count()).select_from(SignatureRecord)).scalar_one() == 12
    [w] = windows.list_windows(env.ctx, env.admin, other)
    assert (w.signatures, w.state) == (7, "exhausted")


def test_a_held_request_is_checked_and_counted_when_signed(env: Env) -> None:
    """Windows combine with approvals: asking outside a window is refused at once; the
    signature the last approval makes counts against the window open then."""
    ref = new_key(env)
    ci = env.signer("ci", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True)
    keys.set_approval_policy(env.ctx, env.admin, ref, 1)
    token = identities.create(env.ctx, env.admin, "boss").token
    grants.add(env.ctx, env.admin, "boss", "approver", ref)
    boss = Caller(token, "10.0.0.5")
    digest = hashlib.sha256(b"held").hexdigest()
    with pytest.raises(Denied):
        signing.sign(env.ctx, sign_request(ci, ref, "sha256", digest, "held.bin"))
    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1),
                            max_signatures=1)
    held = signing.sign(env.ctx, sign_request(ci, ref, "sha256", digest, "held.bin"))
    assert isinstance(held, RequestView)
    done = requests.approve(env.ctx, boss, held.request_id)
    assert done.state == "signed"
    [listed] = windows.list_windows(env.ctx, env.admin, ref)
    assert (listed.id, listed.signatures) == (w.id, 1)


def test_the_pre_flight_tells_before_an_upload(env: Env) -> None:
    """``sign-policy`` (asked before hashing or uploading) refuses an offline key outside
    a window as the signing would, recorded; inside one it says go."""
    ref = new_key(env)
    ci = env.signer("ci", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True)
    with pytest.raises(Denied) as refused:
        signing.sign_policy(env.ctx, ci, ref, "big.iso")
    assert refused.value.code is ErrorCode.NO_RELEASE_WINDOW
    assert refusals(env, ErrorCode.NO_RELEASE_WINDOW)[-1].subject == "big.iso"
    windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1))
    assert signing.sign_policy(env.ctx, ci, ref, "big.iso").key == ref


def test_a_window_that_needs_approvals_opens_with_the_last_one(env: Env) -> None:
    ref = new_key(env)
    ci = env.signer("ci", ref)
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True, window_approvals=2)
    assert keys.show(env.ctx, env.admin, ref).window_approvals == 2
    grants.add(env.ctx, env.admin, "admin", "approver", ref)  # the opener, approver too
    approvers = []
    for name in ("alice", "bob"):
        token = identities.create(env.ctx, env.admin, name).token
        grants.add(env.ctx, env.admin, name, "approver", ref)
        approvers.append(Caller(token, "10.0.0.6"))
    alice, bob = approvers
    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1))
    assert (w.state, w.required_approvals, w.approvals) == ("pending", 2, [])
    with pytest.raises(Denied) as refused:
        env.sign(ci, ref, b"too early")
    assert refused.value.code is ErrorCode.NO_RELEASE_WINDOW
    assert "awaits 2 more approval(s) of 2" in str(refused.value)
    assert f"signgate release approve {w.id}" in str(refused.value)
    with pytest.raises(Denied) as own:  # never the opener
        windows.approve_window(env.ctx, env.admin, w.id)
    assert own.value.code is ErrorCode.SELF_APPROVAL
    with pytest.raises(Denied):  # a signer is no approver
        windows.approve_window(env.ctx, ci, w.id)
    one = windows.approve_window(env.ctx, alice, w.id, "tag v1 checked")
    assert (one.state, [a["identity"] for a in one.approvals]) == ("pending", ["alice"])
    with pytest.raises(Conflict) as twice:
        windows.approve_window(env.ctx, alice, w.id)
    assert twice.value.code is ErrorCode.ALREADY_APPROVED
    with pytest.raises(Denied):
        env.sign(ci, ref, b"still too early")
    two = windows.approve_window(env.ctx, bob, w.id)  # the M-th: open now
    assert two.state == "open"
    entry = env.entries()[-1]
    assert (entry.action, entry.actor) == ("release.approve", "bob")
    assert two.approvals[-1]["audit_seq"] == entry.seq
    sign(env, ci, ref, b"approved window")
    with pytest.raises(Conflict) as late:  # open already: nothing to approve
        windows.approve_window(env.ctx, alice, w.id)
    assert late.value.code is ErrorCode.WINDOW_CLOSED
    # A pending window expires like any other, and can be closed.
    pending = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=2))
    assert windows.close_window(env.ctx, env.admin, pending.id).state == "closed"


def test_approvals_arriving_at_once_open_the_window_once(env: Env) -> None:
    """Three approvers at once for a window that needs two: two approvals count, the
    third finds it open (409 window_closed); the same approver twice at once counts once."""
    ref = new_key(env)
    keys.set_release_policy(env.ctx, env.admin, ref, offline=True, window_approvals=2)
    callers = []
    for name in ("alice", "bob", "carol"):
        token = identities.create(env.ctx, env.admin, name).token
        grants.add(env.ctx, env.admin, name, "approver", ref)
        callers.append(Caller(token, "10.0.0.6"))
    w = windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(hours=1))
    results: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def one(caller: Caller) -> None:
        start.wait()
        try:
            out: object = windows.approve_window(env.ctx, caller, w.id)
        except Exception as exc:
            out = exc
        with lock:
            results.append(out)

    threads = [threading.Thread(target=one, args=(c,))
               for c in (*callers, callers[0])]  # alice twice
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(refused) == 2, results
    assert {r.code for r in refused} <= {ErrorCode.WINDOW_CLOSED, ErrorCode.ALREADY_APPROVED}
    [listed] = windows.list_windows(env.ctx, env.admin, ref)
    assert listed.state == "open"
    assert len(listed.approvals) == 2
    assert len({a["identity"] for a in listed.approvals}) == 2
    assert sum(e.action == "release.approve" and e.outcome == "allowed"
               for e in env.entries()) == 2
