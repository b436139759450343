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
import re
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

from sqlalchemy import event, insert, select, text

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
from signgate.store.models import (
    Identity,
    Key,
    KeyVersion,
    Project,
    SignatureRecord,
    signature_prefix,
)

BIN = Path(sys.executable).parent
PER_TRANSACTION = 10_000
BUDGET = 600  # bytes of storage per signature (issue 14, item 8)
KEYS = [("acme-app", "release"), ("acme-app", "nightly"), ("acme-lib", "release"),
        ("acme-lib", "nightly"), ("acme-tools", "hotfix")]
SIGNERS = ["ci-app", "ci-lib", "release-bot", "hotfix-bot"]
# One signing in RARE is the last key's, by the last signer, in the last project: pages of
# a rare key, identity or project are where an index must match the filter (a scan of the
# log in seq order that filters reads RARE rows per row of the page).
RARE = 100
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
                rare = i % RARE == RARE - 1
                k = len(KEYS) - 1 if rare else i % (len(KEYS) - 1)
                s = len(SIGNERS) - 1 if rare else i % (len(SIGNERS) - 1)
                project, name = KEYS[k]
                digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
                sid = str(uuid.UUID(int=i + 1))
                now = START + step * i
                details = {"signature_id": sid, "key_version": 1, "digest_algorithm": "sha256",
                           "digest": digest, "format": "raw", "signature_sha256": digest,
                           "client": f"10.0.{s}.{k}"}
                seq = ctx.record(session, Record(SIGNERS[s], Action.SIGN, Outcome.ALLOWED,
                                                 f"build-{i}.tar.gz", project,
                                                 f"{project}/{name}", details), now)
                # The row signing writes (service/pipeline/record.py): it points at the entry.
                rows.append({"audit_seq": seq, "key_version_id": versions[k],
                             "identity_id": who[s], "signed_at": now,
                             "signature_prefix": signature_prefix(bytes.fromhex(digest)),
                             "timestamp_token": None})
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


SIZES = {
    "sqlite": "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name",
    # Each table and index with its TOAST table (what the big values spill into).
    "postgresql": "SELECT c.relname, pg_relation_size(c.oid) + COALESCE(pg_total_relation_size("
                  "NULLIF(c.reltoastrelid, 0)), 0) FROM pg_class c JOIN pg_namespace n ON "
                  "n.oid = c.relnamespace WHERE n.nspname = current_schema() AND "
                  "c.relkind IN ('r', 'i')",
}


def sizes(ctx: Context) -> dict[str, int]:
    """Bytes on disk of every table and index (SQLite: the pages dbstat counts, free space
    in them included; PostgreSQL: the relation's files with its TOAST)."""
    with ctx.db.read() as session:
        return {str(n): int(b) for n, b in session.execute(text(SIZES[ctx.db.dialect]))}


def storage(before: dict[str, int], after: dict[str, int], entries: int,
            backend: str) -> list[tuple[str, str, str]]:
    """Bytes per seeded signature, per table and index that grew, and in all."""
    grew = {n: (after[n] - before.get(n, 0)) / entries for n in after}
    grew = {n: b for n, b in grew.items() if b >= 0.5}
    total = sum(grew.values())
    out = [(backend, f"  bytes per signature in {n}", f"{b:,.0f}")
           for n, b in sorted(grew.items(), key=lambda nb: -nb[1])]
    return [(backend, f"storage per signature ({len(grew)} tables and indexes grew)",
             f"{total:,.0f} bytes; {total / BUDGET:.2f} of the {BUDGET}-byte budget "
             f"({'met' if total <= BUDGET else 'NOT met'})"), *out]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


@contextmanager
def captured(ctx: Context) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) the service runs meanwhile, as the driver gets them."""
    got: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        got.append((statement, parameters))

    engines = {ctx.db.read_engine, ctx.db.write_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        yield got
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)


def explain_main(ctx: Context, statements: list[tuple[str, Any]]) -> str:
    """The database's plan of the query that reads the page: the one that orders or groups
    the signatures or entries (not the look-ups of the caller, its grants and the key)."""
    main = [(q, p) for q, p in statements
            if q.lstrip().upper().startswith("SELECT") and ("ORDER BY" in q or "GROUP BY" in q)
            and ("audit_entries" in q or "signatures" in q)]
    if not main:
        return "      (no page query seen)"
    sql, params = main[0]
    prefix = "EXPLAIN QUERY PLAN " if ctx.db.dialect == "sqlite" else "EXPLAIN "
    with ctx.db.read() as session:
        rows = session.connection().exec_driver_sql(prefix + sql, params).all()
    return "\n".join("      " + " ".join(str(c) for c in r) for r in rows)


def summary(plan: str) -> str:
    """Which indexes the plan reads, and whether it sorts the matches (O(matches)) or reads
    them in the page's order from an index and stops at the page's end (O(page))."""
    used = sorted(set(re.findall(r"(?:USING (?:COVERING )?INDEX|Scan(?: Backward)? using|"
                                 r"Bitmap Index Scan on) (\w+)", plan)))
    if "PRIMARY KEY" in plan or "INTEGER PRIMARY KEY" in plan:
        used.append("primary key")
    sorts = "TEMP B-TREE FOR ORDER BY" in plan or re.search(r"(?<!Incremental )Sort ", plan)
    return (f"{'SORTS the matches' if sorts else 'index order'} "
            f"({', '.join(used) or 'no index'})")


def run(backend: str, entries: int) -> list[tuple[str, str, str]]:
    print(f"- {backend}: seeding {entries:,} signature entries", file=sys.stderr)
    out: list[tuple[str, str, str]] = []
    with installation(backend) as ctx:
        admin: Caller = ctx.admin  # type: ignore[attr-defined]
        state = Path(tempfile.mkdtemp(prefix="signgate-monitor-")) / "state.json"
        reader = ServiceLog(ctx)
        first = monitor(reader, state, log_reads.public_key(ctx).verifier_key)
        before = sizes(ctx)
        seconds = seed(ctx, entries)
        out.append((backend, "seed (audit writer + signature rows)",
                    f"{entries / seconds:,.0f} entries/s"))
        out += storage(before, sizes(ctx), entries, backend)
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
        deep = int(entries * 0.9)

        def report(**kw: Any) -> Callable[[], Any]:
            return lambda: reports.signatures(ctx, admin, reports.SignatureQuery(**kw))

        def log_page(**kw: Any) -> Callable[[], Any]:
            return lambda: audit.query(ctx, admin, audit.AuditQuery(**kw))

        queries: dict[str, Callable[[], Any]] = {
            "audit log --key, first page": log_page(key="acme-app/release"),
            f"audit log --key, page after {deep:,}": log_page(key="acme-app/release",
                                                              after=deep),
            "audit log --identity, first page": log_page(identity="release-bot"),
            f"audit log --identity, page after {deep:,}": log_page(identity="release-bot",
                                                                   after=deep),
            "audit log --key (1 in 100), first page": log_page(key="acme-tools/hotfix"),
            f"audit log --key (1 in 100), page after {deep:,}": log_page(
                key="acme-tools/hotfix", after=deep),
            "report --key, first page": report(key="acme-app/release"),
            "report --key (1 in 100), first page": report(key="acme-tools/hotfix"),
            f"report --key (1 in 100), page after {deep:,}": report(key="acme-tools/hotfix",
                                                                    after=deep),
            "report --project (1 in 100), first page": report(project="acme-tools"),
            "report --identity (1 in 100), first page": report(identity="hotfix-bot"),
            f"report --key, page after {deep:,}": report(key="acme-app/release", after=deep),
            "report --project, first page": report(project="acme-lib"),
            "report --identity, first page": report(identity="release-bot"),
            f"report --identity, page after {deep:,}": report(identity="release-bot",
                                                              after=deep),
            "report --key, one month, first page": lambda: reports.signatures(ctx, admin,
                                                                               month),
            "totals: one project, one month": lambda: reports.totals(
                ctx, admin, reports.SignatureQuery(project="acme-lib", since=month.since,
                                                   until=month.until)),
            "totals: everything": lambda: reports.totals(ctx, admin, reports.SignatureQuery()),
        }
        for name, query in queries.items():
            with captured(ctx) as statements:
                took, _ = timed(query)
            plan = explain_main(ctx, statements)
            out.append((backend, name, f"{took * 1000:,.1f} ms ({took:.3f} of the 1 s target); "
                        f"{summary(plan)}"))
            print(f"  plan of '{name}' ({backend}):\n{plan}", file=sys.stderr)
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
