"""What scanning before signing costs: scan-and-sign in MB/s beside clamdscan alone, and
the server's memory while it receives a big upload.

One clamd (scripts/clamd.sh, signgate's own signatures; no official databases here, so
both sides scan with the same small rule set) and one `signgate serve` with
scan_clamd_socket set. Then, in one run:

- `signgate sign FILE --key bench/scanned` on a random file of --size MB: upload (streamed),
  spooling with SHA-256, clamd INSTREAM, the server's own digest, signing, timestamp and
  audit entry; best of --runs;
- `clamdscan --stream FILE` against the same clamd (the scan alone; best of --runs);
- the server's peak RSS (VmHWM) after signing a --big-size MB file: memory must not grow
  with the artifact;
- the server's peak RSS while --concurrent uploads of --concurrent-size MiB each are
  scanned at once with YARA rules configured as well (YARA maps each artifact whole), on a
  fresh server each time: clamd alone, then YARA as well with scan_yara_max_concurrent
  --concurrent (no effective bound: the behaviour before the bound existed), 2 (the
  default) and 1.

    python bench/scan_throughput.py [--size 200] [--big-size 2000] [--runs 3]
                                    [--concurrent 8] [--concurrent-size 60] [--only-concurrent]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
    parser.add_argument("--runs", type=int, default=3)
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
            sign_s = best_of(args.runs, lambda: cli("sign", str(artifact), "--key",
                                                    "bench/scanned", "--no-progress"))
            conf = clamd_dir / "clamd.conf"
            scan_s = best_of(args.runs, lambda: subprocess.run(
                ["clamdscan", "--stream", f"--config-file={conf}", "--no-summary",
                 str(artifact)], check=True, capture_output=True))
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
    print(f"artifact {args.size} MiB, random data; clamd with signgate's signatures only")
    print(f"  signgate sign (upload + scan + sign): {sign_s:.2f} s  {mb / sign_s:7.1f} MB/s")
    print(f"  clamdscan --stream (scan only):       {scan_s:.2f} s  {mb / scan_s:7.1f} MB/s")
    print(f"  ratio signgate / clamdscan: {sign_s / scan_s:.2f}")
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
