"""OIDC exchanges per second against a real 'signgate serve', and what one costs a CI job.

Starts a server (SQLite or PostgreSQL) and the test issuer of tests/support/oidc.py on
127.0.0.1, adds the issuer and a claim-bound signer grant, then exchanges N fresh
GitHub-shaped RS256 tokens one after another over HTTP (each: JWT checks, the jti
insert, the grant match, the session row and the audit entry, committed) and signs one
digest with each exchanged token. Prints exchanges/s with p50/p99 latency, and the same
for the signings, whose actor comes from the session table instead of the identities.

    python bench/oidc_exchange.py [--count 300] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.support import postgres
from tests.support.oidc import AUDIENCE, issuer
from tests.support.server import Server, start_server


@contextlib.contextmanager
def running(backend: str) -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        if backend == "postgres":
            with postgres.temporary_database() as url:
                srv = start_server(data, url)
                try:
                    yield srv
                finally:
                    srv.stop()
        else:
            srv = start_server(data, None)
            try:
                yield srv
            finally:
                srv.stop()


def summary(name: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name}: {len(ms) / (sum(seconds)):.0f}/s sequential, p50 "
          f"{statistics.median(ms):.1f} ms, p99 {p99:.1f} ms ({len(ms)} requests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    with running(args.backend) as srv, issuer() as iss:
        srv.cli("oidc", "issuer", "add", "github", "--issuer", iss.url, "--audience", AUDIENCE)
        srv.cli("project", "create", "acme")
        srv.cli("key", "create", "acme/release")
        srv.cli("grant", "add", "--oidc", "github", "--claim", "repository_id=123456",
                "--claim", "ref=refs/heads/main", "signer", "acme/release")
        tokens = [iss.mint(iss.github()) for _ in range(args.count)]
        exchanges, signings = [], []
        digest = hashlib.sha256(b"artifact").hexdigest()
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            for token in tokens:
                t0 = time.perf_counter()
                r = http.post("/api/v1/oidc/token", json={"token": token})
                exchanges.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                t0 = time.perf_counter()
                s = http.post("/api/v1/projects/acme/keys/release/sign",
                              json={"digest": digest, "artifact_name": "app.bin"},
                              headers={"Authorization": f"Bearer {r.json()['token']}"})
                signings.append(time.perf_counter() - t0)
                assert s.status_code == 200, s.text
        print(f"backend {args.backend}, JWKS fetched {iss.jwks_fetches} time(s)")
        summary("exchange", exchanges)
        summary("sign with the exchanged token", signings)


if __name__ == "__main__":
    main()
