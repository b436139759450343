"""Starting up: `signgate serve` refuses what would only fail later (a misspelt setting in
config.toml, a master key that does not open the database's vault), with exit 10 and one
line; `/healthz` reports whether the key store can open this database's keys."""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from signgate.config import default_config_text, load_settings, setting_names
from tests.support.server import SIGNGATE, base_env, free_port, init_data_dir, start_server


def serve_fails(data_dir: Path,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`signgate serve`, which must stop by itself (a server that starts is killed after
    the timeout, and the test fails)."""
    return subprocess.run([SIGNGATE, "serve", "--data-dir", str(data_dir), "--port",
                           str(free_port())], capture_output=True, text=True,
                          env=env or base_env(None), timeout=30)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("signgate: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("startup") / "data"
    init_data_dir(data, None)
    return data


@pytest.mark.parametrize(("line", "named", "hint"), [
    ("max_body_byte = 5", "max_body_byte", "max_body_bytes"),
    ("public-url = \"http://127.0.0.1:9\"", "public-url", "public_url"),
    ("colour = \"blue\"", "colour", None),
    ("[scan]\nmax_bytes = 1", "scan", None),
])
def test_unknown_setting_refuses_to_start(initialised: Path, tmp_path: Path, line: str,
                                          named: str, hint: str | None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name in ("signgate.db", "master.key", "admin.token"):
        (data / name).write_bytes((initialised / name).read_bytes())
        (data / name).chmod(0o600)
    (data / "config.toml").write_text((initialised / "config.toml").read_text() + line + "\n")
    proc = serve_fails(data)
    assert proc.returncode == 10, proc
    message = one_line(proc.stderr)
    assert f"unknown setting {named!r}" in message
    assert str(data / "config.toml") in message
    if hint:
        assert message.endswith(f"(did you mean {hint!r}?)"), message
    else:
        assert "did you mean" not in message


def test_every_documented_setting_is_a_setting(tmp_path: Path) -> None:
    """The settings config.toml documents (commented out) are all accepted: the set of
    keys comes from the Settings fields, not from a list kept by hand."""
    text = default_config_text()
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text)
    documented = set(re.findall(r"(?m)^([a-z_]+) = ", uncommented))
    assert documented <= set(setting_names())
    assert {"database_url", "public_url", "scan_yara_dir", "tsa_urls"} <= documented
    (tmp_path / "config.toml").write_text(uncommented)
    settings = load_settings(tmp_path)
    assert settings.tsa_urls == ("https://tsa.example.com/tsr", "https://backup.example.net/tsa")


def test_wrong_master_key_refuses_to_start(initialised: Path, tmp_path: Path) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    # SIGNGATE_MASTER_KEY replaces the file: a wrong one.
    proc = serve_fails(initialised, {**base_env(None), "SIGNGATE_MASTER_KEY": other})
    assert proc.returncode == 10, proc
    message = one_line(proc.stderr)
    assert "the master key (SIGNGATE_MASTER_KEY) does not open this database's vault" \
        in message

    # A master.key file from another installation.
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name in ("signgate.db", "config.toml", "admin.token"):
        (data / name).write_bytes((initialised / name).read_bytes())
    (data / "master.key").write_text(other + "\n")
    (data / "master.key").chmod(0o600)
    proc = serve_fails(data)
    assert proc.returncode == 10, proc
    assert f"the master key ({data / 'master.key'}) does not open this database's vault" \
        in one_line(proc.stderr)


def test_healthz_reports_the_key_store(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", None)
    try:
        assert httpx.get(server.url + "/healthz", timeout=10).json()["keystore"] == "ok"
        db = sqlite3.connect(tmp_path / "data" / "signgate.db")
        uri, sealed = db.execute(
            "SELECT uri, sealed FROM vault_entries WHERE uri = "
            "(SELECT key_uri FROM authorities WHERE kind = 'root')").fetchone()
        # The database now holds key material this master key does not open (another
        # installation's database restored under a running server looks the same).
        altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        with db:
            db.execute("UPDATE vault_entries SET sealed = ? WHERE uri = ?", (altered, uri))
        answer = httpx.get(server.url + "/healthz", timeout=10)
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "vault_sealed"
        assert "does not open this database's vault" in answer.json()["detail"]
        with db:
            db.execute("UPDATE vault_entries SET sealed = ? WHERE uri = ?", (sealed, uri))
        db.close()
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
