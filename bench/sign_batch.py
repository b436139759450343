"""Batch signing throughput (``POST …/sign-batch``) beside single-digest signing, same run.

For each backend (SQLite in WAL mode with synchronous=FULL; PostgreSQL with
synchronous_commit=on), this starts `signgate serve` on a fresh data directory, creates a
project, an ecdsa-p256 key and a CI identity with a signer grant, and lets N concurrent
clients (wrk, keep-alive connections) POST batches of B digests (distinct artifact names)
to the batch route for D seconds (20 by default: a batch takes about a second under
load, and wrk counts only the requests completed within the run); then, as the peer
measured in the same run against the same server, 64 clients POST single digests to
``/sign``. Every signature of both is
authorised, signed and recorded in the audit log, committed durably, before its response
is sent. Afterwards the signature report must hold one signature per item acknowledged
(a 200 whose items were all signed: the first batch is checked item by item) and the audit
chain must verify.

Prints signatures/s of each and the ratio, and the load average.

    python bench/sign_batch.py [--clients 8] [--batch 100] [--duration 20]
                               [--backend sqlite|postgres|both]

Needs wrk (Debian package 'wrk') and, for PostgreSQL, the server on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.sign_throughput import (
    Result,
    prepare,
    run_wrk,
    serving,
    sign_script,
)

KEY = "/api/v1/projects/bench/keys/release"


def batch_body(size: int) -> dict[str, object]:
    return {"items": [{"digest": hashlib.sha256(f"artifact {i}".encode()).hexdigest(),
                       "artifact_name": f"release/file-{i:04d}.bin"} for i in range(size)]}


def batch_script(token: str, tmp: Path, size: int) -> Path:
    body = json.dumps(batch_body(size), separators=(",", ":"))
    script = tmp / f"batch-{size}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f"wrk.body = '{body}'\n"
    )
    return script


def signatures(url: str, admin: str) -> tuple[int, bool]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"},
                      timeout=600) as c:
        total = int(c.get("/api/v1/reports/signatures/totals").json()["signatures"])
        ok = bool(c.get("/api/v1/audit/verify").json()["ok"])
    return total, ok


def bench_backend(backend: str, args: argparse.Namespace, tmp: Path) -> tuple[Result, Result]:
    with serving(tmp, backend) as server:
        url, admin = server.url, server.admin
        token = prepare(url, admin)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as c:
            first = c.post(KEY + "/sign-batch", json=batch_body(args.batch))
            first.raise_for_status()
            statuses = {r["status"] for r in first.json()["results"]}
            if statuses != {200}:
                raise SystemExit(f"a batch item was not signed: {statuses}")
        script = batch_script(token, tmp, args.batch)
        run_wrk(url + KEY + "/sign-batch", script, args.clients, 2, 30)  # warm-up
        batch = run_wrk(url + KEY + "/sign-batch", script, args.clients, args.duration,
                        30)
        run_wrk(url + KEY + "/sign", sign_script(token, tmp), args.single_clients, 2)
        single = run_wrk(url + KEY + "/sign", sign_script(token, tmp),
                         args.single_clients, args.duration)
        total, ok = signatures(url, admin)
        # Each batch request acknowledged B signatures; warm-ups signed more.
        acknowledged = batch.requests * args.batch + single.requests
        print(f"  audit chain {'intact' if ok else 'BROKEN'}; {total} signatures on record "
              f"(>= {acknowledged} acknowledged in the measured runs)")
        print(f"  failed requests: batch {batch.errors}, single {single.errors}")
        if not ok or total < acknowledged or batch.errors or single.errors:
            raise SystemExit("the record does not hold every acknowledged signature")
    batch.name = f"sign-batch x{args.batch} ({backend})"
    batch.rps *= args.batch  # signatures/s
    single.name = f"sign ({backend})"
    return batch, single


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8, help="concurrent batch clients")
    p.add_argument("--single-clients", type=int, default=64,
                   help="concurrent clients of the single-digest peer")
    p.add_argument("--batch", type=int, default=100, help="digests per batch")
    # A batch takes about a second under load: a short run counts too few of them
    # (wrk reports requests completed within the run).
    p.add_argument("--duration", type=int, default=20, help="seconds per run")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"batch signing: ecdsa-p256, {args.clients} clients x {args.batch} digests, "
          f"peer: /sign with {args.single_clients} clients, {args.duration}s each, "
          f"{os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        for backend in backends:
            print(f"- {backend}")
            rows.append(bench_backend(backend, args, Path(d)))
    print()
    print(f"{'route':28} {'sig/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    for batch, single in rows:
        print(f"{batch.name:28} {batch.rps:9.0f} {batch.p50_ms:8.2f} {batch.p99_ms:8.2f} "
              f"{batch.rps / single.rps:6.2f}")
        print(f"{single.name:28} {single.rps:9.0f} {single.p50_ms:8.2f} "
              f"{single.p99_ms:8.2f} {1.0:6.2f}")
    print(f"target: >= 5000 signatures/s with batches of 100; load {_load()}")


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
