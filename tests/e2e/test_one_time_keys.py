"""One-time keys: a fresh key pair and a 10-minute certificate per signing, timestamped,
with the private key never stored."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import psycopg

from tests.conftest import unique
from tests.support.server import Server


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def vault_uris(server: Server) -> set[str]:
    if server.database_url:
        with psycopg.connect(server.database_url.replace("postgresql+psycopg", "postgresql")
                             ) as conn:
            return {r[0] for r in conn.execute("SELECT uri FROM vault_entries")}
    with sqlite3.connect(server.data_dir / "signgate.db") as conn:
        return {r[0] for r in conn.execute("SELECT uri FROM vault_entries")}


def test_every_signing_has_its_own_key(server: Server, tmp_path: Path) -> None:
    project = unique("once")
    server.cli("project", "create", project)
    ref = f"{project}/release"
    created = server.cli("key", "create", ref, "--one-time", "--json").json()
    assert created["one_time"] is True
    assert created["require_timestamp"] is True
    assert created["versions"] == []
    ci = unique("ci")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", ref)
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    vault_before = vault_uris(server)

    seen = []
    for i in range(2):
        artifact = tmp_path / f"a{i}.bin"
        artifact.write_bytes(f"artifact {i}".encode() * 100)
        receipt = server.cli("sign", str(artifact), "--key", ref, "--json", token=token).json()
        assert receipt["key_version"] == i + 1
        cert = Path(receipt["certificate_file"])
        ok = openssl("verify", "-CAfile", str(root), "-untrusted", str(cert), str(cert))
        assert ok.stdout.strip().endswith(": OK"), ok
        dates = openssl("x509", "-in", str(cert), "-noout", "-startdate", "-enddate").stdout
        start, end = (datetime.strptime(line.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
                      for line in dates.splitlines())
        assert (end - start).total_seconds() == 600
        pub = tmp_path / f"pub{i}.pem"
        pub.write_text(openssl("x509", "-in", str(cert), "-noout", "-pubkey").stdout)
        check = openssl("dgst", "-sha256", "-verify", str(pub), "-signature",
                        receipt["signature_file"], str(artifact))
        assert check.stdout.strip() == "Verified OK", check
        stamp = openssl("ts", "-verify", "-data", receipt["signature_file"], "-in",
                        receipt["timestamp_file"], "-CAfile", str(root))
        assert stamp.stdout.strip().endswith("Verification: OK"), stamp
        serial = openssl("x509", "-in", str(cert), "-noout", "-serial").stdout
        seen.append((pub.read_text(), serial))
    assert seen[0][0] != seen[1][0]  # never the same key twice
    assert seen[0][1] != seen[1][1]
    assert vault_uris(server) == vault_before  # no sealed private key was ever stored

    log = server.cli("audit", "log", "--key", ref, "--action", "signature.create",
                     "--json").json()
    assert len(log) == 2
    for entry, (_, serial) in zip(log, seen, strict=True):
        assert serial.strip().split("=")[1].lower().lstrip("0") == \
            entry["details"]["certificate_serial"].lstrip("0")
        assert len(entry["details"]["certificate_sha256"]) == 64
    shown = server.cli("key", "show", ref, "--json").json()
    assert [(v["version"], v["signatures"]) for v in shown["versions"]] == [(1, 1), (2, 1)]
    assert all(v["retired_at"] for v in shown["versions"])
    rotate = server.cli("key", "rotate", ref, check=False)
    assert rotate.returncode == 6
    assert "one-time" in rotate.stderr
    bad = server.cli("key", "create", f"{project}/x", "--one-time", "--max-signatures", "5",
                     check=False)
    assert bad.returncode == 7
