"""Timestamped signatures: `sign --timestamp` writes FILE.sig.tsr that openssl verifies
against signgate's root; a require-timestamp key gets one whatever the client asks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import unique

# SQLite alone: openssl judges the tokens; the signing path runs on both backends in
# tests/integration/test_signing_pipeline.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server


def ts_verify(data: Path, tsr: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(tsr),
                           "-CAfile", str(root)], capture_output=True, text=True)


def test_timestamped_signatures(server: Server, tmp_path: Path) -> None:
    project = unique("ts")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/plain")
    server.cli("key", "create", f"{project}/strict", "--require-timestamp")
    ci = unique("ci")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", project)
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    sig, tsr = tmp_path / "app.bin.sig", tmp_path / "app.bin.sig.tsr"

    # Asked for: the token sits beside the signature and covers the signature value.
    receipt = server.cli("sign", str(artifact), "--key", f"{project}/plain", "--timestamp",
                         "--json", token=token).json()
    assert receipt["timestamp_file"] == str(tsr)
    ok = ts_verify(sig, tsr, root)
    assert ok.stdout.strip().endswith("Verification: OK"), ok
    text = subprocess.run(["openssl", "ts", "-reply", "-in", str(tsr), "-text"],
                          capture_output=True, text=True).stdout
    assert "Status: Granted." in text
    serial = receipt["timestamp_serial"]
    assert serial.upper().lstrip("0") in text.replace(" ", "").upper()
    tampered = tmp_path / "tampered.sig"
    tampered.write_bytes(sig.read_bytes()[:-1] + bytes([sig.read_bytes()[-1] ^ 1]))
    bad = ts_verify(tampered, tsr, root)
    assert bad.returncode != 0
    assert "Verification: FAILED" in bad.stdout + bad.stderr
    other_root = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other", "-keyout",
                    str(tmp_path / "o.key"), "-out", str(other_root)], capture_output=True,
                   check=True)
    assert "Verification: OK" not in ts_verify(sig, tsr, other_root).stdout

    # Declined, plain key: no token.
    tsr.unlink()
    receipt = server.cli("sign", str(artifact), "--key", f"{project}/plain", "--json",
                         "--no-timestamp", token=token).json()
    assert "timestamp_file" not in receipt
    assert receipt["timestamp_serial"] is None
    assert not tsr.exists()

    # Declined, but the key's policy demands it: the server timestamps anyway.
    receipt = server.cli("sign", str(artifact), "--key", f"{project}/strict", "--json",
                         "--no-timestamp", token=token).json()
    assert receipt["timestamp_serial"]
    ok = ts_verify(sig, tsr, root)
    assert ok.stdout.strip().endswith("Verification: OK"), ok
    shown = server.cli("key", "show", f"{project}/strict", "--json").json()
    assert shown["require_timestamp"] is True

    entries = server.cli("audit", "log", "--key", f"{project}/strict", "--action",
                         "signature.create", "--json").json()
    assert entries[-1]["details"]["timestamp_serial"] == receipt["timestamp_serial"]


def test_revocation_is_judged_by_the_timestamp(server: Server, tmp_path: Path) -> None:
    """Signed and timestamped before the compromise time: valid; at or after: invalid."""
    import time

    project = unique("tsrev")
    ref = f"{project}/k"
    server.cli("project", "create", project)
    server.cli("key", "create", ref, "--require-timestamp")
    server.cli("grant", "add", "admin", "signer", ref)
    receipts = []
    for name in ("early", "late"):
        artifact = tmp_path / name
        artifact.write_bytes(name.encode() * 100)
        receipts.append(server.cli("sign", str(artifact), "--key", ref, "--json").json())
        time.sleep(1.2)  # genTime has whole seconds: keep the two tokens apart
    early, late = receipts
    assert early["timestamp_time"] < late["timestamp_time"]
    server.cli("key", "revoke", ref, "--compromised-at", late["timestamp_time"])

    good = server.cli("verify", str(tmp_path / "early"), "--signature",
                      early["signature_file"], "--key", ref, "--json").json()
    assert good["valid"] is True
    assert good["timestamped_at"] == early["timestamp_time"]
    assert good["reason"].startswith("valid: timestamped by version 1 at ")
    bad = server.cli("verify", str(tmp_path / "late"), "--signature", late["signature_file"],
                     "--key", ref, check=False)
    assert bad.returncode == 8
    assert f"timestamped at {late['timestamp_time'].replace('Z', '+00:00')}, after" in bad.stderr
