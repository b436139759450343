"""Revocation: a revoked key's certificates are on its project's CRL, and openssl rejects
them with -crl_check while the project's other certificates still verify."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.conftest import unique

# SQLite alone: openssl judges the CRLs, which the database does not shape
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def pem_blocks(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        current.append(line)
        if line.startswith("-----END"):
            blocks.append("".join(current))
            current = []
    return blocks


def crl_pem(url: str, path: Path) -> Path:
    r = httpx.get(url, timeout=30)  # no token: verifiers fetch CRLs anonymously
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pkix-crl"
    path.with_suffix(".der").write_bytes(r.content)
    out = openssl("crl", "-inform", "DER", "-in", str(path.with_suffix(".der")),
                  "-out", str(path))
    assert out.returncode == 0, out.stderr
    return path


def test_revoked_certificates_are_rejected_by_openssl(server: Server, tmp_path: Path) -> None:
    project = unique("crl")
    server.cli("project", "create", project)
    for name in ("leaked", "fine"):
        server.cli("key", "create", f"{project}/{name}")
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    leaked, issuing = pem_blocks(server.cli("key", "cert", f"{project}/leaked").stdout)
    fine = pem_blocks(server.cli("key", "cert", f"{project}/fine").stdout)[0]
    for name, text in (("leaked", leaked), ("issuing", issuing), ("fine", fine)):
        (tmp_path / f"{name}.pem").write_text(text)
    serial = server.cli("key", "cert", f"{project}/leaked", "--json").json()["serial"]

    before = crl_pem(f"{server.url}/crl/{project}.crl", tmp_path / "before.pem")
    text = openssl("crl", "-in", str(before), "-noout", "-text").stdout
    assert "No Revoked Certificates" in text
    assert f"OU = {project}" in text

    # A compromise time after the key was made (an earlier one is refused).
    time.sleep(1.1)
    when = datetime.now(UTC).replace(microsecond=0)
    server.cli("key", "revoke", f"{project}/leaked", "--compromised-at",
               when.isoformat().replace("+00:00", "Z"), "--reason", "laptop stolen")
    after = crl_pem(f"{server.url}/crl/{project}.crl", tmp_path / "after.pem")
    root_crl = crl_pem(f"{server.url}/ca/root.crl", tmp_path / "root-crl.pem")
    text = openssl("crl", "-in", str(after), "-noout", "-text").stdout
    assert f"Serial Number: {serial.upper().zfill(len(serial) + len(serial) % 2)}" in text
    assert "Key Compromise" in text
    assert ("Invalidity Date: \n                "
            f"{when:%b} {when.day:2d} {when:%H:%M:%S %Y} GMT") in text
    number = int(text.split("X509v3 CRL Number: \n")[1].split()[0])
    assert number >= 2

    base = ["verify", "-CAfile", str(root), "-untrusted", str(tmp_path / "issuing.pem")]
    rejected = openssl(*base, "-crl_check", "-CRLfile", str(after), str(tmp_path / "leaked.pem"))
    assert rejected.returncode != 0
    assert "certificate revoked" in rejected.stdout + rejected.stderr
    # Before the revocation the same certificate verified with the CRL of that time.
    earlier = openssl(*base, "-crl_check", "-CRLfile", str(before), str(tmp_path / "leaked.pem"))
    assert earlier.stdout.strip().endswith(": OK"), earlier
    ok = openssl(*base, "-crl_check_all", "-CRLfile", str(after), "-CRLfile", str(root_crl),
                 str(tmp_path / "fine.pem"))
    assert ok.stdout.strip().endswith("fine.pem: OK"), ok

    log = server.cli("audit", "log", "--key", f"{project}/leaked", "--json").json()
    revoke = next(e for e in log if e["action"] == "certificate.revoke")
    assert revoke["details"]["serials"] == [serial]
    published = server.cli("audit", "log", "--project", project, "--action", "crl.publish",
                           "--json").json()
    assert published[-1]["details"]["revoked"] == 1


def test_unknown_crl_is_404_and_bad_name_400(server: Server) -> None:
    r = httpx.get(f"{server.url}/crl/{unique('nope')}.crl", timeout=30)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    r = httpx.get(f"{server.url}/crl/Bad_Name.crl", timeout=30)
    assert r.status_code == 400
