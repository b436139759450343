"""Quorum approvals over HTTP: what holding a signing and approving it cost a caller.

Starts a real `signgate serve` (SQLite, or PostgreSQL with --backend postgres), makes a
key that needs two approvals, and for N artifacts in turn, one client at a time, times:
the signing answered 202 (held: request row and `request.create` entry), the first
approval, the M-th approval (its entry, then the signature through the signing pipeline,
before the answer), and the requester's `GET /api/v1/requests/ID` of the signed request
(the stored result with an inclusion proof made in the newest checkpoint).

    python bench/approval_latency.py [--requests 50] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import postgres
from tests.support.server import start_server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = p.parse_args()
    with ExitStack() as stack:
        url = (stack.enter_context(postgres.temporary_database())
               if args.backend == "postgres" else None)
        srv = start_server(Path(tempfile.mkdtemp()) / "data", url)
        stack.callback(srv.stop)
        srv.cli("project", "create", "bench")
        srv.cli("key", "create", "bench/k")
        srv.cli("key", "policy", "bench/k", "--approvals", "2")
        ci = srv.new_identity("ci")
        srv.cli("grant", "add", "ci", "signer", "bench/k")
        tokens = []
        for name in ("alice", "bob"):
            tokens.append(srv.new_identity(name, "user"))
            srv.cli("grant", "add", name, "approver", "bench/k")
        times: dict[str, list[float]] = {"signing held (202)": [], "first approval": [],
                                         "M-th approval, signing included": [],
                                         "GET of the signed request": []}
        steps = list(times.values())
        with srv.http(ci) as c, srv.http(tokens[0]) as a, srv.http(tokens[1]) as b:
            for i in range(args.requests):
                digest = hashlib.sha256(str(i).encode()).hexdigest()
                t = time.perf_counter()
                r = c.post("/api/v1/projects/bench/keys/k/sign",
                           json={"digest": digest, "artifact_name": f"a{i}.bin"})
                steps[0].append(time.perf_counter() - t)
                assert r.status_code == 202, r.text
                rid = r.json()["request_id"]
                t = time.perf_counter()
                assert a.post(f"/api/v1/requests/{rid}/approve", json={}).status_code == 200
                steps[1].append(time.perf_counter() - t)
                t = time.perf_counter()
                r = b.post(f"/api/v1/requests/{rid}/approve", json={})
                steps[2].append(time.perf_counter() - t)
                assert r.json()["state"] == "signed", r.text
                t = time.perf_counter()
                r = c.get(f"/api/v1/requests/{rid}")
                steps[3].append(time.perf_counter() - t)
                assert r.json()["result"]["log_proof"], r.text
    print(f"{args.backend}, {args.requests} requests, one client at a time")
    for name, xs in times.items():
        xs.sort()
        print(f"  {name}: p50 {statistics.median(xs) * 1000:.1f} ms, "
              f"p90 {xs[int(len(xs) * 0.9)] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
