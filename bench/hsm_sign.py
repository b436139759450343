"""Signatures/s with a key in an HSM, beside a software key and the token on its own.

In one run, on one machine, against one SoftHSM2 token made for the run:

1. signgate with an HSM key: `signgate serve` (SQLite, the data directory's config.toml
   naming the token as ``[stores.hsm]``), an ecdsa-p256 key made with ``store = "hsm"``,
   N concurrent clients (wrk, as bench/sign_throughput.py) POSTing digests to it for D
   seconds. Every request is authenticated, authorised, signed on the token through
   PyKCS11 and recorded in the audit log, durably, before its response.
2. signgate with a software key: the same server, an ecdsa-p256 key in the software vault,
   the same load.
3. the token alone: N threads, each on its own PyKCS11 session (as signgate's pool),
   signing a P-256 digest with ``CKM_ECDSA`` for D seconds: the ceiling the library and
   the token allow one process.

The two server paths run ``--rounds`` times each, in alternating order, on the same
server (so the database, the log and the machine's drift are shared); their means count.
Prints signatures/s (and p50/p99 for the servers), the ratios HSM/software and
HSM/token, and the machine's load (``uptime``) before and after. The target is HSM
>= 0.7 of software. Afterwards it checks that the audit chain verifies and holds an entry
for each signature.

    python bench/hsm_sign.py [--clients 64] [--duration 10] [--rounds 2] [--workers 1]

Needs wrk (Debian 'wrk') and SoftHSM2 (Debian 'softhsm2').
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from sign_throughput import (
    BIN,
    Result,
    audit_check,
    free_port,
    run_wrk,
    running,
    sign_script,
)

MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
           "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
TOKEN = "bench"
PIN_ENV = "SIGNGATE_BENCH_HSM_PIN"
PIN = "bench-pin-1234"
DIGEST = bytes(range(32))


def module_path() -> str:
    for candidate in MODULES:
        if Path(candidate).exists():
            return candidate
    raise SystemExit("softhsm2 is not installed: apt-get install softhsm2")


def make_token(tmp: Path) -> dict[str, str]:
    """A SoftHSM2 configuration with one token; the environment that sees it."""
    tokens = tmp / "tokens"
    tokens.mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), PIN_ENV: PIN}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin",
                    "87654321", "--pin", PIN], env={**os.environ, **env}, check=True,
                   capture_output=True)
    return env


def prepare(url: str, admin: str) -> str:
    """Project 'bench' with the keys 'soft' and 'hsm' (ecdsa-p256), a signer for both."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"},
                      timeout=120) as c:
        c.post("/api/v1/projects", json={"name": "bench"}).raise_for_status()
        for store in ("soft", "hsm"):
            c.post("/api/v1/projects/bench/keys",
                   json={"name": store, "store": store}).raise_for_status()
            [version] = c.get(f"/api/v1/projects/bench/keys/{store}").json()["versions"]
            if version["store"] != store:
                raise SystemExit(f"key bench/{store} is in key store {version['store']}")
        r = c.post("/api/v1/identities", json={"name": "ci-bench"})
        r.raise_for_status()
        c.post("/api/v1/grants", json={"identity": "ci-bench", "role": "signer",
                                       "scope": "bench"}).raise_for_status()
        return str(r.json()["token"])


def bench_server(args: argparse.Namespace, env: dict[str, str], module: str,
                 tmp: Path) -> list[Result]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    full_env = {**clean, **env}
    data = tmp / "data"
    data.mkdir(mode=0o700)
    (data / "config.toml").write_text(
        f'[stores.hsm]\ntype = "pkcs11"\nmodule = "{module}"\ntoken = "{TOKEN}"\n'
        f'pin_env = "{PIN_ENV}"\n')
    subprocess.run([str(BIN / "signgate"), "init", "--data-dir", str(data)], env=full_env,
                   check=True, capture_output=True)
    admin = (data / "admin.token").read_text().strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "signgate"), "serve", "--data-dir", str(data), "--port", str(port),
           "--workers", str(args.workers)]
    runs: dict[str, list[Result]] = {"soft": [], "hsm": []}
    with running(cmd, full_env, url, "/healthz"):
        token = prepare(url, admin)
        script = sign_script(token, tmp)
        for key in ("soft", "hsm"):
            run_wrk(f"{url}/api/v1/projects/bench/keys/{key}/sign", script, args.clients, 2)
        # Alternating (soft, hsm, hsm, soft, ...): the machine's drift hits both alike.
        for i in range(args.rounds):
            for key in ("soft", "hsm") if i % 2 == 0 else ("hsm", "soft"):
                path = f"{url}/api/v1/projects/bench/keys/{key}/sign"
                result = run_wrk(path, script, args.clients, args.duration)
                print(f"  round {i + 1}, {key} key: {result.rps:.0f} sig/s")
                runs[key].append(result)
        ok, entries = audit_check(url, admin)
    measured = sum(r.requests for rs in runs.values() for r in rs)
    print(f"  audit chain {'intact' if ok else 'BROKEN'}: {entries} entries "
          f"(>= {measured} signatures of the measured runs)")
    if not ok or entries < measured:
        raise SystemExit("audit log does not hold every signature")
    names = {"soft": "signgate, software key", "hsm": "signgate, HSM key"}
    return [mean(names[key], rs) for key, rs in runs.items()]


def mean(name: str, results: list[Result]) -> Result:
    n = len(results)
    return Result(name, sum(r.rps for r in results) / n, sum(r.p50_ms for r in results) / n,
                  sum(r.p99_ms for r in results) / n, sum(r.requests for r in results),
                  sum(r.errors for r in results))


def bench_token(args: argparse.Namespace, env: dict[str, str], module: str) -> Result:
    """N threads, a PyKCS11 session each, CKM_ECDSA with one P-256 key on the token."""
    os.environ.update(env)  # before the module is loaded: SoftHSM reads it then
    import PyKCS11
    from asn1crypto.keys import ECDomainParameters

    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slot = next(s for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.strip() == TOKEN)
    login = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
    login.login(PIN)
    params = ECDomainParameters(name="named", value="secp256r1").dump()
    _, key = login.generateKeyPair(
        [(PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_EC_PARAMS, params)],
        [(PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SIGN, True),
         (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, False)],
        PyKCS11.MechanismECGENERATEKEYPAIR)
    sessions = [lib.openSession(slot) for _ in range(args.clients)]
    counts = [0] * args.clients
    errors: list[str] = []
    start = threading.Barrier(args.clients + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA)
        start.wait()
        try:
            while not stop.is_set():
                sessions[i].sign(key, DIGEST, mechanism)
                counts[i] += 1
        except PyKCS11.PyKCS11Error as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    time.sleep(args.duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    for s in sessions:
        s.closeSession()
    login.logout()
    login.closeSession()
    total = sum(counts)
    print(f"  token via PyKCS11: {total / elapsed:.0f} sig/s")
    return Result("token alone (PyKCS11)", total / elapsed, 0.0, 0.0, total, len(errors))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64,
                   help="concurrent connections, and threads on the token")
    p.add_argument("--duration", type=int, default=10, help="seconds per run")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--rounds", type=int, default=2,
                   help="runs per server path, alternating their order (the mean is shown)")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    module = module_path()
    before = uptime()
    print(f"HSM signing: ecdsa-p256, {args.clients} clients, {args.rounds} x {args.duration}s, "
          f"{args.workers} worker(s), {os.cpu_count()} cores, SoftHSM2 ({module})")
    print(f"  load before: {before}")
    with tempfile.TemporaryDirectory(prefix="signgate-bench-hsm-") as d:
        tmp = Path(d)
        env = make_token(tmp)
        soft, hsm = bench_server(args, env, module, tmp)
        token = bench_token(args, env, module)
    after = uptime()
    print(f"  load after:  {after}")
    print()
    print(f"{'path':32} {'sig/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in (hsm, soft, token):
        latency = f"{r.p50_ms:8.2f} {r.p99_ms:8.2f}" if r.p50_ms else f"{'-':>8} {'-':>8}"
        print(f"{r.name:32} {r.rps:9.0f} {latency} {r.errors:7d}")
    print()
    ratio = hsm.rps / soft.rps
    print(f"HSM / software key   {ratio:5.2f}  (target >= 0.70: "
          f"{'met' if ratio >= 0.7 else 'NOT met'})")
    print(f"HSM / token alone    {hsm.rps / token.rps:5.2f}")
    print(f"software / token     {soft.rps / token.rps:5.2f}")
    if soft.errors or hsm.errors or token.errors:
        raise SystemExit("some signatures failed")


if __name__ == "__main__":
    main()
