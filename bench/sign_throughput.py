"""Hash-signing throughput of a real signgate server, beside its ceiling.

For each backend (SQLite in WAL mode with synchronous=FULL; PostgreSQL with
synchronous_commit=on), this starts `signgate serve` on a fresh data directory, creates a
project, an ecdsa-p256 key and a CI identity with a signer grant, and lets N concurrent
clients (wrk, keep-alive connections) POST digests to the signing endpoint for D seconds.
Every one of those requests is authenticated, authorised, signed and recorded in the audit
log, committed durably, before its response is sent.

The ceiling is bench/bare_app.py under the same uvicorn setup: the same route, request and
response shapes, signing with an in-memory key, and nothing else (no auth, no database).

Prints signatures/s and p50/p99 latency for each, and the ratio. Afterwards it checks that
the audit chain verifies and holds one entry per signature.

    python bench/sign_throughput.py [--clients 64] [--duration 10] [--workers 1]
                                    [--backend sqlite|postgres|both]

Needs wrk (Debian package 'wrk') and, for PostgreSQL, the server on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], url: str, path: str) -> Iterator[None]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_healthy(url, proc, path)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def sign_script(token: str, tmp: Path, timestamp: bool = False) -> Path:
    """A wrk script POSTing one digest for signing (the URL names the key)."""
    digest = hashlib.sha256(b"benchmark artifact").hexdigest()
    script = tmp / f"sign-{timestamp}.lua"
    stamp = ',"timestamp":true' if timestamp else ""
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f"wrk.body = '{{\"digest_algorithm\":\"sha256\",\"digest\":\"{digest}\","
        f"\"artifact_name\":\"bench.bin\"{stamp}}}'\n"
    )
    return script


def run_wrk(url: str, script: Path, clients: int, duration: int,
            timeout: int | None = None) -> Result:
    """Run wrk against ``url`` with ``script``; requests/s, p50/p99 and failures
    (``timeout``: seconds before wrk counts a request as failed; its default is 2)."""
    command = wrk_command(url, script, clients, duration)
    if timeout:
        command[1:1] = [f"--timeout={timeout}s"]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True,
                                    check=True).stdout)


def wrk_command(url: str, script: Path, clients: int, duration: int) -> list[str]:
    return ["wrk", "-t1", f"-c{clients}", f"-d{duration}s", "--latency", "-s", str(script), url]


def parse_wrk(out: str) -> Result:
    """Requests/s, p50/p99 and failures from wrk's ``--latency`` output."""

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise SystemExit(f"cannot parse wrk output:\n{out}")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    errors = int(bad.group(1)) if bad else 0
    if errs:
        errors += sum(int(n) for n in re.findall(r"\d+", errs.group(0)))
    return Result("", rps, ms("50"), ms("99"), total, errors)


SIGN_PATH = "/api/v1/projects/bench/keys/release/sign"


def wrk(url: str, token: str, clients: int, duration: int, tmp: Path) -> Result:
    return run_wrk(url + SIGN_PATH, sign_script(token, tmp), clients, duration)


def prepare(url: str, admin: str) -> str:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as c:
        c.post("/api/v1/projects", json={"name": "bench"}).raise_for_status()
        c.post("/api/v1/projects/bench/keys", json={"name": "release"}).raise_for_status()
        r = c.post("/api/v1/identities", json={"name": "ci-bench"})
        r.raise_for_status()
        c.post("/api/v1/grants", json={"identity": "ci-bench", "role": "signer",
                                       "scope": "bench/release"}).raise_for_status()
        return str(r.json()["token"])


def audit_check(url: str, admin: str) -> tuple[bool, int]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"},
                      timeout=300) as c:
        r = c.get("/api/v1/audit/verify").json()
        return bool(r["ok"]), int(r["entries"])


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg

    name = f"signgate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    print(f"  postgresql synchronous_commit={sync[0] if sync else '?'}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Installation:
    """A running ``signgate serve`` on a fresh data directory."""

    url: str
    admin: str
    data: Path


@contextlib.contextmanager
def serving(tmp: Path, backend: str = "sqlite", workers: int = 1,
            name: str | None = None) -> Iterator[Installation]:
    """``signgate init`` of a fresh installation (a fresh PostgreSQL database for
    ``postgres``) and ``signgate serve`` of it until the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    with contextlib.ExitStack() as stack:
        if backend == "postgres":
            env["SIGNGATE_DATABASE_URL"] = stack.enter_context(postgres_database())
        else:
            print("  sqlite journal_mode=WAL synchronous=FULL")
        data = tmp / (name or f"data-{backend}")
        subprocess.run([str(BIN / "signgate"), "init", "--data-dir", str(data)], env=env,
                       check=True, capture_output=True)
        admin = (data / "admin.token").read_text().strip()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [str(BIN / "signgate"), "serve", "--data-dir", str(data), "--port", str(port),
               "--workers", str(workers)]
        with running(cmd, env, url, "/healthz"):
            yield Installation(url, admin, data)


def bench_signgate(backend: str, args: argparse.Namespace, tmp: Path) -> Result:
    with serving(tmp, backend, args.workers) as server:
        token = prepare(server.url, server.admin)
        wrk(server.url, token, args.clients, 2, tmp)  # warm-up
        result = wrk(server.url, token, args.clients, args.duration, tmp)
        ok, entries = audit_check(server.url, server.admin)
        signed = entries - 5  # init, project, key, identity and grant come first
        print(f"  audit chain {'intact' if ok else 'BROKEN'}: {entries} entries "
              f"(>= {result.requests} signatures of the measured run)")
        if not ok or signed < result.requests:
            raise SystemExit("audit log does not hold every signature")
    result.name = f"signgate ({backend})"
    return result


def bench_bare(args: argparse.Namespace, tmp: Path) -> Result:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [str(BIN / "uvicorn"), "bench.bare_app:create", "--factory", "--port", str(port),
           "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]
    with running(cmd, env, url, "/docs"):
        wrk(url, "none", args.clients, 2, tmp)
        result = wrk(url, "none", args.clients, args.duration, tmp)
    result.name = "ceiling (bare endpoint)"
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64, help="concurrent connections")
    p.add_argument("--duration", type=int, default=10, help="seconds per run")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"sign throughput: ecdsa-p256, {args.clients} clients, {args.duration}s, "
          f"{args.workers} worker(s), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        tmp = Path(d)
        results = []
        for backend in backends:
            print(f"- {backend}")
            results.append(bench_signgate(backend, args, tmp))
        print("- ceiling")
        ceiling = bench_bare(args, tmp)
    print()
    print(f"{'server':28} {'sig/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6}")
    for r in [*results, ceiling]:
        print(f"{r.name:28} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
              f"{r.rps / ceiling.rps:6.2f}")
    if any(r.errors for r in results):
        raise SystemExit("some signing requests failed")


if __name__ == "__main__":
    main()
