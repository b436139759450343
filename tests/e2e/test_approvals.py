"""Quorum approvals end to end: a real server (SQLite; the service tests cover PostgreSQL),
the real CLI, a real webhook receiver on 127.0.0.1 that checks the HMAC, and the signature
checked by 'openssl dgst -verify' and its receipt by 'signgate log verify-receipt'."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _server, unique

# SQLite alone: the same decisions run on both backends in
# tests/integration/test_approvals.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import SIGNGATE, Server, openssl

SECRET = b"webhook-secret-for-tests-0123456789"


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that keeps what it is sent; it fails the first
    ``fail_first`` deliveries with 500, so that the retry shows."""

    fail_first: int = 1
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()},
                                          body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, request_id: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for headers, body in self.received:
                doc = json.loads(body)
                if doc["request"]["request_id"] == request_id:
                    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                    assert hmac.compare_digest(headers["x-signgate-signature"], expected)
                    return dict(doc)
            time.sleep(0.1)
        raise AssertionError(f"no webhook for {request_id} (attempts: {self.attempts})")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    assert r.httpd is not None
    r.httpd.shutdown()


@pytest.fixture(scope="module")
def server(backend: str, receiver: Receiver,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    secret = tmp_path_factory.mktemp("hook") / "webhook.secret"
    secret.write_bytes(SECRET + b"\n")
    secret.chmod(0o600)
    yield from _server(backend, tmp_path_factory,
                       config=f'approval_webhook_url = "{receiver.url}"\n'
                              f'approval_webhook_secret_file = "{secret}"\n')


@dataclass
class Team:
    ref: str
    ci: str  # the requester's token
    approvers: dict[str, str]  # name -> token


def team(server: Server, approvals: int = 2) -> Team:
    project = unique("appr")
    ref = f"{project}/release"
    server.cli("project", "create", project)
    server.cli("key", "create", ref)
    out = server.cli("key", "policy", ref, "--approvals", str(approvals))
    assert f"needs {approvals} approvals" in out.stdout
    shown = server.cli("key", "show", ref).stdout
    assert f"approvals  {approvals} approvers" in shown
    ci = unique("ci")
    ci_token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", ref)
    server.cli("grant", "add", ci, "approver", ref)  # still never for its own requests
    approvers = {}
    for who in ("alice", "bob", "carol"):
        name = unique(who)
        approvers[who] = server.new_identity(name, "user")
        server.cli("grant", "add", name, "approver", ref)
    return Team(ref, ci_token, approvers)


def sign_cli(server: Server, t: Team, path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**server.env, "SIGNGATE_URL": server.url, "SIGNGATE_TOKEN": t.ci}
    return subprocess.Popen([SIGNGATE, "sign", str(path), "--key", t.ref, "--no-progress",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_two_approvals_sign_and_wait_writes_a_verifiable_result(
        server: Server, receiver: Receiver, tmp_path: Path) -> None:
    t = team(server)
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release 3.1\n" * 100)
    held = server.cli("sign", str(artifact), "--key", t.ref, token=t.ci, check=False)
    assert held.returncode == 11, held.stderr
    request_id = held.stdout.strip()
    assert "awaits approvals (0 of 2" in held.stderr
    assert not (tmp_path / "app.tar.gz.sig").exists()
    # The same signing again joins the request (idempotency), over the API too: 202.
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    with server.http(t.ci) as http:
        answer = http.post(f"/api/v1/projects/{t.ref.replace('/', '/keys/')}/sign",
                           json={"digest": digest, "artifact_name": "app.tar.gz"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["request_id"] == request_id
    assert (body["digest"], body["artifact_name"], body["state"]) == (
        digest, "app.tar.gz", "pending")
    assert body["expires_at"] > body["created_at"]
    # Approvers are told, signed with the shared secret (and retried after a 500).
    hook = receiver.wait_for(request_id)
    assert hook["event"] == "request.pending"
    assert hook["request"]["digest"] == digest
    assert receiver.attempts >= 2
    assert SECRET.decode() not in server.server_log()

    listed = server.cli("request", "list", "--pending", "--json",
                        token=t.approvers["alice"]).json()
    assert request_id in [r["request_id"] for r in listed]
    own = server.cli("approve", request_id, token=t.ci, check=False)
    assert own.returncode == 4
    assert "may not approve it" in own.stderr
    first = server.cli("approve", request_id, "--comment", "diff reviewed",
                       token=t.approvers["alice"])
    assert "1 of 2 approvals" in first.stdout
    twice = server.cli("approve", request_id, token=t.approvers["alice"], check=False)
    assert twice.returncode == 6
    assert "already approved" in twice.stderr

    waiting = sign_cli(server, t, artifact, "--wait", "--timeout", "60", "--json")
    time.sleep(1.5)  # the waiter polls while the request is pending
    last = server.cli("approve", request_id, token=t.approvers["bob"])
    assert "signed app.tar.gz" in last.stdout
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "waiting for approvals of request" in err
    receipt = json.loads(out)
    approval = receipt["approval"]
    assert approval["request_id"] == request_id
    assert len(approval["approvals"]) == 2
    assert approval["approvals"][0]["comment"] == "diff reviewed"
    # Each approval is its own audit entry, named by its seq in the receipt.
    entries = {e["seq"]: e for e in server.cli("audit", "log", "--key", t.ref,
                                                "--json").json()}
    for a in approval["approvals"]:
        assert entries[a["audit_seq"]]["action"] == "request.approve"
        assert entries[a["audit_seq"]]["actor"] == a["identity"]
    assert entries[receipt["audit_seq"]]["details"]["approval"] == approval

    sig = tmp_path / "app.tar.gz.sig"
    pem = tmp_path / "key.pem"
    pem.write_text(server.cli("key", "public", t.ref).stdout)
    check = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(pem), "-signature",
                            str(sig), str(artifact)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "Verified OK" in check.stdout
    vkey = server.cli("log", "public-key", "--json", token="").json()["verifier_key"]
    ok = server.cli("log", "verify-receipt", str(tmp_path / "app.tar.gz.sig.proof"),
                    "--artifact", str(artifact), "--log-key", vkey, token="", check=False)
    assert ok.returncode == 0, ok.stderr
    # A re-run picks up the same, signed request: the same signature, no second one.
    again = server.cli("sign", str(artifact), "--key", t.ref, "--json", token=t.ci).json()
    assert again["signature_id"] == receipt["signature_id"]


def test_one_denial_ends_the_request(server: Server, tmp_path: Path) -> None:
    t = team(server)
    artifact = tmp_path / "tool.bin"
    artifact.write_bytes(b"tool 0.9")
    held = server.cli("sign", str(artifact), "--key", t.ref, "--json", token=t.ci,
                      check=False)
    assert held.returncode == 11
    request_id = held.json()["request_id"]
    server.cli("approve", request_id, token=t.approvers["alice"])
    no_reason = server.cli("deny", request_id, token=t.approvers["bob"], check=False)
    assert no_reason.returncode == 2  # --reason is required
    server.cli("deny", request_id, "--reason", "not a tagged build", token=t.approvers["bob"])
    late = server.cli("approve", request_id, token=t.approvers["carol"], check=False)
    assert late.returncode == 6
    assert "already denied" in late.stderr
    shown = server.cli("request", "show", request_id, "--json", token=t.ci).json()
    assert shown["state"] == "denied"
    assert shown["reason"] == "not a tagged build"
    assert [a["decision"] for a in shown["approvals"]] == ["approve", "deny"]
    waited = sign_cli(server, t, artifact, "--wait", "--timeout", "5")
    # The denied request is closed: the re-run makes a new one, still pending at the timeout.
    _, err = waited.communicate(timeout=60)
    assert waited.returncode == 11, err
    assert "still waiting" in err


def test_concurrent_mth_approvals_make_exactly_one_signature(server: Server) -> None:
    t = team(server)
    for round_ in range(3):
        digest = hashlib.sha256(f"race {round_}".encode()).hexdigest()
        with server.http(t.ci) as http:
            held = http.post(f"/api/v1/projects/{t.ref.replace('/', '/keys/')}/sign",
                             json={"digest": digest, "artifact_name": f"race-{round_}.bin"})
        assert held.status_code == 202
        request_id = held.json()["request_id"]
        with server.http(t.approvers["alice"]) as http:
            assert http.post(f"/api/v1/requests/{request_id}/approve",
                             json={}).status_code == 200
        barrier = threading.Barrier(2)

        def approve(who: str, request_id: str = request_id,
                    barrier: threading.Barrier = barrier) -> httpx.Response:
            with server.http(t.approvers[who]) as http:
                barrier.wait()
                return http.post(f"/api/v1/requests/{request_id}/approve", json={})

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(approve, ["bob", "carol"]))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        signed = next(a.json() for a in answers if a.status_code == 200)
        assert signed["state"] == "signed"
    with server.http() as http:
        report = http.get("/api/v1/reports/signatures", params={"key": t.ref}).json()
    assert len(report["signatures"]) == 3  # one per request, never two


def test_an_expired_request_cannot_be_approved(backend: str,
                                               tmp_path_factory: pytest.TempPathFactory,
                                               tmp_path: Path) -> None:
    for srv in _server(backend, tmp_path_factory, config="approval_ttl_minutes = 0.04"):
        t = team(srv, approvals=1)
        artifact = tmp_path / "late.bin"
        artifact.write_bytes(b"late")
        held = srv.cli("sign", str(artifact), "--key", t.ref, token=t.ci, check=False)
        assert held.returncode == 11
        request_id = held.stdout.strip()
        time.sleep(3)  # the request lives 2.4 seconds
        late = srv.cli("approve", request_id, token=t.approvers["alice"], check=False)
        assert late.returncode == 6
        assert "expired" in late.stderr
        shown = srv.cli("request", "show", request_id, "--json", token=t.ci).json()
        assert shown["state"] == "expired"
        fresh = srv.cli("sign", str(artifact), "--key", t.ref, token=t.ci, check=False)
        assert fresh.returncode == 11
        assert fresh.stdout.strip() != request_id


def test_a_held_cms_signing_waits_and_verifies_with_openssl(server: Server,
                                                           tmp_path: Path) -> None:
    t = team(server, approvals=1)
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 3000)
    waiting = sign_cli(server, t, artifact, "--format", "cms", "--wait", "--json")
    deadline = time.monotonic() + 30
    pending: list[Any] = []
    while not pending and time.monotonic() < deadline:
        pending = [r for r in server.cli("request", "list", "--pending", "--json",
                                         token=t.approvers["carol"]).json()
                   if r["key"] == t.ref]
        time.sleep(0.3)
    assert pending, "the held signing never showed up"
    assert pending[0]["format"] == "cms"
    server.cli("approve", pending[0]["request_id"], token=t.approvers["carol"])
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    receipt = json.loads(out)
    assert receipt["format"] == "cms"
    ok = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                         receipt["signature_file"], "-content", str(artifact), "-CAfile",
                         str(root), "-purpose", "any", "-out", "/dev/null"],
                        capture_output=True, text=True)
    assert "CMS Verification successful" in ok.stderr, ok.stderr


def test_approvers_are_told_once_the_builders_agree(server: Server,
                                                    receiver: Receiver) -> None:
    """A key that needs builders and approvals: no webhook while the release waits for its
    builders (nothing to approve yet), one as soon as they agree."""
    t = team(server, approvals=1)
    server.cli("key", "policy", t.ref, "--require-builders", "2")
    second = unique("builder")
    second_token = server.new_identity(second)
    server.cli("grant", "add", second, "signer", t.ref)
    body = {"digest": hashlib.sha256(b"built twice").hexdigest(),
            "artifact_name": "lib.so", "release": "2.0"}
    path = f"/api/v1/projects/{t.ref.replace('/', '/keys/')}/sign"
    with server.http(t.ci) as http:
        first = http.post(path, json=body)
    assert first.status_code == 202
    assert first.json()["state"] == "awaiting_builders"
    request_id = first.json()["request_id"]
    with pytest.raises(AssertionError, match="no webhook"):
        receiver.wait_for(request_id, timeout=2)
    with server.http(second_token) as http:
        agreed = http.post(path, json=body)
    assert agreed.json()["state"] == "pending"
    hook = receiver.wait_for(request_id)
    assert hook["event"] == "request.pending"
    assert hook["request"]["state"] == "pending"
    assert [b["identity"] for b in hook["request"]["builders"]] == [
        server.cli("whoami", "--json", token=t.ci).json()["name"], second]
