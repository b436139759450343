"""Several `signgate serve` nodes on one PostgreSQL, one killed with SIGKILL mid-load.

Three nodes serve the same installation (the same database and master key, each from its
own copy of the data directory, as three machines would). Clients sign through all three
at once; while they do, one node is killed with SIGKILL. Afterwards the audit log must be
one unbroken chain, and every signature a client was given must be in it: the entry its
receipt names, with the digest and signature it names.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import postgres
from tests.support.server import Server, start_server

NODES = 3
CLIENTS_PER_NODE = 4


@dataclass(frozen=True)
class Acknowledged:
    signature_id: str
    audit_seq: int
    digest: str
    signature: bytes


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Server]]:
    if not postgres.available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    with postgres.temporary_database() as url:
        first = start_server(tmp_path / "node0", url)
        servers = [first]
        try:
            for n in range(1, NODES):
                data = tmp_path / f"node{n}"
                shutil.copytree(first.data_dir, data)  # config and master key, as deployed
                servers.append(start_server(data, url, init=False))
            yield servers
        finally:
            for s in servers:
                s.stop()


def _sign_until(url: str, token: str, stop: threading.Event, worker: str,
                acknowledged: list[Acknowledged], failures: list[str]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as c:
        n = 0
        while not stop.is_set():
            n += 1
            digest = hashlib.sha256(f"{worker}-{n}".encode()).hexdigest()
            try:
                r = c.post("/api/v1/projects/fleet/keys/release/sign",
                           json={"digest": digest, "artifact_name": f"{worker}-{n}.bin"})
            except httpx.TransportError as exc:  # the killed node: no answer, no claim
                failures.append(f"{worker}: {type(exc).__name__}")
                time.sleep(0.05)
                continue
            assert r.status_code == 200, r.text
            body = r.json()
            acknowledged.append(Acknowledged(body["receipt"]["signature_id"],
                                             body["receipt"]["audit_seq"], digest,
                                             base64.b64decode(body["signature"])))


def test_three_nodes_one_killed_mid_load_keep_one_chain_and_every_signature(
        nodes: list[Server]) -> None:
    admin = nodes[0]
    admin.cli("project", "create", "fleet")
    admin.cli("key", "create", "fleet/release")
    token = admin.new_identity("ci-fleet")
    admin.cli("grant", "add", "ci-fleet", "signer", "fleet/release")

    acknowledged: list[Acknowledged] = []
    failures: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_sign_until, daemon=True,
                                args=(node.url, token, stop, f"n{i}-c{j}", acknowledged,
                                      failures))
               for i, node in enumerate(nodes) for j in range(CLIENTS_PER_NODE)]
    for t in threads:
        t.start()
    victim = nodes[0]
    assert victim.process is not None
    deadline = time.monotonic() + 60
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    before_kill = len(acknowledged)
    assert before_kill >= 150, "the nodes did not sign under load"
    victim.process.send_signal(signal.SIGKILL)  # mid-batch, most likely
    victim.process.wait(10)
    while len(acknowledged) < before_kill + 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acknowledged) >= before_kill + 150, "the surviving nodes stopped signing"
    assert any(f.startswith("n0-") for f in failures), "the killed node never failed a client"
    assert not [f for f in failures if not f.startswith("n0-")], failures

    # One unbroken chain, checked by a surviving node.
    verdict = nodes[1].cli("audit", "verify", "--json", timeout=300).json()
    assert verdict["ok"], verdict

    # Every acknowledged signature is in it, as its receipt says: the signatures report
    # lists it at its entry with its digest, and the signature's bytes are the ones the
    # record holds (a verification names the record it found by the signature's hash).
    with nodes[1].http() as c:
        listed: dict[str, tuple[int, str]] = {}
        after = 0
        while True:
            page = c.get("/api/v1/reports/signatures",
                         params={"key": "fleet/release", "after": after}).json()
            listed.update({row["signature_id"]: (row["audit_seq"], row["digest"])
                           for row in page["signatures"]})
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert len({a.signature_id for a in acknowledged}) == len(acknowledged)
        for a in acknowledged:
            assert listed.get(a.signature_id) == (a.audit_seq, a.digest), a
        for a in acknowledged[::7]:  # a sample: each verification is a request
            v = c.post("/api/v1/projects/fleet/keys/release/verify",
                       json={"digest": a.digest,
                             "signature": base64.b64encode(a.signature).decode()}).json()
            assert v["valid"], v
            assert v["signature_id"] == a.signature_id
