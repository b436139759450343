"""Independent-build agreement over HTTP: what a builder's submission costs a caller.

Starts a real `signgate serve` (SQLite, or PostgreSQL with --backend postgres), makes a
key that needs two builders, and for N releases in turn, one client at a time, times: the
first builder's submission answered 202 (the release's request, its `request.create` and
`request.build` entries), the second builder's, which signs before it answers (its
`request.build` entry, the conditional update, the signature through the signing
pipeline), and a mismatching third builder's refusal (409: `request.mismatch`, the
release stopped; on a separate release each time). A plain signing is timed alongside.

    python bench/builder_latency.py [--releases 50] [--backend sqlite|postgres]
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

SIGN = "/api/v1/projects/bench/keys/{}/sign"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--releases", type=int, default=50)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = p.parse_args()
    with ExitStack() as stack:
        url = (stack.enter_context(postgres.temporary_database())
               if args.backend == "postgres" else None)
        srv = start_server(Path(tempfile.mkdtemp()) / "data", url)
        stack.callback(srv.stop)
        srv.cli("project", "create", "bench")
        for key in ("k", "plain"):
            srv.cli("key", "create", f"bench/{key}")
        srv.cli("key", "policy", "bench/k", "--require-builders", "2")
        tokens = []
        for name in ("gh", "gl", "evil"):
            tokens.append(srv.new_identity(name))
            srv.cli("grant", "add", name, "signer", "bench")
        times: dict[str, list[float]] = {"plain signing (200)": [],
                                         "first builder (202)": [],
                                         "second builder, signing included (200)": [],
                                         "mismatching builder (409)": []}
        steps = list(times.values())
        with srv.http(tokens[0]) as one, srv.http(tokens[1]) as two, \
                srv.http(tokens[2]) as evil:
            for i in range(args.releases):
                digest = hashlib.sha256(str(i).encode()).hexdigest()
                other = hashlib.sha256(f"evil {i}".encode()).hexdigest()
                plain = {"digest": digest, "artifact_name": f"a{i}.bin"}
                body = {**plain, "release": f"r{i}"}
                for step, client, path, json, status in (
                        (0, one, SIGN.format("plain"), plain, 200),
                        (1, one, SIGN.format("k"), body, 202),
                        (2, two, SIGN.format("k"), body, 200),
                        (1, one, SIGN.format("k"), {**body, "release": f"s{i}"}, 202),
                        (3, evil, SIGN.format("k"), {**body, "release": f"s{i}",
                                                     "digest": other}, 409)):
                    t = time.perf_counter()
                    r = client.post(path, json=json)
                    elapsed = time.perf_counter() - t
                    assert r.status_code == status, r.text
                    if not (step == 1 and json["release"].startswith("s")):
                        steps[step].append(elapsed)
    print(f"{args.backend}, {args.releases} releases, one client at a time")
    for name, xs in times.items():
        xs.sort()
        print(f"  {name}: p50 {statistics.median(xs) * 1000:.1f} ms, "
              f"p90 {xs[int(len(xs) * 0.9)] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
