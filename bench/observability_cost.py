"""What observability costs the signing path: metrics and the access log on against off.

Two measurements, each side by side in the same run:

1. The ASGI wrapper alone (api/observe.py), in process: a trivial ASGI endpoint called
   N times bare, then wrapped with request ids only (``metrics = "off"``), with the
   latency histogram (the default), and with the access log too (written to /dev/null).
   Prints microseconds per request and the extra cost over the bare call.
2. The whole server: three `signgate serve` (SQLite, as bench/sign_throughput.py) on
   fresh data directories, ``metrics = "off"``, the default ``metrics = "token"``, and
   ``"token"`` with ``access_log = true`` (standard error to /dev/null), plus the bare
   ceiling (bench/bare_app.py). wrk POSTs digests to each (N clients, D seconds),
   ``--rounds`` times in alternating order; the means count. Prints signatures/s,
   p50/p99, the ratio to metrics off and to the ceiling, and the machine's load.

    python bench/observability_cost.py [--clients 64] [--duration 8] [--rounds 2]
                                       [--calls 200000]

Needs wrk (Debian package 'wrk').
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sign_throughput import BIN, ROOT, Result, free_port, prepare, run_wrk, running, sign_script
from signgate.api.observe import AccessLog, Observe

SIGN_PATH = "/api/v1/projects/bench/keys/release/sign"
CONFIGS = {
    "metrics off": 'metrics = "off"\n',
    "metrics on (default)": "",
    "metrics + access log": "access_log = true\n",
}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- 1. the wrapper alone --------------------------------------------------------------

_SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
          "scheme": "http", "path": SIGN_PATH, "raw_path": SIGN_PATH.encode(),
          "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
          "server": ("127.0.0.1", 8080),
          "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"),
                      (b"content-type", b"application/json"),
                      (b"authorization", b"Bearer sgt_x"), (b"content-length", b"120")]}
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]}
_BODY = {"type": "http.response.body", "body": b"{}"}


async def _endpoint(scope: Any, receive: Any, send: Any) -> None:
    scope["signgate.route"] = "/api/v1/projects/{project}/keys/{key}/sign"
    await send(dict(_START))
    await send(_BODY)


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def _per_call(app: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await app(dict(_SCOPE), _receive, _send)
    return (time.perf_counter() - started) / calls * 1e6


def wrapper_cost(calls: int) -> None:
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    apps = {
        "bare endpoint": _endpoint,
        "+ request id (metrics off)": Observe(_endpoint, timed=False),
        "+ latency histogram (default)": Observe(_endpoint, timed=True),
        "+ access log": Observe(_endpoint, timed=True, access_log=log),
    }
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(3):  # interleaved rounds; the best of each counts (least disturbed)
        for name, app in apps.items():
            results[name].append(asyncio.run(_per_call(app, calls)))
    bare = min(results["bare endpoint"])
    print(f"1. the ASGI wrapper, {calls} calls x 3 rounds (best round), load {load()}")
    print(f"   {'':32} {'us/request':>11} {'extra us':>9} {'ratio':>6}")
    for name, values in results.items():
        best = min(values)
        print(f"   {name:32} {best:11.2f} {best - bare:9.2f} {best / bare:6.2f}")


# -- 2. the whole server ---------------------------------------------------------------

def _serve(name: str, config: str, tmp: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    data = tmp / name.replace(" ", "-").replace("(", "").replace(")", "")
    subprocess.run([str(BIN / "signgate"), "init", "--data-dir", str(data)], env=env,
                   check=True, capture_output=True)
    with (data / "config.toml").open("a") as f:
        f.write(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(running([str(BIN / "signgate"), "serve", "--data-dir", str(data),
                                 "--port", str(port)], env, url, "/healthz"))
    token = prepare(url, (data / "admin.token").read_text().strip())
    return url, token


def server_cost(args: argparse.Namespace, tmp: Path) -> None:
    with contextlib.ExitStack() as stack:
        servers = {name: _serve(name, config, tmp, stack) for name, config in CONFIGS.items()}
        port = free_port()
        bare_url = f"http://127.0.0.1:{port}"
        stack.enter_context(running(
            [str(BIN / "uvicorn"), "bench.bare_app:create", "--factory", "--port", str(port),
             "--no-access-log", "--log-level", "warning"],
            {**os.environ, "PYTHONPATH": str(ROOT)}, bare_url, "/docs"))
        targets = {**{n: (u, t) for n, (u, t) in servers.items()},
                   "ceiling (bare endpoint)": (bare_url, "none")}
        scripts = {}
        for i, (name, (_, token)) in enumerate(targets.items()):
            (tmp / f"wrk-{i}").mkdir()
            scripts[name] = sign_script(token, tmp / f"wrk-{i}")
        for name, (url, _) in targets.items():  # warm-up
            run_wrk(url + SIGN_PATH, scripts[name], args.clients, 2)
        runs: dict[str, list[Result]] = {name: [] for name in targets}
        before = load()
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                url, _ = targets[name]
                runs[name].append(run_wrk(url + SIGN_PATH, scripts[name], args.clients,
                                          args.duration))
        after = load()
    mean = {n: statistics.mean(x.rps for x in rs) for n, rs in runs.items()}
    off, ceiling = mean["metrics off"], mean["ceiling (bare endpoint)"]
    print(f"2. signgate serve (SQLite), {args.clients} clients, {args.duration}s x "
          f"{args.rounds} rounds, alternating; load before {before}, after {after}")
    print(f"   {'':26} {'sig/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'vs off':>7} {'vs ceiling':>10}")
    for name, rs in runs.items():
        print(f"   {name:26} {mean[name]:8.0f} {statistics.mean(x.p50_ms for x in rs):7.2f} "
              f"{statistics.mean(x.p99_ms for x in rs):7.2f} {sum(x.errors for x in rs):6d} "
              f"{mean[name] / off:7.3f} {mean[name] / ceiling:10.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--skip-server", action="store_true", help="only the in-process part")
    args = p.parse_args()
    wrapper_cost(args.calls)
    if args.skip_server:
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        server_cost(args, Path(d))


if __name__ == "__main__":
    main()
