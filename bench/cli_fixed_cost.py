"""The command line's fixed cost: ``signgate sign`` of a one-byte file, beside ``openssl``.

Starts `signgate serve` (SQLite) on a fresh data directory with an ecdsa-p256 key, then
runs, interleaved N times each: ``signgate sign FILE --key … --format raw`` (with and
without the default timestamp) against it, and ``openssl dgst -sha256 -sign key.pem`` of
the same file with a local P-256 key (the peer: what signing costs with the key on the
disk). Prints the median and p90 wall time of each, the median CPU time (user + system)
of the command's own process (robust when other work shares the cores: wall time then
includes waiting for a core and for the server), the ratio to openssl, the budget (0.15 s
wall for the untimestamped raw signing) and the load average. Also times
``signgate --help`` (it must stay fast).

    python bench/cli_fixed_cost.py [-n 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.sign_throughput import BIN, prepare, serving

import signgate

BUDGET = 0.15


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and the child's CPU time (user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20, help="runs of each command")
    args = p.parse_args()
    # The command as installed: pip compiles every module's bytecode at install, so a
    # development shell's PYTHONDONTWRITEBYTECODE (which makes each run compile signgate's
    # modules again) is not what users run; compile them once, as pip would.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SIGNGATE_") and k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    str(Path(signgate.__file__).parent)], check=True)
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        tmp = Path(d)
        one = tmp / "one.bin"
        one.write_bytes(b"x")
        key = tmp / "key.pem"
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", str(key)], check=True)
        with serving(tmp) as server:
            url, admin = server.url, server.admin
            token = prepare(url, admin)
            cli_env = {**env, "SIGNGATE_URL": url, "SIGNGATE_TOKEN": token}
            sign = [str(BIN / "signgate"), "sign", str(one), "--key", "bench/release",
                    "--format", "raw"]
            runs: dict[str, list[tuple[float, float]]] = {
                "signgate sign --no-timestamp": [], "signgate sign (timestamped)": [],
                "openssl dgst -sign": [], "signgate --help": []}
            commands = {
                "signgate sign --no-timestamp": [*sign, "--no-timestamp"],
                "signgate sign (timestamped)": sign,
                "openssl dgst -sign": ["openssl", "dgst", "-sha256", "-sign", str(key), "-out",
                                       str(tmp / "one.openssl.sig"), str(one)],
                "signgate --help": [str(BIN / "signgate"), "--help"]}
            for command in commands.values():  # warm the page cache
                timed(command, cli_env)
            for _ in range(args.n):
                for name, command in commands.items():
                    runs[name].append(timed(command, cli_env))
    def wall(name: str) -> list[float]:
        return [w for w, _ in runs[name]]

    peer = statistics.median(wall("openssl dgst -sign"))
    print(f"CLI fixed cost: 1-byte file, ecdsa-p256, {args.n} runs each (interleaved), "
          f"{os.cpu_count()} cores")
    print(f"{'command':32} {'median s':>9} {'p90 s':>7} {'cpu s':>6} {'x openssl':>10}")
    for name in runs:
        times = wall(name)
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) >= 2 else times[0]
        cpu = statistics.median(c for _, c in runs[name])
        print(f"{name:32} {statistics.median(times):9.3f} {p90:7.3f} {cpu:6.3f} "
              f"{statistics.median(times) / peer:10.1f}")
    untimestamped = statistics.median(wall("signgate sign --no-timestamp"))
    verdict = "within" if untimestamped <= BUDGET else "OVER"
    print(f"budget {BUDGET:.2f} s (signgate sign --no-timestamp): {verdict}; "
          f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
