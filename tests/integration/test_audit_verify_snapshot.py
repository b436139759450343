"""'audit verify' during concurrent signing on several workers never reports a break that
is not there: the head and the entries are read in one snapshot on every backend."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique
from tests.support import postgres
from tests.support.server import Server, start_server

VERIFY_SECONDS = 12  # before the fix, 13 of 166 verifications in 20 s reported a break


@pytest.fixture
def busy_server(tmp_path: Path) -> Iterator[Server]:
    """'signgate serve --workers 2' on PostgreSQL (READ COMMITTED by default: each statement
    sees its own snapshot, which is what made verification report false breaks; SQLite's
    read transaction was always one snapshot)."""
    if not postgres.available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/test.sh starts it)")
    with postgres.temporary_database() as url:
        srv = start_server(tmp_path / "data", url, workers=2)
        try:
            yield srv
        finally:
            srv.stop()


def _sign_until(server: Server, token: str, ref: str, stop: threading.Event,
                signed: list[int], errors: list[str]) -> None:
    project, key = ref.split("/")
    path = f"/api/v1/projects/{project}/keys/{key}/sign"
    n = 0
    with server.http(token) as http:
        while not stop.is_set() and n < 20_000:  # bounded, whatever happens
            n += 1
            body = {"digest": hashlib.sha256(f"{threading.get_ident()} {n}".encode()).hexdigest(),
                    "artifact_name": f"build-{n}.bin"}
            r = http.post(path, json=body)
            if r.status_code != 200:
                errors.append(r.text)
                return
            signed.append(1)


def test_verify_during_multi_worker_signing_sees_no_false_break(busy_server: Server) -> None:
    server = busy_server
    project = unique("verify-load")
    with server.http() as http:
        assert http.post("/api/v1/projects", json={"name": project}).status_code == 201
        assert http.post(f"/api/v1/projects/{project}/keys",
                         json={"name": "k", "algorithm": "ed25519"}).status_code == 201
    ci = unique("ci-load")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", f"{project}/k")

    stop = threading.Event()
    signed: list[int] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_sign_until,
                                args=(server, token, f"{project}/k", stop, signed, errors))
               for _ in range(6)]
    for t in threads:
        t.start()
    reports = []
    try:
        # A chain long enough that reading it takes a while, with batches committing
        # from both workers all along.
        deadline = time.monotonic() + 60
        while len(signed) < 300 and time.monotonic() < deadline and not errors:
            time.sleep(0.1)
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {server.admin_token}"}) as http:
            until = time.monotonic() + VERIFY_SECONDS
            while time.monotonic() < until and not errors:
                r = http.get("/api/v1/audit/verify")
                assert r.status_code == 200, r.text
                reports.append(r.json())
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    broken = [r for r in reports if not r["ok"]]
    assert broken == [], f"{len(broken)} of {len(reports)} verifications: {broken[0]}"
    heads = [r["head_seq"] for r in reports]
    assert heads == sorted(heads), heads
    assert heads[-1] > heads[0], heads  # signing went on meanwhile
    assert all(r["entries"] == r["head_seq"] for r in reports)
    final = server.cli("audit", "verify")
    assert final.stdout.startswith("audit log intact: ")
