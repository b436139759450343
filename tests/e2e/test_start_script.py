"""scripts/start.sh: installs signgate into the repository's .venv only when pyproject.toml
or the venv changed (a stamp holds the hash of what it installed), and serves with a
public_url that names the port it serves on."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509

from tests.support.server import base_env, free_port

REPO = Path(__file__).resolve().parents[2]
START = REPO / "scripts" / "start.sh"
VENV = REPO / ".venv"
STAMP = VENV / ".signgate-install"


def start(data_dir: Path, port: int, log: Path) -> str:
    """Run start.sh until the server it starts is healthy, stop it, return its output."""
    env = {**base_env(None), "SIGNGATE_DATA_DIR": str(data_dir), "SIGNGATE_PORT": str(port)}
    with log.open("wb") as out:
        # start.sh execs 'signgate serve': the process started here is the server.
        proc = subprocess.Popen(["bash", str(START)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 300  # a first install downloads nothing but takes long
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"start.sh did not serve: {log.read_text()}")
        token = (data_dir / "admin.token").read_text().strip()
        pem = httpx.get(f"http://127.0.0.1:{port}/api/v1/ca/tsa-certificate",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10
                        ).json()["pem"]
        cert = x509.load_pem_x509_certificate(pem.encode())
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        url = points.value[0].full_name[0].value  # type: ignore[index]
        assert url == f"http://127.0.0.1:{port}/ca/root.crl"
    finally:
        proc.terminate()
        proc.wait(30)
    return log.read_text()


def installed_record() -> float:
    """When pip last wrote signgate's installation record in the venv."""
    records = list(VENV.glob("lib/python*/site-packages/signgate-*.dist-info/RECORD"))
    assert len(records) == 1, records
    return records[0].stat().st_mtime


def test_start_installs_only_when_needed(tmp_path: Path) -> None:
    assert Path(sys.prefix).resolve() == VENV.resolve(), "run the tests from the repo's .venv"
    data = tmp_path / "signgate-data"
    port = free_port()
    start(data, port, tmp_path / "first.log")  # installs if this venv has no current stamp
    stamp, record = STAMP.read_text(), installed_record()

    again = start(data, port, tmp_path / "second.log")
    assert "installing" not in again, again
    assert installed_record() == record  # pip did not run
    assert STAMP.read_text() == stamp

    STAMP.write_text("from another pyproject.toml\n")
    stale = start(data, port, tmp_path / "third.log")
    assert "installing signgate into .venv" in stale, stale
    assert installed_record() > record
    assert STAMP.read_text() == stamp
