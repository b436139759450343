"""A JAR of many tiny entries: the work signgate does per entry, client and server side.

Builds a JAR of N one-byte entries (default 65,000, about 6 MB: the shape of the upload
that kept a server core busy for minutes while JAR handling was quadratic), starts
`signgate serve` on a fresh SQLite data directory with a YARA scanner (so the key requires
a scan and the server examines the upload itself), then times:

- in process: the client half (`JarClient.prepare`: every entry hashed, manifest and .SF
  built) and the verifier (`JarVerifier.verify`), on the unsigned and the signed JAR;
- `signgate sign many.jar --format jar`: the client's prepare, the upload, the server's
  scan and its own prepare of the same JAR (`recompute`), the signature, the signed JAR;
- `signgate verify` of the result against signgate's root (chains, timestamp, CRLs).

With `--scaling 5000,20000,50000` it only times, in process, the client's prepare (the
server's recompute of a scanned JAR is the same call) and the verifier at each count, and
prints the CPU time per entry: flat when the work is linear in the entries.

    python bench/jar_entries.py [--entries 65000] [--scaling 5000,20000,50000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from sign_throughput import BIN, free_port, running
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.formats import jar
from signgate.formats.base import PublicKeyInfo


def build(path: Path, entries: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(entries):
            z.writestr(f"com/example/p{i % 100}/C{i}.class", b"x")


def timed(what: str, cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{what} failed: {out.stdout}{out.stderr}")
    return seconds


def scaling(counts: list[int], tmp: Path) -> None:
    """CPU time per entry of the client's prepare (which the server's recompute of a
    scanned JAR is) and of the verifier, at each count: flat when the work is linear."""
    info = PublicKeyInfo("bench/jar", 1, KeyAlgorithm.ECDSA_P256, None, "",
                         datetime.now(UTC))
    per_entry: dict[str, list[float]] = {"prepare": [], "verify": []}
    for n in counts:
        source = tmp / f"many{n}.jar"
        build(source, n)
        start = time.process_time()
        prepared = jar.CLIENT.prepare(source, DigestAlgorithm.SHA256, None, lambda: info)
        prepare = time.process_time() - start
        signed = tmp / f"signed{n}.jar"
        jar.CLIENT.finish(source, prepared, _self_signed_block(prepared.digest), signed)
        start = time.process_time()
        jar.VERIFIER.verify(signed, None, ())
        verify = time.process_time() - start
        per_entry["prepare"].append(prepare / n * 1e6)
        per_entry["verify"].append(verify / n * 1e6)
        print(f"- {n:6d} entries: prepare {prepare:6.2f} s CPU ({prepare / n * 1e6:5.1f} "
              f"us/entry), verify {verify:6.2f} s CPU ({verify / n * 1e6:5.1f} us/entry); "
              f"load {os.getloadavg()[0]:.2f}")
    for what, costs in per_entry.items():
        print(f"  {what}: per-entry cost at {counts[-1]} / at {counts[0]} entries: "
              f"{costs[-1] / costs[0]:.2f} (1.00 is linear)")


def _self_signed_block(sf_digest: bytes) -> bytes:
    """A CMS block over the .SF digest by a throwaway P-256 key and certificate (what the
    server would send), so that the verifier has a whole signed JAR to check."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from signgate.crypto.algorithms import RsaPadding
    from signgate.formats.base import Chain, FormatRequest, SignerKey

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now.replace(year=now.year + 1)).sign(key, hashes.SHA256()))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = SignerKey("bench/jar", 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PKCS1V15,
                       pem.decode(), now)
    request = FormatRequest(DigestAlgorithm.SHA256, sf_digest, "many.jar", now)
    tbs = jar.BUILDER.prepare(signer, request)
    signature = key.sign(tbs.message, ec.ECDSA(hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return jar.BUILDER.assemble(signer, request, tbs, signature, Chain(der, ()), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=65000)
    p.add_argument("--scaling", default="",
                   help="comma-separated entry counts (e.g. 5000,20000,50000): only time "
                        "prepare and verify per entry, in process, at each count")
    args = p.parse_args()
    if args.scaling:
        with tempfile.TemporaryDirectory(prefix="signgate-jar-scaling-") as d:
            print(f"JAR scaling: one-byte entries; {os.cpu_count()} cores")
            scaling([int(n) for n in args.scaling.split(",")], Path(d))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    with tempfile.TemporaryDirectory(prefix="signgate-jar-entries-") as d:
        tmp = Path(d)
        source = tmp / "many.jar"
        build(source, args.entries)
        print(f"JAR: {args.entries} entries, {source.stat().st_size / 1e6:.1f} MB; "
              f"{os.cpu_count()} cores")

        info = PublicKeyInfo("bench/jar", 1, KeyAlgorithm.ECDSA_P256, None, "",
                             datetime.now(UTC))
        start = time.perf_counter()
        jar.CLIENT.prepare(source, DigestAlgorithm.SHA256, None, lambda: info)
        print(f"- in process, client prepare:       {time.perf_counter() - start:6.2f} s")

        rules = tmp / "yara"
        rules.mkdir()
        (rules / "never.yar").write_text("rule Never { condition: false }\n")
        data = tmp / "data"
        signgate = str(BIN / "signgate")
        subprocess.run([signgate, "init", "--data-dir", str(data)], env=env, check=True,
                       capture_output=True)
        with (data / "config.toml").open("a") as f:
            f.write(f'scan_yara_dir = "{rules}"\n')
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cli = {**env, "SIGNGATE_URL": url,
               "SIGNGATE_TOKEN": (data / "admin.token").read_text().strip()}
        with running([signgate, "serve", "--data-dir", str(data), "--port", str(port)], env,
                     url, "/healthz"):
            for cmd in (["project", "create", "bench"],
                        ["grant", "add", "admin", "signer", "bench"],
                        ["key", "create", "bench/jar", "--algorithm", "ecdsa-p256"]):
                subprocess.run([signgate, *cmd], env=cli, check=True, capture_output=True)
            root = tmp / "root.pem"
            root.write_text(subprocess.run([signgate, "ca", "cert"], env=cli, check=True,
                                           capture_output=True, text=True).stdout)
            sign = timed("sign", [signgate, "sign", "many.jar", "--key", "bench/jar",
                                  "--format", "jar", "-o", "signed.jar", "--no-progress"],
                         cli, tmp)
            start = time.perf_counter()
            evidence = jar.VERIFIER.verify(tmp / "signed.jar", None, ())
            verifier = time.perf_counter() - start
            assert evidence.details["entries"] == str(args.entries)
            verify = timed("verify", [signgate, "verify", "signed.jar", "--ca", str(root)],
                           cli, tmp)
        print(f"- in process, verifier:             {verifier:6.2f} s")
        print(f"- signgate sign (scanned upload):   {sign:6.2f} s")
        print(f"- signgate verify:                  {verify:6.2f} s")


if __name__ == "__main__":
    sys.exit(main())
