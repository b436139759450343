"""Release windows and quotas: what the count inside the signing transaction costs.

On the service layer (the signing pipeline, no HTTP), SQLite or PostgreSQL, three keys
signed in turn, one signing at a time, interleaved so that each sees the same database:
a plain key, a key with a daily quota per identity (its count of today's signatures by
the identity, made in the transaction), and an offline key inside an open release window
(its windows read, its counter updated, in the transaction).

    python bench/window_quota_cost.py [--signings 300] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.test_service import T0, make_env, new_key
from tests.support import postgres

from signgate.service import keys, windows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--signings", type=int, default=300)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = p.parse_args()
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (stack.enter_context(postgres.temporary_database())
               if args.backend == "postgres" else f"sqlite:///{data / 'bench.db'}")
        env = make_env(url, data)
        stack.callback(env.ctx.close)
        keys_by_mode = {}
        for mode in ("plain", "quota", "offline"):
            ref = new_key(env, name=mode)
            caller = env.signer(f"ci-{mode}", ref)
            if mode == "quota":
                keys.set_release_policy(env.ctx, env.admin, ref,
                                        max_per_identity_per_day=10**6)
            if mode == "offline":
                keys.set_release_policy(env.ctx, env.admin, ref, offline=True)
                windows.open_window(env.ctx, env.admin, ref, T0 + timedelta(days=1))
            for i in range(20):  # warm-up
                env.sign(caller, ref, b"warm %d" % i)
            keys_by_mode[mode] = (caller, ref)
        times: dict[str, list[float]] = {m: [] for m in keys_by_mode}
        for i in range(args.signings):
            for mode, (caller, ref) in keys_by_mode.items():
                t = time.perf_counter()
                env.sign(caller, ref, b"%s %d" % (mode.encode(), i))
                times[mode].append((time.perf_counter() - t) * 1000)
        for mode, ms in times.items():
            ms.sort()
            n = len(ms)
            print(f"{args.backend:8} {mode:8} p50 {ms[n // 2]:6.2f} ms  "
                  f"p90 {ms[n * 9 // 10]:6.2f} ms")


if __name__ == "__main__":
    main()
