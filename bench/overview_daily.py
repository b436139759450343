"""The console overview's chart query (``reports.daily``): signatures and refusals per
project per day over 30 days, one grouped query, on N signing entries spread over 40 days.

The entries are inserted directly, in time order as the log holds them (a bench of the
read, not of signing: their hashes are not a chain). Prints the query's best time of 5 for
the admin (every project) and for an auditor of one project.

    python bench/overview_daily.py [--entries 100000] [--spread-days 40]
                                   [--backend sqlite|postgres]

Measured (2 cores, 100k entries over 40 days, 75k of them in the window): SQLite 82 ms,
PostgreSQL 61 ms for the admin; 25 ms and 23 ms for an auditor of one project. SQLite with
400k entries over 160 days (the same 75k in the window): 125 ms for the admin (the window
read from the time index, not the whole log), 101 ms for the auditor (its project's
entries read through the project index).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text
from tests.integration.test_service import make_env, new_key
from tests.support import postgres

from signgate.service import grants, identities, reports
from signgate.service.context import Caller
from signgate.store.models import AuditEntry

PROJECTS = ["app", "firmware", "tools", "web", "mobile"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--spread-days", type=int, default=40,
                   help="the entries' times span this many days up to now")
    p.add_argument("--keep", type=Path, help="copy the SQLite database here afterwards")
    args = p.parse_args()
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (stack.enter_context(postgres.temporary_database())
               if args.backend == "postgres" else f"sqlite:///{data / 'bench.db'}")
        env = make_env(url, data)
        stack.callback(env.ctx.close)
        for project in PROJECTS:
            new_key(env, project, "k")
        token = identities.create(env.ctx, env.admin, "aud").token
        grants.add(env.ctx, env.admin, "aud", "auditor", "tools")
        now = env.clock.now()
        rng = random.Random(1)
        with env.ctx.db.write() as conn:
            first = conn.execute(text("SELECT max(seq) FROM audit_entries")).scalar_one() + 1
            rows = []
            # In time order, as the log records them.
            times = sorted(now - timedelta(seconds=rng.uniform(0, args.spread_days * 86400))
                           for _ in range(args.entries))
            for seq, at in enumerate(times, start=first):
                project = rng.choice(PROJECTS)
                rows.append({
                    "seq": seq, "time": at,
                    "actor": "ci", "action": "signature.create",
                    "outcome": "refused" if rng.random() < 0.03 else "allowed",
                    "subject": "a.bin", "project": project, "key_ref": f"{project}/k",
                    "details": '{"format": "raw"}', "prev_hash": "0" * 64,
                    "entry_hash": "0" * 64})
                if len(rows) == 10_000:
                    conn.execute(insert(AuditEntry), rows)
                    rows = []
            if rows:
                conn.execute(insert(AuditEntry), rows)
            conn.execute(text("ANALYZE"))
        since = now - timedelta(days=30)
        for who, caller in (("admin", env.admin), ("auditor of one project",
                                                   Caller(token, "127.0.0.1"))):
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                counts = reports.daily(env.ctx, caller, since)
                best = min(best, time.perf_counter() - started)
            total = sum(c.signatures + c.refusals for c in counts)
            print(f"{args.backend} {args.entries} entries, {who}: {len(counts)} groups, "
                  f"{total} entries counted, best of 5: {best * 1000:.1f} ms")
        if args.keep and args.backend == "sqlite":
            import shutil
            shutil.copy(data / "bench.db", args.keep)


if __name__ == "__main__":
    main()
