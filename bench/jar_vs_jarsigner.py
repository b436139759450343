"""Signing a big JAR: `signgate sign --format jar` beside the JDK's own `jarsigner`.

Builds a ~100 MB JAR (thousands of small compressible entries, like classes and resources,
plus incompressible blobs), starts `signgate serve` on a fresh SQLite data directory, then
in one run times, best of N each:

- signgate: `signgate sign app.jar --format jar -o out.jar` with a remote ecdsa-p256 key:
  the client inflates and hashes every entry, builds the manifest and .SF, sends the .SF's
  digest, gets back the CMS block timestamped by signgate's TSA and writes the signed JAR;
- jarsigner: `jarsigner -tsa http://127.0.0.1:PORT/tsa` with a local PKCS#12 ecdsa-p256
  key made by keytool (no signgate key), timestamped by the same TSA.

and the same for a JAR of 50,000 small class entries (`--entries`), where the work per
entry counts, not the bytes. Both outputs are checked with `jarsigner -verify`. Prints wall
and CPU time of each command (its process tree: `cli_timing.py`) and the ratios; the target
is signgate <= 1.0 x jarsigner at any size.

    python bench/jar_vs_jarsigner.py [--size-mb 100] [--entries 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from functools import partial
from pathlib import Path

from cli_timing import interleaved, load, row, run
from sign_throughput import BIN, free_port, running

PASS = "changeit"


def build_jar(path: Path, size_mb: int) -> None:
    """~size_mb MB on disk: 40% small deflated entries (class-like bytes, text), 60% random
    blobs (stored deflated, as jar does, but incompressible)."""
    rng = random.Random(1234)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10)))
             for _ in range(2000)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nMain-Class: "
                   "com.example.Main\r\nCreated-By: bench\r\n\r\n")
        small_budget = size_mb * 4 // 10 << 20
        i = 0
        while small_budget > 0:
            body = b" ".join(rng.choices(words, k=rng.randint(200, 3000)))
            body += rng.randbytes(len(body) // 3)  # half-compressible, like class files
            info = zipfile.ZipInfo(f"com/example/pkg{i % 97}/Class{i}.class")
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, body)
            small_budget -= z.getinfo(info.filename).compress_size
            i += 1
        for j in range(size_mb * 6 // 10 // 4):
            z.writestr(f"assets/blob{j}.bin", rng.randbytes(4 << 20))


def verified(jar: Path, cwd: Path) -> None:
    out = subprocess.run(["jarsigner", "-verify", str(jar)], capture_output=True, text=True,
                         cwd=cwd)
    if "jar verified" not in out.stdout:
        raise SystemExit(f"jarsigner does not verify {jar.name}: {out.stdout}")


def build_many(path: Path, entries: int) -> None:
    """``entries`` one-class entries of about 200 bytes each (a big application's class
    count; JDK's rt.jar had about 20,000): the per-entry work, not the bytes."""
    rng = random.Random(99)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: bench\r\n\r\n")
        for i in range(entries):
            z.writestr(f"com/example/p{i % 211}/C{i}.class",
                       b"\xca\xfe\xba\xbe" + rng.randbytes(100) + b"x" * 100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=100)
    p.add_argument("--entries", type=int, default=50000,
                   help="entries of the many-entries JAR (0: skip it)")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    if shutil.which("jarsigner") is None:
        raise SystemExit("jarsigner is not installed (openjdk-17-jdk-headless)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    failed = False
    with tempfile.TemporaryDirectory(prefix="signgate-jar-bench-") as d:
        tmp = Path(d)
        jars = [(tmp / "app.jar", lambda path: build_jar(path, args.size_mb))]
        if args.entries:
            jars.append((tmp / "many.jar", lambda path: build_many(path, args.entries)))
        print(f"jar: best of {args.runs} interleaved, {os.cpu_count()} cores, load {load()}")
        data = tmp / "data"
        signgate = str(BIN / "signgate")
        subprocess.run([signgate, "init", "--data-dir", str(data)], env=env, check=True,
                       capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cli_env = {**env, "SIGNGATE_URL": url,
                   "SIGNGATE_TOKEN": (data / "admin.token").read_text().strip()}
        with running([signgate, "serve", "--data-dir", str(data), "--port", str(port)], env,
                     url, "/healthz"):
            for cmd in (["project", "create", "bench"], ["grant", "add", "admin", "signer",
                                                         "bench"],
                        ["key", "create", "bench/release", "--algorithm", "ecdsa-p256"]):
                subprocess.run([signgate, *cmd], env=cli_env, check=True, capture_output=True)
            subprocess.run(["keytool", "-genkeypair", "-alias", "release", "-keyalg", "EC",
                            "-groupname", "secp256r1", "-keystore", "local.p12",
                            "-storetype", "PKCS12", "-storepass", PASS, "-dname",
                            "CN=bench", "-validity", "2"], cwd=tmp, check=True,
                           capture_output=True)
            for jar, build in jars:
                build(jar)
                with zipfile.ZipFile(jar) as z:
                    entries = len(z.infolist())
                ours, theirs = tmp / "ours.jar", tmp / "theirs.jar"
                signgate_cmd = [signgate, "sign", jar.name, "--key", "bench/release",
                                "--format", "jar", "-o", ours.name, "--no-progress"]
                local_cmd = ["jarsigner", "-keystore", "local.p12", "-storepass", PASS,
                             "-tsa", f"{url}/tsa", "-signedjar", theirs.name, jar.name,
                             "release"]
                a, b = interleaved(args.runs, partial(run, signgate_cmd, cli_env, tmp, ours),
                                   partial(run, local_cmd, env, tmp, theirs))
                verified(ours, tmp)
                verified(theirs, tmp)
                print(row(f"- {jar.stat().st_size / 1e6:.0f} MB JAR, {entries} entries, sign "
                          "--format jar vs jarsigner -tsa", a, b, 1.0))
                failed |= max(a.ratio(b)) > 1.0
                for done in (jar, ours, theirs):
                    done.unlink()
    if failed:
        raise SystemExit("signgate is slower than jarsigner (wall or CPU)")


if __name__ == "__main__":
    sys.exit(main())
