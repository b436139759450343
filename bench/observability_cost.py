"""What observability costs the signing path: metrics and the access log on against off.

Two measurements, each side by side in the same run:

1. The ASGI wrapper alone (api/observe.py), in process: a trivial ASGI endpoint called
   N times bare, then wrapped with request ids only (``metrics = "off"``), with the
   latency histogram (the default), and with the access log too (written to /dev/null).
   Prints CPU microseconds per request (thread CPU time: steadier than wall time on a
   shared machine) and the extra cost over the bare call.
2. The whole server: three `signgate serve` (SQLite, as bench/sign_throughput.py) on
   fresh data directories, ``metrics = "off"``, the default ``metrics = "token"``, and
   ``"token"`` with ``access_log = true`` (standard error to /dev/null), plus the bare
   ceiling (bench/bare_app.py). wrk POSTs digests to each (N clients, D seconds),
   ``--rounds`` times in alternating order; the means count. Prints signatures/s,
   p50/p99, the ratio to metrics off and to the ceiling, each server's CPU time per
   request (/proc: steadier than throughput on a busy machine) and the machine's load.

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
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sign_throughput import (
    BIN,
    ROOT,
    Result,
    free_port,
    prepare,
    run_wrk,
    sign_script,
    wait_healthy,
)
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
    """CPU microseconds per request: this thread's CPU time, which the other processes of
    a busy machine do not inflate the way they inflate wall time."""
    started = time.thread_time()
    for _ in range(calls):
        await app(dict(_SCOPE), _receive, _send)
    return (time.thread_time() - started) / calls * 1e6


def wrapper_cost(calls: int) -> None:
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    apps = {
        "bare endpoint": _endpoint,
        "+ request id (metrics off)": Observe(_endpoint, timed=False),
        "+ latency histogram (default)": Observe(_endpoint, timed=True),
        "+ access log": Observe(_endpoint, timed=True, access_log=log),
    }
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(5):  # interleaved rounds; the best of each counts (least disturbed)
        for name, app in apps.items():
            results[name].append(asyncio.run(_per_call(app, calls)))
    bare = min(results["bare endpoint"])
    print(f"1. the ASGI wrapper, {calls} calls x 5 rounds (best round), load {load()}")
    print(f"   {'':32} {'CPU us/req':>11} {'extra us':>9} {'ratio':>6}")
    for name, values in results.items():
        best = min(values)
        print(f"   {name:32} {best:11.2f} {best - bare:9.2f} {best / bare:6.2f}")


# -- 2. the whole server ---------------------------------------------------------------

@contextlib.contextmanager
def _process(cmd: list[str], env: dict[str, str], url: str, path: str) -> Iterator[int]:
    """Run a server (as sign_throughput.running does) and yield its process id."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(url, proc, path)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(name: str, config: str, tmp: Path,
           stack: contextlib.ExitStack) -> tuple[str, str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    data = tmp / "".join(c if c.isalnum() else "-" for c in name)
    subprocess.run([str(BIN / "signgate"), "init", "--data-dir", str(data)], env=env,
                   check=True, capture_output=True)
    with (data / "config.toml").open("a") as f:
        f.write(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pid = stack.enter_context(_process([str(BIN / "signgate"), "serve", "--data-dir",
                                        str(data), "--port", str(port)], env, url, "/healthz"))
    token = prepare(url, (data / "admin.token").read_text().strip())
    return url, token, pid


def server_cost(args: argparse.Namespace, tmp: Path) -> None:
    with contextlib.ExitStack() as stack:
        configs = dict(CONFIGS)
        if args.control:  # the same configuration twice: how far apart noise alone puts them
            configs["metrics off (control)"] = CONFIGS["metrics off"]
        servers = {name: _serve(name, config, tmp, stack) for name, config in configs.items()}
        port = free_port()
        bare_url = f"http://127.0.0.1:{port}"
        bare_pid = stack.enter_context(_process(
            [str(BIN / "uvicorn"), "bench.bare_app:create", "--factory", "--port", str(port),
             "--no-access-log", "--log-level", "warning"],
            {**os.environ, "PYTHONPATH": str(ROOT)}, bare_url, "/docs"))
        targets = {**servers, "ceiling (bare endpoint)": (bare_url, "none", bare_pid)}
        scripts = {}
        for i, (name, (_, token, _)) in enumerate(targets.items()):
            (tmp / f"wrk-{i}").mkdir()
            scripts[name] = sign_script(token, tmp / f"wrk-{i}")
        for name, (url, _, _) in targets.items():  # warm-up
            run_wrk(url + SIGN_PATH, scripts[name], args.clients, 2)
        runs: dict[str, list[Result]] = {name: [] for name in targets}
        cpu: dict[str, float] = dict.fromkeys(targets, 0.0)
        before = load()
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                url, _, pid = targets[name]
                used = cpu_seconds(pid)
                runs[name].append(run_wrk(url + SIGN_PATH, scripts[name], args.clients,
                                          args.duration))
                cpu[name] += cpu_seconds(pid) - used
        after = load()
    mean = {n: statistics.mean(x.rps for x in rs) for n, rs in runs.items()}
    # The server's CPU per request: what the machine's other load does not change much.
    per = {n: cpu[n] * 1000 / max(1, sum(x.requests for x in runs[n])) for n in runs}
    off, ceiling = "metrics off", "ceiling (bare endpoint)"
    print(f"2. signgate serve (SQLite), {args.clients} clients, {args.duration}s x "
          f"{args.rounds} rounds, alternating; load before {before}, after {after}")
    print(f"   {'':26} {'sig/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'vs off':>7} {'vs ceil':>7} {'CPU ms/sig':>10} {'vs off':>7}")
    for name, rs in runs.items():
        print(f"   {name:26} {mean[name]:7.0f} {statistics.mean(x.p50_ms for x in rs):7.2f} "
              f"{statistics.mean(x.p99_ms for x in rs):7.2f} {sum(x.errors for x in rs):6d} "
              f"{mean[name] / mean[off]:7.3f} {mean[name] / mean[ceiling]:7.3f} "
              f"{per[name]:10.3f} {per[name] / per[off]:7.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--skip-server", action="store_true", help="only the in-process part")
    p.add_argument("--control", action="store_true",
                   help="a second 'metrics off' server: the noise between equal servers")
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
