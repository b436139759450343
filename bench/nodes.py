"""Scale-out on one PostgreSQL: 1, 2 and 3 `signgate serve` nodes, and 1, 2 and 3
`--workers` of one node, measured in the same run.

Each configuration gets a fresh PostgreSQL database (synchronous_commit=on) and one
installation (`signgate init` once; every further node serves a copy of that data
directory: the same config and master key, as separate machines would). The same 64
clients (wrk, keep-alive) are split evenly over the nodes, each share driven by its own
wrk at its node, for D seconds; every signature is authenticated, authorised, signed and
committed with its audit entry before its response. Afterwards the audit chain is
verified and must hold every signature.

Prints signatures/s, p50/p99 (the worst node's) and the ratio to one node with one worker.
All of it (the nodes, PostgreSQL and wrk) shares the machine's cores: on the project's
2-core machine a third node cannot add a core, so read the ratios with the core count.

    python bench/nodes.py [--clients 64] [--duration 10] [--max 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sign_throughput import (
    BIN,
    SIGN_PATH,
    Result,
    audit_check,
    free_port,
    parse_wrk,
    postgres_database,
    prepare,
    running,
    sign_script,
    wrk,
    wrk_command,
)


def measure(nodes: int, workers: int, args: argparse.Namespace, tmp: Path) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    with contextlib.ExitStack() as stack:
        env["SIGNGATE_DATABASE_URL"] = stack.enter_context(postgres_database())
        first = tmp / f"n{nodes}w{workers}-0"
        subprocess.run([str(BIN / "signgate"), "init", "--data-dir", str(first)], env=env,
                       check=True, capture_output=True)
        admin = (first / "admin.token").read_text().strip()
        urls = []
        for n in range(nodes):
            data = first if n == 0 else tmp / f"n{nodes}w{workers}-{n}"
            if n:
                shutil.copytree(first, data)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            stack.enter_context(running(
                [str(BIN / "signgate"), "serve", "--data-dir", str(data), "--port", str(port),
                 "--workers", str(workers)], env, url, "/healthz"))
            urls.append(url)
        token = prepare(urls[0], admin)
        script = sign_script(token, tmp)
        share = max(1, args.clients // nodes)
        for url in urls:
            wrk(url, token, share, 2, tmp)  # warm-up
        procs = [subprocess.Popen(wrk_command(url + SIGN_PATH, script, share, args.duration),
                                  stdout=subprocess.PIPE, text=True) for url in urls]
        results = [parse_wrk(p.communicate()[0]) for p in procs]
        ok, entries = audit_check(urls[-1], admin)
    total = Result(f"{nodes} node(s) x {workers} worker(s)",
                   sum(r.rps for r in results), max(r.p50_ms for r in results),
                   max(r.p99_ms for r in results), sum(r.requests for r in results),
                   sum(r.errors for r in results))
    if not ok or entries - 5 < total.requests:
        raise SystemExit(f"audit log does not hold every signature ({entries} entries)")
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64, help="concurrent connections in all")
    p.add_argument("--duration", type=int, default=10, help="seconds per run")
    p.add_argument("--max", type=int, default=3, help="most nodes (and workers) measured")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(f"scale-out on PostgreSQL: ecdsa-p256, {args.clients} clients, {args.duration}s, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    configs = [(n, 1) for n in range(1, args.max + 1)] + \
              [(1, w) for w in range(2, args.max + 1)]
    with tempfile.TemporaryDirectory(prefix="signgate-nodes-") as d:
        results = []
        for nodes, workers in configs:
            print(f"- {nodes} node(s), {workers} worker(s)", flush=True)
            results.append(measure(nodes, workers, args, Path(d)))
    base = results[0].rps
    print()
    print(f"{'configuration':28} {'sig/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs 1':>6}")
    for r in results:
        print(f"{r.name:28} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
              f"{r.rps / base:6.2f}")
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if any(r.errors for r in results):
        sys.exit("some signing requests failed")


if __name__ == "__main__":
    main()
