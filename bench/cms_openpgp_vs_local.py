"""Detached signatures of a ~100 MB file: signgate (remote key) beside openssl and gpg
(local keys).

- CMS: `signgate sign FILE --format cms -o FILE.p7s` against a real `signgate serve`
  (SQLite) with an ecdsa-p256 key: the client hashes the file and sends the digest, the
  server builds the SignedData (timestamped by its own TSA, signgate's default), the
  client writes it. Beside it `openssl cms -sign -binary -outform DER` (detached, the
  default without -nodetach) with a
  local P-256 key and self-signed certificate made by openssl (no timestamp: openssl cms
  cannot ask for one).
- OpenPGP: `signgate sign FILE --format openpgp` (the client hashes the file and the
  signature's hashed part naming the key) beside `gpg --detach-sign --armor` with a local
  NIST P-256 key generated in a temporary GNUPGHOME (no passphrase, no agent prompt).

Prints the best of N interleaved runs of each, wall and CPU time of the command's process
tree (`cli_timing.py`), and the ratios (target: signgate <= 1.5x), and checks each
signature: openssl cms -verify for both CMS outputs, gpg --verify for both OpenPGP ones
(signgate's key imported from `signgate key public --openpgp`).

    python bench/cms_openpgp_vs_local.py [--size-mb 100] [--runs 3]

Needs openssl and gpg.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from functools import partial
from pathlib import Path

from cli_timing import interleaved, load, row, run
from sign_throughput import BIN, free_port, running

TARGET = 1.5


def gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
                          capture_output=True, text=True)


def cms_verified(signature: Path, data: Path) -> bool:
    out = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                          str(signature), "-content", str(data), "-noverify", "-out",
                          os.devnull], capture_output=True, text=True)
    return out.returncode == 0 and "Verification successful" in out.stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    for tool in ("openssl", "gpg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    signgate = str(BIN / "signgate")
    failed = False
    with tempfile.TemporaryDirectory(prefix="signgate-detached-") as d:
        tmp = Path(d)
        artifact = tmp / "release.tar"
        with artifact.open("wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        print(f"detached signatures of a {artifact.stat().st_size / 1e6:.0f} MB file: best of "
              f"{args.runs} interleaved, {os.cpu_count()} cores, load {load()}")
        data = tmp / "data"
        subprocess.run([signgate, "init", "--data-dir", str(data)], env=env, check=True,
                       capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cli_env = {**env, "SIGNGATE_URL": url,
                   "SIGNGATE_TOKEN": (data / "admin.token").read_text().strip()}

        def cli(*argv: str) -> str:
            return subprocess.run([signgate, *argv], env=cli_env, check=True,
                                  capture_output=True, text=True).stdout

        home = tmp / "gnupg"
        home.mkdir(mode=0o700)
        made = gpg(home, "--passphrase", "", "--pinentry-mode", "loopback",
                   "--quick-gen-key", "bench <bench@example.org>", "nistp256", "sign", "never")
        if made.returncode != 0:
            raise SystemExit(f"gpg cannot make a key: {made.stderr}")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp / "dev.key"),
                        "-out", str(tmp / "dev.pem"), "-subj", "/CN=bench developer", "-days",
                        "2"], check=True, capture_output=True)
        with running([signgate, "serve", "--data-dir", str(data), "--port", str(port)], env,
                     url, "/healthz"):
            cli("project", "create", "bench")
            cli("grant", "add", "admin", "signer", "bench")
            cli("key", "create", "bench/release", "--algorithm", "ecdsa-p256")
            (tmp / "signgate.asc").write_text(cli("key", "public", "bench/release",
                                                  "--openpgp"))
            gpg(home, "--import", str(tmp / "signgate.asc"))
            cases = [
                ("cms", "openssl cms -sign -binary", tmp / "ours.p7s",
                 tmp / "theirs.p7s",
                 lambda out: ["openssl", "cms", "-sign", "-binary", "-in",
                              str(artifact), "-signer", str(tmp / "dev.pem"), "-inkey",
                              str(tmp / "dev.key"), "-outform", "DER", "-out", str(out)],
                 lambda sig: cms_verified(sig, artifact)),
                ("openpgp", "gpg --detach-sign --armor", tmp / "ours.asc",
                 tmp / "theirs.asc",
                 lambda out: ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--yes",
                              "--pinentry-mode", "loopback", "--passphrase", "",
                              "--local-user", "bench@example.org", "--detach-sign",
                              "--armor", "-o", str(out), str(artifact)],
                 lambda sig: gpg(home, "--verify", str(sig), str(artifact)).returncode == 0),
            ]
            for fmt, peer, ours, theirs, local_cmd, verify in cases:
                signgate_cmd = [signgate, "sign", str(artifact), "--key", "bench/release",
                                "--format", fmt, "-o", str(ours), "--no-progress"]
                a, b = interleaved(args.runs, partial(run, signgate_cmd, cli_env, output=ours),
                                   partial(run, local_cmd(theirs), output=theirs))
                ok_ours, ok_theirs = verify(ours), verify(theirs)
                print(row(f"- {fmt}: sign --format {fmt} vs {peer}", a, b, TARGET))
                print(f"  verified: signgate {'ok' if ok_ours else 'FAILED'}, local "
                      f"{'ok' if ok_theirs else 'FAILED'}")
                failed |= not (ok_ours and ok_theirs)
    if failed:
        raise SystemExit("a signature did not verify")


if __name__ == "__main__":
    main()
