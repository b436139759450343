"""Authenticode signing of a ~100 MB PE: signgate (remote key) beside osslsigncode (local key).

- signgate: `signgate sign BIG.exe --format authenticode -o OUT` against a real
  `signgate serve` (SQLite): the client computes the PE image hash, the server signs with
  an rsa-3072 PKCS#1 v1.5 key and timestamps with its own TSA, the client writes the
  signed copy. Wall time of the whole CLI process.
- osslsigncode: `osslsigncode sign` with a local rsa-3072 key made by openssl (not a
  signgate key) and `-ts http://127.0.0.1:PORT/tsa`, the same TSA.

The PE is a mingw-w64 hello-world with a 100 MB overlay (as installers carry their
payload). Prints the best of N runs of each and the ratio (target: signgate <= 1.2x),
and checks that osslsigncode verifies both outputs.

    python bench/authenticode_vs_osslsigncode.py [--size-mb 100] [--runs 3]

Needs osslsigncode, openssl and x86_64-w64-mingw32-gcc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sign_throughput import BIN, free_port, running

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'


def build_pe(tmp: Path, size_mb: int) -> Path:
    source = tmp / "hello.c"
    source.write_text(HELLO_C)
    exe = tmp / "hello.exe"
    subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-s", "-o", str(exe), str(source)],
                   check=True)
    big = tmp / "big.exe"
    with big.open("wb") as f:
        f.write(exe.read_bytes())
        for _ in range(size_mb):
            f.write(os.urandom(1 << 20))
        f.write(b"odd")  # not 8-aligned: the padding path
    return big


def best_of(runs: int, action: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def crls_pem(url: str, paths: list[str], out: Path) -> Path:
    """signgate's CRLs as one PEM file (osslsigncode cannot reach their published URL)."""
    pems = []
    for path in paths:
        der = httpx.get(url + path, timeout=30).content
        pems.append(subprocess.run(["openssl", "crl", "-inform", "DER"], input=der,
                                   capture_output=True, check=True).stdout.decode())
    out.write_text("".join(pems))
    return out


def verified(path: Path, ca: Path, tsa_ca: Path, crls: Path) -> bool:
    out = subprocess.run(["osslsigncode", "verify", "-in", str(path), "-CAfile", str(ca),
                          "-TSA-CAfile", str(tsa_ca), "-CRLfile", str(crls),
                          "-TSA-CRLfile", str(crls)], capture_output=True, text=True)
    printed = out.stdout + out.stderr
    return ("Signature verification: ok" in printed
            and "Timestamp Server Signature verification: ok" in printed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    for tool in ("osslsigncode", "openssl", "x86_64-w64-mingw32-gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    signgate = str(BIN / "signgate")
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        tmp = Path(d)
        big = build_pe(tmp, args.size_mb)
        print(f"authenticode: {big.stat().st_size / 1e6:.1f} MB PE, best of {args.runs}, "
              f"{os.cpu_count()} cores")
        data = tmp / "data"
        subprocess.run([signgate, "init", "--data-dir", str(data)], env=env, check=True,
                       capture_output=True)
        admin = (data / "admin.token").read_text().strip()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cli_env = {**env, "SIGNGATE_URL": url, "SIGNGATE_TOKEN": admin}

        def cli(*argv: str) -> str:
            return subprocess.run([signgate, *argv], env=cli_env, check=True,
                                  capture_output=True, text=True).stdout

        cmd = [signgate, "serve", "--data-dir", str(data), "--port", str(port)]
        with running(cmd, env, url, "/healthz"):
            cli("project", "create", "bench")
            cli("grant", "add", "admin", "signer", "bench")
            cli("key", "create", "bench/pe", "--algorithm", "rsa-3072", "--rsa-padding",
                "pkcs1v15")
            root = tmp / "root.pem"
            root.write_text(cli("ca", "cert"))
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes",
                            "-keyout", str(tmp / "dev.key"), "-out", str(tmp / "dev.pem"),
                            "-subj", "/CN=bench developer", "-days", "2", "-addext",
                            "extendedKeyUsage=codeSigning"], check=True, capture_output=True)
            ours = tmp / "signgate.exe"
            theirs = tmp / "osslsigncode.exe"

            def sign_signgate() -> None:
                cli("sign", str(big), "--key", "bench/pe", "--format", "authenticode",
                    "-o", str(ours), "--no-progress")

            def sign_osslsigncode() -> None:
                theirs.unlink(missing_ok=True)
                subprocess.run(["osslsigncode", "sign", "-certs", str(tmp / "dev.pem"),
                                "-key", str(tmp / "dev.key"), "-ts", f"{url}/tsa",
                                "-in", str(big), "-out", str(theirs)], check=True,
                               capture_output=True)

            sign_signgate()  # warm-up: page cache, server caches
            sign_osslsigncode()
            t_ours = best_of(args.runs, sign_signgate)
            t_theirs = best_of(args.runs, sign_osslsigncode)
            crls = crls_pem(url, ["/ca/root.crl", "/crl/bench.crl"], tmp / "crls.pem")
            ok_ours = verified(ours, root, root, crls)
            ok_theirs = verified(theirs, tmp / "dev.pem", root, crls)
    print(f"- signgate sign --format authenticode: {t_ours:.3f} s "
          f"(osslsigncode verify: {'ok' if ok_ours else 'FAILED'})")
    print(f"- osslsigncode sign -ts:              {t_theirs:.3f} s "
          f"(osslsigncode verify: {'ok' if ok_theirs else 'FAILED'})")
    ratio = t_ours / t_theirs
    print(f"ratio signgate/osslsigncode: {ratio:.2f}x (target <= 1.20x)")
    if not ok_ours:
        sys.exit(1)


if __name__ == "__main__":
    main()
