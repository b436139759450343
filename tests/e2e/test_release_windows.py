"""Release windows and quotas end to end: a real server (SQLite; the service tests cover
PostgreSQL), the real CLI, concurrent signings over HTTP, and the signature made in a
window checked by 'openssl dgst -verify'."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import unique
from tests.support import postgres

# SQLite alone: the same decisions run on both backends in
# tests/integration/test_release_windows.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server, openssl, start_server


def key_path(ref: str) -> str:
    project, name = ref.split("/")
    return f"/api/v1/projects/{project}/keys/{name}"


def offline_key(server: Server) -> tuple[str, str, str]:
    """An offline key, a CI identity that may sign with it: (ref, ci name, ci token)."""
    project = unique("rel")
    ref = f"{project}/release"
    server.cli("project", "create", project)
    server.cli("key", "create", ref)
    out = server.cli("key", "policy", ref, "--offline")
    assert "offline: signs only inside an open release window" in out.stdout
    ci = unique("ci")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", ref)
    return ref, ci, token


def test_window_open_sign_exhausted_refused_with_the_next_step(
        server: Server, tmp_path: Path) -> None:
    ref, ci, token = offline_key(server)
    assert "release    offline" in server.cli("key", "show", ref).stdout
    artifact = tmp_path / "app-2.0.tar.gz"
    artifact.write_bytes(b"release 2.0\n" * 100)

    # No window: refused, and told what to do next.
    before = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert before.returncode == 4, before.stderr
    assert f"ask an admin of {ref}: signgate release open {ref} --until" in before.stderr
    assert not (tmp_path / "app-2.0.tar.gz.sig").exists()
    # A signer may not open one itself.
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    own = server.cli("release", "open", ref, "--until", until, token=token, check=False)
    assert own.returncode == 4, own.stderr

    opened = server.cli("release", "open", ref, "--until", until, "--max-signatures", "1",
                        "--signer", ci, "--label", "v2.0", "--json").json()
    assert (opened["state"], opened["signers"], opened["label"]) == ("open", [ci], "v2.0")
    signed = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert signed.returncode == 0, signed.stderr
    pem = tmp_path / "key.pem"
    pem.write_text(server.cli("key", "public", ref).stdout)
    check = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(pem), "-signature",
                            str(tmp_path / "app-2.0.tar.gz.sig"), str(artifact)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "Verified OK" in check.stdout

    # The window allowed one signature: the next is refused, with the next step.
    again = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert again.returncode == 4, again.stderr
    assert "has made all its 1 signatures" in again.stderr
    assert f"signgate release open {ref} --until" in again.stderr
    with server.http(token) as http:
        answer = http.post(key_path(ref) + "/sign", json={
            "digest": hashlib.sha256(b"x").hexdigest(), "artifact_name": "x"})
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "no_release_window"

    listed = server.cli("release", "list", ref, "--json").json()
    assert [(w["id"], w["state"], w["signatures"]) for w in listed] == [
        (opened["id"], "exhausted", 1)]
    assert "exhausted" in server.cli("release", "list", ref).stdout
    # On the record: the opening, the signature naming its window, and the refusals.
    entries = server.cli("audit", "log", "--key", ref, "--json").json()
    [made] = [e for e in entries if e["action"] == "signature.create"
              and e["outcome"] == "allowed"]
    assert made["details"]["release_window"]["id"] == opened["id"]
    assert made["details"]["release_window"]["label"] == "v2.0"
    refused = [e for e in entries if e["outcome"] == "refused"
               and e["details"].get("code") == "no_release_window"]
    assert len(refused) == 3
    assert any(e["action"] == "release.open" for e in entries)

    # Closing: a second window, closed by the admin, refuses again.
    second = server.cli("release", "open", ref, "--until", until, "--json").json()
    closed = server.cli("release", "close", second["id"])
    assert f"closed release window {second['id']}" in closed.stdout
    after = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert after.returncode == 4
    assert "was closed at" in after.stderr
    twice = server.cli("release", "close", second["id"], check=False)
    assert twice.returncode != 0
    assert "already closed" in twice.stderr


def test_concurrent_signings_at_a_quota_stop_exactly_at_the_quota(server: Server) -> None:
    ref = quota_race(server)
    # Another identity has a quota of its own.
    other = unique("ci")
    other_token = server.new_identity(other)
    server.cli("grant", "add", other, "signer", ref)
    with server.http(other_token) as http:
        r = http.post(key_path(ref) + "/sign", json={
            "digest": hashlib.sha256(b"other").hexdigest(), "artifact_name": "o.bin"})
    assert r.status_code == 200, r.text


def test_two_workers_stop_exactly_at_the_quota_and_the_window(backend: str,
                                                              tmp_path: Path) -> None:
    """Two server processes (as two nodes would) count in their transactions, which the
    audit head lock orders: still exactly the quota, exactly the window's signatures."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres.temporary_database()) \
            if backend == "postgres" else None
        srv = start_server(tmp_path / "data", url, workers=2)
        stack.callback(srv.stop)
        quota_race(srv)
        ref, _, token = offline_key(srv)
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        srv.cli("release", "open", ref, "--until", until, "--max-signatures", "7")
        answers = concurrently(srv, token, ref, 20)
        assert sorted(r.status_code for r in answers) == [200] * 7 + [403] * 13
        [w] = srv.cli("release", "list", ref, "--json").json()
        assert (w["signatures"], w["state"]) == (7, "exhausted")


def concurrently(server: Server, token: str, ref: str, n: int) -> list[httpx.Response]:
    """``n`` signings of distinct digests with ``ref``, sent at once over HTTP."""
    start = threading.Barrier(n)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        with server.http(token) as http:
            start.wait()
            r = http.post(key_path(ref) + "/sign", json={
                "digest": hashlib.sha256(b"build %d" % i).hexdigest(),
                "artifact_name": f"app-{i}.bin"})
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def quota_race(server: Server) -> str:
    """20 signings at once by one identity with a key whose quota is 5: exactly 5 signed,
    15 refused with 429, all 20 on the record. Returns the key."""
    project = unique("quota")
    ref = f"{project}/release"
    server.cli("project", "create", project)
    server.cli("key", "create", ref)
    out = server.cli("key", "policy", ref, "--max-per-identity-per-day", "5")
    assert "at most 5 signatures per identity per UTC day" in out.stdout
    ci = unique("ci")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", ref)

    answers = concurrently(server, token, ref, 20)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 5 + [429] * 15, [r.text for r in answers]
    for r in answers:
        if r.status_code == 429:
            assert r.json()["code"] == "quota_exceeded"
            assert f"has made its 5 signatures with {ref} for today" in r.json()["detail"]
            assert 1 <= int(r.headers["Retry-After"]) <= 86400
    entries = server.cli("audit", "log", "--key", ref, "--json").json()
    made = [e for e in entries if e["action"] == "signature.create"]
    assert sum(e["outcome"] == "allowed" for e in made) == 5
    assert sum(e["outcome"] == "refused" and e["details"].get("code") == "quota_exceeded"
               for e in made) == 15
    return ref


def test_bad_input_is_a_clear_error(server: Server) -> None:
    ref, _, _ = offline_key(server)
    nothing = server.cli("key", "policy", ref, check=False)
    assert nothing.returncode == 2
    assert "--offline/--online" in nothing.stderr
    for args, code in ((("--until", "tomorrow"), 7),
                       (("--until", "2001-01-01T00:00:00Z"), 7),
                       (("--until", "2999-01-01T00:00:00Z"), 7),
                       (("--until", "2099-01-01", "--max-signatures", "0"), 2)):
        bad = server.cli("release", "open", ref, *args, check=False)
        assert bad.returncode == code, bad
        assert bad.stderr.startswith("signgate: ")
        assert "Traceback" not in bad.stderr
    typo = server.cli("release", "open", ref, "--until",
                      (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                      "--signer", "nobody-here", check=False)
    assert typo.returncode == 7
    assert "--signer names no identity: nobody-here" in typo.stderr
    assert server.cli("release", "close", "no-such-window", check=False).returncode == 5
    with server.http() as http:
        r = http.post(key_path(ref) + "/release-windows", json={"until": "not a time"})
        assert r.status_code == 422, r.text
        r = http.post(key_path(ref) + "/release-policy",
                      json={"max_per_identity_per_day": -1})
        assert r.status_code == 422, r.text
    both = server.cli("key", "policy", ref, "--approvals", "1", "--online",
                      "--max-per-identity-per-day", "3", "--json").json()
    assert (both["approvals"], both["offline"], both["max_per_identity_per_day"]) == (
        1, False, 3)


def test_a_window_that_needs_an_approval(server: Server, tmp_path: Path) -> None:
    ref, _, token = offline_key(server)
    out = server.cli("key", "policy", ref, "--window-approvals", "1")
    assert "a release window opens after 1 approvals" in out.stdout
    boss = unique("boss")
    boss_token = server.new_identity(boss, "user")
    server.cli("grant", "add", boss, "approver", ref)
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    opened = server.cli("release", "open", ref, "--until", until)
    assert "it opens after 1 approvals: signgate release approve" in opened.stdout
    [w] = server.cli("release", "list", ref, "--json").json()
    assert w["state"] == "pending"
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"app\n")
    early = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert early.returncode == 4
    assert f"signgate release approve {w['id']}" in early.stderr
    own = server.cli("release", "approve", w["id"], check=False)  # the admin opened it
    assert own.returncode == 4, own
    approved = server.cli("release", "approve", w["id"], "--comment", "go", token=boss_token)
    assert "1 of 1 approvals, open" in approved.stdout
    signed = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert signed.returncode == 0, signed.stderr
    entries = server.cli("audit", "log", "--key", ref, "--json").json()
    assert [e["actor"] for e in entries if e["action"] == "release.approve"] == [boss]
