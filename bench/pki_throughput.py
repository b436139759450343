"""What the PKI costs: RFC 3161 responses/s from the built-in TSA, timestamped signings/s
and one-time-key signings/s, beside plain signings/s, on one real server (SQLite).

Each is N concurrent clients (wrk) for D seconds against `signgate serve`:
- plain: hash-signing with an ecdsa-p256 key (group-committed, see sign_throughput.py);
- timestamped: the same with `"timestamp": true` (a TSA token over every signature);
- one-time: a one-time ecdsa-p256 key: a fresh key pair, a 10-minute certificate from the
  project CA, the signature and a timestamp for every request, the key destroyed after;
- tsa: `POST /tsa` with a fixed SHA-256 query (certReq, nonce), each token recorded in
  the audit log before it is returned.

    python bench/pki_throughput.py [--clients 16] [--duration 10]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
from asn1crypto import tsp

from sign_throughput import (
    SIGN_PATH,
    Result,
    audit_check,
    prepare,
    run_wrk,
    serving,
    sign_script,
)


def tsa_script(tmp: Path) -> Path:
    query = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(b"bench").digest()},
        "nonce": 1234567,
        "cert_req": True,
    }).dump()
    body = "".join(f"\\{b}" for b in query)  # Lua decimal escapes: binary-safe
    script = tmp / "tsa.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/timestamp-query"\n'
        f'wrk.body = "{body}"\n'
    )
    return script


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=int, default=10)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(f"pki throughput: {args.clients} clients, {args.duration}s, SQLite, "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        tmp = Path(d)
        results: list[Result] = []
        with serving(tmp) as server:
            url, admin = server.url, server.admin
            token = prepare(url, admin)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as c:
                c.post("/api/v1/projects/bench/keys",
                       json={"name": "once", "one_time": True}).raise_for_status()
                c.post("/api/v1/grants", json={"identity": "ci-bench", "role": "signer",
                                               "scope": "bench"}).raise_for_status()
            runs = [
                ("plain signing", url + SIGN_PATH, sign_script(token, tmp)),
                ("timestamped signing", url + SIGN_PATH, sign_script(token, tmp, True)),
                ("one-time-key signing", url + SIGN_PATH.replace("release", "once"),
                 sign_script(token, tmp)),
                ("RFC 3161 response", url + "/tsa", tsa_script(tmp)),
            ]
            for name, target, script in runs:
                run_wrk(target, script, args.clients, 2)  # warm-up
                r = run_wrk(target, script, args.clients, args.duration)
                r.name = name
                results.append(r)
                print(f"- {name}: {r.rps:.0f}/s")
            ok, entries = audit_check(url, admin)
            print(f"  audit chain {'intact' if ok else 'BROKEN'}: {entries} entries")
            if not ok:
                raise SystemExit("audit chain broken")
    base = results[0].rps
    print()
    print(f"{'operation':24} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs plain':>8}")
    for r in results:
        print(f"{r.name:24} {r.rps:8.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
              f"{r.rps / base:8.2f}")
    if any(r.errors for r in results):
        raise SystemExit("some requests failed")


if __name__ == "__main__":
    sys.exit(main())
