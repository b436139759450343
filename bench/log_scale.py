"""The audit log at scale: `audit verify` entries/s and report queries at a million entries.

Builds a real signgate installation (`signgate init`, then projects, keys and identities
through the service), then appends N signature entries the way the signing pipeline does
(the audit writer hashing each onto the chain, and one signature row per entry, 10,000 per
transaction), and measures on that database:

- `audit verify` (the service call the API makes), in entries/s, against a ceiling
  measured in the same run: the same rows read through the bare database driver and
  one SHA-256 over each (no SQLAlchemy, no canonical encoding), in one process;
- `log monitor` (its client code over the service's checkpoint and proofs) from the
  checkpoint before seeding to the one after: the entries it vouches for per second;
- `report signatures` queries with filters (a key and a month; an identity; a project's
  totals), each against the 1 s target, with the database's query plan (EXPLAIN).

    python bench/log_scale.py [--entries 1000000] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import postgres

from signgate.audit.model import Action, Outcome, Record
from signgate.client.log_monitor import monitor
from signgate.config import load_settings
from signgate.service import audit, identities, keys, projects, reports
from signgate.service import log as log_reads
from signgate.service.caller import Caller
from signgate.service.context import Context
from signgate.service.factory import build_context
from signgate.store.models import Identity, Key, KeyVersion, Project, SignatureRecord

BIN = Path(sys.executable).parent
PER_TRANSACTION = 10_000
KEYS = [("acme-app", "release"), ("acme-app", "nightly"), ("acme-lib", "release"),
        ("acme-lib", "nightly")]
SIGNERS = ["ci-app", "ci-lib", "release-bot"]
START = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def installation(backend: str) -> Iterator[Context]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d, \
            (postgres.temporary_database() if backend == "postgres"
             else _none()) as url:
        data = Path(d) / "data"
        if url:
            env["SIGNGATE_DATABASE_URL"] = url
            os.environ["SIGNGATE_DATABASE_URL"] = url
        subprocess.run([str(BIN / "signgate"), "init", "--data-dir", str(data)], env=env,
                       check=True, capture_output=True)
        ctx = build_context(load_settings(data))
        ctx.admin = Caller((data / "admin.token").read_text().strip())  # type: ignore[attr-defined]
        try:
            yield ctx
        finally:
            ctx.close()
            os.environ.pop("SIGNGATE_DATABASE_URL", None)


@contextmanager
def _none() -> Iterator[None]:
    yield None


class ServiceLog:
    """What 'signgate log monitor' reads over HTTP, read from the service directly (the
    bench measures the log, not the HTTP round trip)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.hashes = 0

    def log_checkpoint(self) -> bytes:
        return log_reads.checkpoint(self.ctx)

    def log_consistency(self, old: int, new: int) -> list[bytes]:
        proof = log_reads.consistency(self.ctx, old, new)
        self.hashes = len(proof.hashes)
        return [base64.b64decode(h) for h in proof.hashes]


def seed(ctx: Context, entries: int) -> float:
    admin: Caller = ctx.admin  # type: ignore[attr-defined]
    for project in sorted({p for p, _ in KEYS}):
        projects.create(ctx, admin, project)
    for project, name in KEYS:
        keys.create(ctx, admin, f"{project}/{name}")
    for name in SIGNERS:
        identities.create(ctx, admin, name)
    with ctx.db.read() as session:
        versions = [session.execute(
            select(KeyVersion.id).join(Key).join(Project)
            .where(Project.name == p, Key.name == n)).scalar_one() for p, n in KEYS]
        who = [session.execute(select(Identity.id).where(Identity.name == n)).scalar_one()
               for n in SIGNERS]
    insert_signature = insert(SignatureRecord)
    step = timedelta(days=300) / entries  # spread over ten months
    began = time.perf_counter()
    done = 0
    while done < entries:
        with ctx.transaction() as session:
            rows: list[dict[str, Any]] = []
            for i in range(done, min(entries, done + PER_TRANSACTION)):
                k, s = i % len(KEYS), i % len(SIGNERS)
                project, name = KEYS[k]
                digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
                sid = str(uuid.UUID(int=i + 1))
                now = START + step * i
                details = {"signature_id": sid, "key_version": 1, "digest_algorithm": "sha256",
                           "digest": digest, "format": "raw", "signature_sha256": digest}
                seq = ctx.record(session, Record(SIGNERS[s], Action.SIGN, Outcome.ALLOWED,
                                                 f"build-{i}.tar.gz", project,
                                                 f"{project}/{name}", details), now)
                rows.append({"id": sid, "key_version_id": versions[k], "identity_id": who[s],
                             "artifact_name": f"build-{i}.tar.gz", "digest_algorithm": "sha256",
                             "digest": digest, "signature_sha256": digest, "format": "raw",
                             "signed_at": now, "client_address": None, "metadata_json": "{}",
                             "audit_seq": seq, "timestamp_token": None, "scan_json": None})
            session.connection().execute(insert_signature, rows)
        done += len(rows)
        print(f"\r  seeded {done:,}/{entries:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if ctx.db.dialect == "postgresql":
        with ctx.db.write() as session:
            session.execute(text("ANALYZE"))
    return time.perf_counter() - began


def ceiling(ctx: Context) -> float:
    """The floor any verification pays, in entries/s: the same rows read through the bare
    database driver (no SQLAlchemy, no types) and one SHA-256 over each row's fields."""
    raw = ctx.db.read_engine.raw_connection()
    try:
        began = time.perf_counter()
        cur = raw.cursor()
        cur.execute("SELECT seq, time, actor, action, outcome, subject, project, key_ref, "
                    "details, prev_hash, entry_hash FROM audit_entries ORDER BY seq")
        n = 0
        while rows := cur.fetchmany(5000):
            for row in rows:
                hashlib.sha256("|".join(map(str, row)).encode()).hexdigest()
            n += len(rows)
        return n / (time.perf_counter() - began)
    finally:
        raw.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def explain(ctx: Context, sql: str) -> str:
    prefix = "EXPLAIN QUERY PLAN " if ctx.db.dialect == "sqlite" else "EXPLAIN "
    with ctx.db.read() as session:
        rows = session.execute(text(prefix + sql)).all()
    return "\n".join("      " + " ".join(str(c) for c in r) for r in rows)


def run(backend: str, entries: int) -> list[tuple[str, str, str]]:
    print(f"- {backend}: seeding {entries:,} signature entries", file=sys.stderr)
    out: list[tuple[str, str, str]] = []
    with installation(backend) as ctx:
        admin: Caller = ctx.admin  # type: ignore[attr-defined]
        state = Path(tempfile.mkdtemp(prefix="signgate-monitor-")) / "state.json"
        reader = ServiceLog(ctx)
        first = monitor(reader, state, log_reads.public_key(ctx).verifier_key)
        seconds = seed(ctx, entries)
        out.append((backend, "seed (audit writer + signature rows)",
                    f"{entries / seconds:,.0f} entries/s"))
        took, verdict = timed(lambda: audit.verify(ctx, admin))
        assert verdict.ok, verdict
        rate, top = verdict.entries / took, ceiling(ctx)
        out.append((backend, f"audit verify ({verdict.entries:,} entries)",
                    f"{rate:,.0f} entries/s ({took:.1f} s), {rate / top:.2f} of the "
                    f"driver+sha256 floor ({top:,.0f}/s); target 100,000/s: "
                    f"{'met' if rate >= 1e5 else 'NOT met'}"))
        took, seen = timed(lambda: monitor(reader, state))
        grown = seen.size - first.size
        out.append((backend, f"log monitor ({first.size:,} -> {seen.size:,} entries)",
                    f"{grown / took:,.0f} entries/s ({took * 1000:,.0f} ms: the checkpoint's "
                    f"signature and a consistency proof of {reader.hashes} hashes); target "
                    f"100,000/s: {'met' if grown / took >= 1e5 else 'NOT met'}"))
        month = reports.SignatureQuery(key="acme-app/release", since=START + timedelta(days=60),
                                       until=START + timedelta(days=90), limit=1000)
        queries = {
            "report: one key, one month, first page": lambda: reports.signatures(ctx, admin,
                                                                                  month),
            "report: one identity, first page": lambda: reports.signatures(
                ctx, admin, reports.SignatureQuery(identity="release-bot", limit=1000)),
            f"report: one identity, page after {int(entries * 0.9):,}": lambda: reports.signatures(
                ctx, admin, reports.SignatureQuery(identity="release-bot", limit=1000,
                                                   after=int(entries * 0.9))),
            "totals: one project, one month": lambda: reports.totals(
                ctx, admin, reports.SignatureQuery(project="acme-lib", since=month.since,
                                                   until=month.until)),
            "totals: everything": lambda: reports.totals(ctx, admin, reports.SignatureQuery()),
        }
        for name, query in queries.items():
            took, _ = timed(query)
            out.append((backend, name, f"{took * 1000:,.0f} ms ({took:.2f} of the 1 s target)"))
        print(f"  plan, one key and one month ({backend}):", file=sys.stderr)
        print(explain(ctx, "SELECT s.id FROM signatures s JOIN key_versions v ON "
                           "v.id = s.key_version_id JOIN keys k ON k.id = v.key_id JOIN "
                           "projects p ON p.id = k.project_id WHERE p.name = 'acme-app' AND "
                           "k.name = 'release' AND s.signed_at >= '2026-03-02' AND "
                           "s.signed_at < '2026-04-01' ORDER BY s.audit_seq LIMIT 1001"),
              file=sys.stderr)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = p.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    rows = [row for b in backends for row in run(b, args.entries)]
    width = max(len(r[1]) for r in rows)
    print(f"\nlog at scale: {args.entries:,} entries, {os.cpu_count()} cores")
    for backend, name, value in rows:
        print(f"{backend:9} {name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
