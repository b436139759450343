"""scripts/start.sh: installs signgate into the repository's .venv only when pyproject.toml
or the venv changed (a stamp holds the hash of what it installed), and serves with a
public_url that names the port it serves on.

The script runs in a copy of the repository with a .venv of its own, so that its installs
never rewrite the virtualenv the rest of the suite is running from; that .venv sees the
suite's site-packages (a .pth line), so an install fetches and builds only signgate."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
from cryptography import x509

from tests.support.server import base_env, free_port

REPO = Path(__file__).resolve().parents[2]


def repo_copy(dest: Path) -> Path:
    """What start.sh needs of the repository, and a .venv that sees the suite's packages."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("src", "scripts"):
        shutil.copytree(REPO / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "venv", str(dest / ".venv")], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(dest / ".venv")}))
    (site / "suite-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return dest


def start(repo: Path, data_dir: Path, port: int, log: Path) -> str:
    """Run start.sh until the server it starts is healthy, stop it, return its output."""
    env = {**base_env(None), "SIGNGATE_DATA_DIR": str(data_dir), "SIGNGATE_PORT": str(port)}
    with log.open("wb") as out:
        # start.sh execs 'signgate serve': the process started here is the server.
        proc = subprocess.Popen(["bash", str(repo / "scripts" / "start.sh")], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=repo)
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


def installed_record(venv: Path) -> float:
    """When pip last wrote signgate's installation record in the venv."""
    records = list(venv.glob("lib/python*/site-packages/signgate-*.dist-info/RECORD"))
    assert len(records) == 1, records
    return records[0].stat().st_mtime


def test_start_installs_only_when_needed(tmp_path: Path) -> None:
    repo = repo_copy(tmp_path)
    venv, stamp_file = repo / ".venv", repo / ".venv" / ".signgate-install"
    data = tmp_path / "signgate-data"
    port = free_port()
    first = start(repo, data, port, tmp_path / "first.log")  # a new venv: installs
    assert "installing signgate into .venv" in first, first
    stamp, record = stamp_file.read_text(), installed_record(venv)

    again = start(repo, data, port, tmp_path / "second.log")
    assert "installing" not in again, again
    assert installed_record(venv) == record  # pip did not run
    assert stamp_file.read_text() == stamp

    stamp_file.write_text("from another pyproject.toml\n")
    stale = start(repo, data, port, tmp_path / "third.log")
    assert "installing signgate into .venv" in stale, stale
    assert installed_record(venv) > record
    assert stamp_file.read_text() == stamp
