"""Independent-build agreement end to end: a real server (SQLite; the service tests cover
PostgreSQL) and the real CLI. Two builder identities submit the same build of a release:
the signature is checked by 'openssl dgst -verify'; a builder with a different build is
refused, the mismatch recorded and the release stopped; concurrent N-th builders sign
exactly once."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique
from tests.support import postgres

# SQLite alone: the same decisions run on both backends in
# tests/integration/test_builders.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server, openssl, start_server


@dataclass
class Builders:
    ref: str
    tokens: dict[str, str]  # identity name -> token

    @property
    def names(self) -> list[str]:
        return list(self.tokens)

    def sign_path(self) -> str:
        return f"/api/v1/projects/{self.ref.replace('/', '/keys/')}/sign"


def builders(server: Server, n: int = 2, approvals: int = 0, count: int = 3) -> Builders:
    project = unique("repro")
    ref = f"{project}/release"
    server.cli("project", "create", project)
    server.cli("key", "create", ref)
    out = server.cli("key", "policy", ref, "--require-builders", str(n))
    assert f"{n} independent builders" in out.stdout
    if approvals:
        server.cli("key", "policy", ref, "--approvals", str(approvals))
    shown = server.cli("key", "show", ref).stdout
    assert f"builders   {n} independent builders" in shown
    tokens = {}
    for i in range(count):
        name = unique(f"builder{i}")
        tokens[name] = server.new_identity(name)
        server.cli("grant", "add", name, "signer", ref)
    return Builders(ref, tokens)


def test_two_builders_agree_and_openssl_verifies(server: Server, tmp_path: Path) -> None:
    b = builders(server)
    first, second = b.names[:2]
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"reproducible release 4.2\n" * 64)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    # Without a release label: a clear 400, never a signature.
    with server.http(b.tokens[first]) as http:
        missing = http.post(b.sign_path(), json={"digest": digest,
                                                 "artifact_name": "app.tar.gz"})
    assert missing.status_code == 400, missing.text
    assert missing.json()["code"] == "release_required"
    no_label = server.cli("sign", str(artifact), "--key", b.ref, token=b.tokens[first],
                          check=False)
    assert no_label.returncode == 7
    assert "--release" in no_label.stderr
    # The first builder: held, 1 of 2.
    held = server.cli("sign", str(artifact), "--key", b.ref, "--release", "v4.2",
                      token=b.tokens[first], check=False)
    assert held.returncode == 11, held.stderr
    request_id = held.stdout.strip()
    assert "1 of 2 agree" in held.stderr
    assert not (tmp_path / "app.tar.gz.sig").exists()
    with server.http(b.tokens[first]) as http:
        again = http.post(b.sign_path(), json={"digest": digest, "artifact_name":
                                               "app.tar.gz", "release": "v4.2"})
    assert again.status_code == 202  # the same builder again counts once
    assert again.json()["request_id"] == request_id
    assert [x["identity"] for x in again.json()["builders"]] == [first]
    shown = server.cli("request", "show", request_id, token=b.tokens[first]).stdout
    assert "awaiting_builders" in shown
    assert "1 of 2 agree" in shown
    # The second builder, with its own build of the same source: signed.
    done = server.cli("sign", str(artifact), "--key", b.ref, "--release", "v4.2", "--json",
                      token=b.tokens[second]).json()
    approval = done["approval"]
    assert approval["request_id"] == request_id
    assert approval["release"] == "v4.2"
    assert [x["identity"] for x in approval["builders"]] == [first, second]
    entries = {e["seq"]: e for e in server.cli("audit", "log", "--key", b.ref,
                                                "--json").json()}
    for x in approval["builders"]:
        assert entries[x["audit_seq"]]["action"] == "request.build"
        assert entries[x["audit_seq"]]["actor"] == x["identity"]
    assert entries[done["audit_seq"]]["details"]["approval"] == approval
    pem = tmp_path / "key.pem"
    pem.write_text(server.cli("key", "public", b.ref).stdout)
    check = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(pem), "-signature",
                            str(tmp_path / "app.tar.gz.sig"), str(artifact)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "Verified OK" in check.stdout
    # The first builder picks up the same signature; the request says signed.
    (tmp_path / "app.tar.gz.sig").unlink()
    picked = server.cli("sign", str(artifact), "--key", b.ref, "--release", "v4.2",
                        "--wait", "--timeout", "30", "--json", token=b.tokens[first]).json()
    assert picked["signature_id"] == done["signature_id"]
    assert server.cli("request", "show", request_id, "--json",
                      token=b.tokens[first]).json()["state"] == "signed"


def test_a_mismatch_is_refused_recorded_and_stops_the_release(server: Server,
                                                              tmp_path: Path) -> None:
    b = builders(server, n=2)
    honest, compromised, third = b.names
    good = tmp_path / "good" / "tool.bin"
    bad = tmp_path / "bad" / "tool.bin"
    good.parent.mkdir()
    bad.parent.mkdir()
    good.write_bytes(b"tool 1.0, built from source")
    bad.write_bytes(b"tool 1.0, built from source + injected code")
    held = server.cli("sign", str(good), "--key", b.ref, "--release", "1.0", "--json",
                      token=b.tokens[honest], check=False)
    assert held.returncode == 11
    request_id = held.json()["request_id"]
    refused = server.cli("sign", str(bad), "--key", b.ref, "--release", "1.0",
                         token=b.tokens[compromised], check=False)
    assert refused.returncode == 6, refused.stderr
    assert "builds disagree" in refused.stderr
    assert not (bad.parent / "tool.bin.sig").exists()
    good_digest = hashlib.sha256(good.read_bytes()).hexdigest()
    bad_digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    with server.http(b.tokens[compromised]) as http:  # over the API: 409 and its code
        again = http.post(b.sign_path(), json={"digest": bad_digest, "artifact_name":
                                               "tool.bin", "release": "1.0"})
    assert again.status_code == 409
    assert again.json()["code"] == "release_stopped"
    shown = server.cli("request", "show", request_id, "--json", token=b.tokens[honest]).json()
    assert shown["state"] == "mismatch"
    assert bad_digest in shown["reason"]
    listed = server.cli("request", "list", "--json").json()
    assert [r["state"] for r in listed if r["request_id"] == request_id] == ["mismatch"]
    log = server.cli("audit", "log", "--key", b.ref, "--action", "request.mismatch",
                     "--json").json()
    assert len(log) == 1
    details = log[0]["details"]
    assert log[0]["actor"] == compromised
    assert details["expected"]["digest"] == good_digest
    assert [x["identity"] for x in details["expected"]["builders"]] == [honest]
    assert details["submitted"] == {"digest": bad_digest, "builder": compromised}
    # Stopped for good: an agreeing builder is refused too, and nothing was ever signed.
    late = server.cli("sign", str(good), "--key", b.ref, "--release", "1.0",
                      token=b.tokens[third], check=False)
    assert late.returncode == 6
    assert "stopped" in late.stderr
    with server.http() as http:
        report = http.get("/api/v1/reports/signatures", params={"key": b.ref}).json()
    assert report["signatures"] == []


def test_builders_agree_then_an_approver_signs(server: Server, tmp_path: Path) -> None:
    b = builders(server, n=2, approvals=1)
    approver = unique("approver")
    approver_token = server.new_identity(approver, "user")
    server.cli("grant", "add", approver, "approver", b.ref)
    digest = hashlib.sha256(b"both").hexdigest()
    body = {"digest": digest, "artifact_name": "lib.so", "release": "r1"}
    answers = []
    for name in b.names[:2]:
        with server.http(b.tokens[name]) as http:
            answers.append(http.post(b.sign_path(), json=body))
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["state"] for a in answers] == ["awaiting_builders", "pending"]
    request_id = answers[1].json()["request_id"]
    out = server.cli("approve", request_id, token=approver_token).stdout
    assert "signed lib.so" in out
    result = server.cli("request", "show", request_id, "--json").json()["result"]
    approval = result["receipt"]["approval"]
    assert len(approval["builders"]) == 2
    assert [x["identity"] for x in approval["approvals"]] == [approver]


def test_concurrent_nth_builders_make_exactly_one_signature(server: Server) -> None:
    b = builders(server, n=2, count=3)
    first, *rest = b.names
    for round_ in range(3):
        body = {"digest": hashlib.sha256(f"race {round_}".encode()).hexdigest(),
                "artifact_name": f"race-{round_}.bin", "release": "v1"}
        with server.http(b.tokens[first]) as http:
            assert http.post(b.sign_path(), json=body).status_code == 202
        barrier = threading.Barrier(4)

        def submit(who: str, body: dict[str, str] = body,
                   barrier: threading.Barrier = barrier) -> httpx.Response:
            with server.http(b.tokens[who]) as http:
                barrier.wait()
                return http.post(b.sign_path(), json=body)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(submit, rest * 2))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 202, 202, 202], [a.text for a in answers]
        assert all(a.json()["state"] == "signed" for a in answers if a.status_code == 202)
    with server.http() as http:
        report = http.get("/api/v1/reports/signatures", params={"key": b.ref}).json()
    assert len(report["signatures"]) == 3  # one per release, never two


def test_two_nodes_on_postgresql_sign_a_release_once(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two 'signgate serve' nodes on one PostgreSQL database: first builders and N-th
    builders of each release sent to both nodes at once make one request and one signature
    per release (the audit head's lock orders the nodes' transactions, the conditional
    update moves each release once)."""
    if not postgres.available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/test.sh starts it)")
    base = tmp_path_factory.mktemp("nodes")
    with postgres.temporary_database() as url:
        a = start_server(base / "a", url)
        try:
            shutil.copytree(base / "a", base / "b")  # the same config and master key
            node_b = start_server(base / "b", url, init=False)
            try:
                b = builders(a, n=2, count=4)
                nodes = [a, node_b]
                for round_ in range(4):
                    body = {"digest": hashlib.sha256(f"nodes {round_}".encode()).hexdigest(),
                            "artifact_name": f"n-{round_}.bin", "release": "v1"}
                    barrier = threading.Barrier(4)

                    def submit(i: int, body: dict[str, str] = body,
                               barrier: threading.Barrier = barrier) -> httpx.Response:
                        with nodes[i % 2].http(b.tokens[b.names[i]]) as http:
                            barrier.wait()
                            return http.post(b.sign_path(), json=body)

                    with ThreadPoolExecutor(4) as pool:
                        answers = list(pool.map(submit, range(4)))
                    assert all(x.status_code in (200, 202) for x in answers), \
                        [x.text for x in answers]
                    assert len({x.json().get("request_id") for x in answers
                                if x.status_code == 202}) <= 1
                    assert sum(x.status_code == 200 for x in answers) == 1
                with a.http() as http:
                    report = http.get("/api/v1/reports/signatures",
                                      params={"key": b.ref}).json()
                assert len(report["signatures"]) == 4
                assert len(a.cli("request", "list", "--json").json()) == 4
            finally:
                node_b.stop()
        finally:
            a.stop()
