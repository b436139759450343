"""What scanning before signing costs: scan-and-sign in MB/s beside clamdscan alone, and
the server's memory while it receives a big upload.

One clamd (scripts/clamd.sh, signgate's own signatures; no official databases here, so
both sides scan with the same small rule set) and one `signgate serve` with
scan_clamd_socket set. Then, in one run:

- `signgate sign FILE --key bench/scanned` on a random file of --size MB: the command
  line starting, upload (streamed, hashed as it is sent), spooling with SHA-256, clamd
  handed the spooled file, signing, timestamp and audit entry;
- `clamdscan --stream FILE` against the same clamd (the scan alone, the peer);
- `clamdscan --fdpass FILE`: clamd's scan with no transfer at all (the floor of both);
- `signgate sign` of a one-byte file: the command line's fixed cost (start, two requests);

  --runs rounds of these four, interleaved so that each sees the same load of the shared
  machine; best and median of each, the ratio to clamdscan --stream, MB/s, the CPU seconds
  each process spent (the caller: the command line; signgate's server; clamd), and the
  load average around them;
- the server's peak RSS (VmHWM) after signing a --big-size MB file: memory must not grow
  with the artifact;
- the server's peak RSS while --concurrent uploads of --concurrent-size MiB each are
  scanned at once with YARA rules configured as well (YARA maps each artifact whole), on a
  fresh server each time: clamd alone, then YARA as well with scan_yara_max_concurrent
  --concurrent (no effective bound: the behaviour before the bound existed), 2 (the
  default) and 1.

    python bench/scan_throughput.py [--size 200] [--big-size 2000] [--runs 5]
                                    [--concurrent 8] [--concurrent-size 60] [--only-concurrent]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from sign_throughput import BIN, free_port, running

ROOT = Path(__file__).resolve().parent.parent


def random_file(path: Path, size_mb: int) -> Path:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(size_mb):
            # Fresh bytes every 64 MiB: no long runs a scanner could skip.
            if i % 64 == 0:
                chunk = os.urandom(1 << 20)
            f.write(chunk)
    return path


def best_of(runs: int, action: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


@dataclass(frozen=True)
class Sample:
    seconds: float  # wall
    caller: float  # CPU seconds of the command run (signgate's CLI, or clamdscan)
    server: float  # of signgate's server meanwhile
    clamd: float  # of clamd meanwhile


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far (utime + stime, /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(action: Callable[[], None], server_pid: int, clamd_pid: int) -> Sample:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server, clamd = cpu_seconds(server_pid), cpu_seconds(clamd_pid)
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    caller = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return Sample(seconds, caller, cpu_seconds(server_pid) - server,
                  cpu_seconds(clamd_pid) - clamd)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def peak_rss_mb(pid: int) -> float:
    """VmHWM of ``pid`` and its children (uvicorn serves in the process it starts)."""
    peak = 0
    for candidate in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{candidate}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200, help="MB, for the throughput run")
    parser.add_argument("--big-size", type=int, default=2000, help="MB, for the memory run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=8, help="uploads at once")
    parser.add_argument("--concurrent-size", type=int, default=60, help="MiB each")
    parser.add_argument("--only-concurrent", action="store_true",
                        help="only the concurrent-upload memory runs")
    args = parser.parse_args()
    if not shutil.which("clamdscan") or not shutil.which("clamd"):
        sys.exit("clamd and clamdscan are needed (apt-get install clamav-daemon)")
    tmp = Path(tempfile.mkdtemp(prefix="signgate-scan-bench-"))
    clamd_dir = tmp / "clamd"
    empty = tmp / "no-official-databases"
    empty.mkdir()
    env = {**os.environ, "CLAMAV_DATABASE_DIR": str(empty)}
    clamd = subprocess.Popen([str(ROOT / "scripts" / "clamd.sh"), "--max-size", "2047",
                              str(clamd_dir)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(600):
            if (clamd_dir / "clamd.sock").exists():
                break
            time.sleep(0.05)
        if args.only_concurrent:
            concurrent_memory(tmp, clamd_dir / "clamd.sock", args.concurrent,
                              args.concurrent_size)
            return
        data = tmp / "data"
        subprocess.run([BIN / "signgate", "init", "--data-dir", str(data)], check=True,
                       capture_output=True)
        with (data / "config.toml").open("a") as f:
            f.write(f'scan_clamd_socket = "{clamd_dir / "clamd.sock"}"\n'
                    f"scan_max_bytes = {3 << 30}\nscan_timeout_seconds = 600\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        admin = (data / "admin.token").read_text().strip()
        cli_env = {**os.environ, "SIGNGATE_URL": url, "SIGNGATE_TOKEN": admin}
        serve = [str(BIN / "signgate"), "serve", "--data-dir", str(data), "--port", str(port)]
        with running(serve, {**os.environ}, url, "/healthz"):
            server_pid = _server_pid(port)

            def cli(*a: str) -> None:
                subprocess.run([BIN / "signgate", *a], env=cli_env, check=True,
                               capture_output=True)

            cli("project", "create", "bench")
            cli("grant", "add", "admin", "signer", "bench")
            cli("key", "create", "bench/scanned", "--scan", "required")
            artifact = random_file(tmp / "artifact.bin", args.size)
            one_byte = tmp / "one.bin"
            one_byte.write_bytes(b"x")
            conf = clamd_dir / "clamd.conf"

            def clamdscan(mode: str) -> None:
                subprocess.run(["clamdscan", mode, f"--config-file={conf}", "--no-summary",
                                str(artifact)], check=True, capture_output=True)

            cases: dict[str, Callable[[], None]] = {
                "sign": lambda: cli("sign", str(artifact), "--key", "bench/scanned",
                                    "--no-progress"),
                "stream": lambda: clamdscan("--stream"),
                "fdpass": lambda: clamdscan("--fdpass"),
                "sign1": lambda: cli("sign", str(one_byte), "--key", "bench/scanned",
                                     "--no-progress"),
            }
            for action in cases.values():  # warm: page cache, clamd's engine, the server
                action()
            load_before = loadavg()
            runs: dict[str, list[Sample]] = {name: [] for name in cases}
            for _ in range(args.runs):
                for name, action in cases.items():
                    runs[name].append(measure(action, server_pid, clamd.pid))
            load_after = loadavg()
            rss_before = peak_rss_mb(server_pid)
            artifact.unlink()
            big = random_file(tmp / "big.bin", args.big_size)
            big_s = best_of(1, lambda: cli("sign", str(big), "--key", "bench/scanned",
                                           "--no-progress"))
            rss_after = peak_rss_mb(server_pid)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as h:
                verified = h.get("/api/v1/audit/verify").json()
    finally:
        os.killpg(clamd.pid, 15)
        clamd.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)
    mb = args.size * (1 << 20) / 1e6
    print(f"artifact {args.size} MiB, random data; clamd with signgate's signatures only; "
          f"{args.runs} interleaved runs; load average {load_before} before, {load_after} "
          f"after ({os.cpu_count()} cores)")
    labels = {"sign": "signgate sign (upload + scan + sign)",
              "stream": "clamdscan --stream (the peer)",
              "fdpass": "clamdscan --fdpass (clamd's scan alone)",
              "sign1": "signgate sign of a 1-byte file (fixed cost)"}
    print(f"  {'':44} {'best s':>7} {'median':>7} {'MB/s':>7}   CPU s: caller  server  clamd")
    for name, label in labels.items():
        best = min(runs[name], key=lambda r: r.seconds)
        median = statistics.median(r.seconds for r in runs[name])
        rate = f"{mb / best.seconds:7.1f}" if name != "sign1" else f"{'':7}"
        cpu = (f"{statistics.median(r.caller for r in runs[name]):6.2f} "
               f"{statistics.median(r.server for r in runs[name]):7.2f} "
               f"{statistics.median(r.clamd for r in runs[name]):6.2f}")
        print(f"  {label:44} {best.seconds:7.2f} {median:7.2f} {rate}   {'':7}{cpu}")

    def ratio(pick: Callable[[list[float]], float]) -> float:
        return (pick([r.seconds for r in runs["sign"]])
                / pick([r.seconds for r in runs["stream"]]))

    print(f"  ratio signgate / clamdscan --stream: {ratio(min):.2f} (best), "
          f"{ratio(statistics.median):.2f} (median)")
    big_mb = args.big_size * (1 << 20) / 1e6
    print(f"big artifact {args.big_size} MiB: signed in {big_s:.1f} s "
          f"({big_mb / big_s:.1f} MB/s)")
    print(f"  server peak RSS: {rss_before:.0f} MB before it, {rss_after:.0f} MB after it")
    print(f"  audit chain intact: {verified.get('ok')} ({verified.get('entries')} entries)")
    if args.concurrent:
        tmp = Path(tempfile.mkdtemp(prefix="signgate-scan-bench-"))
        clamd = subprocess.Popen([str(ROOT / "scripts" / "clamd.sh"), str(tmp / "clamd")],
                                 env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while not (tmp / "clamd" / "clamd.sock").exists():
                time.sleep(0.05)
            concurrent_memory(tmp, tmp / "clamd" / "clamd.sock", args.concurrent,
                              args.concurrent_size)
        finally:
            os.killpg(clamd.pid, 15)
            clamd.wait(20)
            shutil.rmtree(tmp, ignore_errors=True)


def concurrent_memory(tmp: Path, clamd_socket: Path, count: int, size_mb: int) -> None:
    """Peak server RSS while ``count`` uploads of ``size_mb`` MiB are scanned at once
    (clamd and YARA), for several values of scan_yara_max_concurrent."""
    rules = tmp / "yara"
    rules.mkdir(exist_ok=True)
    (rules / "marker.yar").write_text(
        'rule marker { strings: $a = "NOT-IN-RANDOM-DATA-1234" condition: $a }\n')
    artifact = random_file(tmp / "concurrent.bin", size_mb)
    print(f"{count} concurrent uploads of {size_mb} MiB to POST /api/v1/scan "
          "(clamd and YARA configured):")
    for slots in dict.fromkeys([0, count, 2, 1]):  # 0: no YARA rules, clamd alone
        data = tmp / f"data-{slots}"
        subprocess.run([BIN / "signgate", "init", "--data-dir", str(data)], check=True,
                       capture_output=True)
        with (data / "config.toml").open("a") as f:
            f.write(f'scan_clamd_socket = "{clamd_socket}"\nscan_timeout_seconds = 600\n'
                    f"upload_max_concurrent_per_identity = {count}\n")
            if slots:
                f.write(f'scan_yara_dir = "{rules}"\nscan_yara_max_concurrent = {slots}\n')
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        admin = (data / "admin.token").read_text().strip()
        cli_env = {**os.environ, "SIGNGATE_URL": url, "SIGNGATE_TOKEN": admin}
        serve = [str(BIN / "signgate"), "serve", "--data-dir", str(data), "--port", str(port)]
        with running(serve, {**os.environ}, url, "/healthz"):
            pid = _server_pid(port)
            for command in (["project", "create", "bench"],
                            ["grant", "add", "admin", "signer", "bench"]):
                subprocess.run([BIN / "signgate", *command], env=cli_env, check=True,
                               capture_output=True)
            idle = peak_rss_mb(pid)
            started = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                statuses = list(pool.map(lambda i, u=url, t=admin: _upload(u, t, artifact, i),
                                         range(count)))
            took = time.perf_counter() - started
            peak = peak_rss_mb(pid)
        label = ("clamd only, no YARA" if not slots else
                 f"YARA, scan_yara_max_concurrent = {slots}"
                 + (" (no effective bound)" if slots == count else ""))
        print(f"  {label}: peak RSS {peak:.0f} MB "
              f"(idle {idle:.0f} MB), {took:.1f} s, statuses {sorted(set(statuses))}")


def _upload(url: str, token: str, artifact: Path, i: int) -> int:
    def chunks() -> Iterator[bytes]:
        with artifact.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    with httpx.Client(base_url=url, timeout=600,
                      headers={"Authorization": f"Bearer {token}"}) as h:
        r = h.post("/api/v1/scan", params={"name": f"a{i}.bin"}, content=chunks(),
                   headers={"Content-Length": str(artifact.stat().st_size)})
    return r.status_code


def _server_pid(port: int) -> int:
    """The process listening on ``port`` (the uvicorn server)."""
    out = subprocess.run(["ss", "-ltnp", f"sport = :{port}"], capture_output=True, text=True)
    marker = "pid="
    start = out.stdout.find(marker)
    if start < 0:
        sys.exit(f"cannot find the server process on port {port}: {out.stdout}")
    return int(out.stdout[start + len(marker):].split(",")[0])


if __name__ == "__main__":
    main()
