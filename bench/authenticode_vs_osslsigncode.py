"""Authenticode signing of a ~100 MB PE: signgate (remote key) beside osslsigncode (local key).

- signgate: `signgate sign BIG.exe --format authenticode -o OUT` against a real
  `signgate serve` (SQLite): the client computes the PE image hash, the server signs with
  an rsa-3072 PKCS#1 v1.5 key and timestamps with its own TSA, the client writes the
  signed copy. Wall time of the whole CLI process.
- osslsigncode: `osslsigncode sign` with a local rsa-3072 key made by openssl (not a
  signgate key) and `-ts http://127.0.0.1:PORT/tsa`, the same TSA.

The PE is a mingw-w64 hello-world with a 100 MB overlay (as installers carry their
payload), one per size (default 100 MB and 1 GB). Prints the best of N interleaved runs
of each, wall and CPU time (the command's process tree: `cli_timing.py`), and the ratios
(targets: signgate <= 1.2x at 100 MB, <= 1.05x at 1 GB), and checks that osslsigncode
verifies both outputs.

    python bench/authenticode_vs_osslsigncode.py [--sizes-mb 100,1000] [--runs 3]

Needs osslsigncode, openssl and x86_64-w64-mingw32-gcc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import httpx

from cli_timing import interleaved, load, row, run
from sign_throughput import BIN, free_port, running
from signgate.formats import pe

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
    p.add_argument("--sizes-mb", default="100,1000",
                   help="comma-separated overlay sizes, one PE each (default 100,1000)")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    for tool in ("osslsigncode", "openssl", "x86_64-w64-mingw32-gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    signgate = str(BIN / "signgate")
    failed = False
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as d:
        tmp = Path(d)
        print(f"authenticode: best of {args.runs}, {os.cpu_count()} cores, load {load()}; "
              f"PE checksum in {'C' if pe.ACCELERATED else 'pure Python (not built)'}")
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
            crls = crls_pem(url, ["/ca/root.crl", "/crl/bench.crl"], tmp / "crls.pem")
            ours = tmp / "signgate.exe"
            theirs = tmp / "osslsigncode.exe"
            for size in sizes:
                big = build_pe(tmp, size)
                mb = big.stat().st_size / 1e6

                signgate_cmd = [signgate, "sign", str(big), "--key", "bench/pe", "--format",
                                "authenticode", "-o", str(ours), "--no-progress"]
                local_cmd = ["osslsigncode", "sign", "-certs", str(tmp / "dev.pem"), "-key",
                             str(tmp / "dev.key"), "-ts", f"{url}/tsa", "-in", str(big),
                             "-out", str(theirs)]

                a, b = interleaved(args.runs, partial(run, signgate_cmd, cli_env, output=ours),
                                   partial(run, local_cmd, output=theirs))
                ok_ours = verified(ours, root, root, crls)
                ok_theirs = verified(theirs, tmp / "dev.pem", root, crls)
                target = 1.2 if size < 500 else 1.05
                print(row(f"- {mb:.0f} MB PE, sign --format authenticode vs osslsigncode "
                          "sign -ts", a, b, target))
                print(f"  osslsigncode verify: signgate {'ok' if ok_ours else 'FAILED'}, "
                      f"osslsigncode {'ok' if ok_theirs else 'FAILED'}")
                failed |= not (ok_ours and ok_theirs)
                for done in (big, ours, theirs):
                    done.unlink()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
