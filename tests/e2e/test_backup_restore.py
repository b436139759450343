"""The README's backup-and-restore recipe, run exactly as written: back up a stopped
installation, restore it into a fresh directory (and, for PostgreSQL, a fresh database),
serve it, and `audit verify` passes, old signatures still verify and signing works."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BACKENDS
from tests.e2e.test_public_url import serve
from tests.support import postgres
from tests.support.server import SIGNGATE, base_env, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
PG = dict(p.split("=", 1) for p in postgres.ADMIN_DSN.split())


def recipe(name: str) -> str:
    """The shell block that follows ``<!-- recipe: NAME -->`` in the README."""
    found = re.search(rf"<!-- recipe: {name} -->\n```sh\n(.*?)```", README.read_text(), re.S)
    assert found, f"README has no recipe {name}"
    return found.group(1)


def run(name: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe(name)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{name}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str | None, str | None]]:
    """(database URL before, database name to restore into): None, None for SQLite."""
    if request.param == "sqlite":
        yield None, None
        return
    if not postgres.available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    fresh = f"signgate_restored_{uuid.uuid4().hex[:12]}"
    with postgres.temporary_database() as url:
        try:
            yield url, fresh
        finally:
            with psycopg.connect(postgres.ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


def test_backup_and_restore_recipe(database: tuple[str | None, str | None],
                                   tmp_path: Path) -> None:
    url, fresh = database
    backend = "postgres" if url else "sqlite"
    old, new = tmp_path / "old-machine", tmp_path / "new-machine"
    old.mkdir()
    new.mkdir()
    env = {**base_env(url), "PATH": f"{Path(SIGNGATE).parent}:{os.environ['PATH']}"}
    port = free_port()
    if url:
        env |= {"PGHOST": PG.get("host", "127.0.0.1"), "PGPORT": PG.get("port", "5432"),
                "PGUSER": PG.get("user", "postgres"), "PGDATABASE": url.rsplit("/", 1)[1]}

    # The old machine: an installation with a signature, then stopped.
    data = old / "signgate-data"
    token = init_env(data, env, port)
    server = serve(data, token, port, env)
    try:
        server.cli("project", "create", "app")
        server.cli("grant", "add", "admin", "signer", "app")
        server.cli("key", "create", "app/release")
        artifact = tmp_path / "release.tar.gz"
        artifact.write_bytes(b"signed before the backup" * 100)
        server.cli("sign", str(artifact), "--key", "app/release", "--format", "cms")
        root = tmp_path / "root.pem"
        root.write_text(server.cli("ca", "cert").stdout)
    finally:
        server.stop()

    run(f"{backend}-backup", old, env)
    for archive in old.glob("signgate-*"):
        if archive.is_file():
            shutil.copy(archive, new)
    if url:
        shutil.copy(old / "signgate.dump", new)
        shutil.rmtree(data)  # the old machine is gone
        env |= {"PGDATABASE": fresh or "", "SIGNGATE_DATABASE_URL": url.rsplit("/", 1)[0]
                + f"/{fresh}"}
    else:
        shutil.rmtree(data)

    # The fresh machine: restore, serve (same address: same public_url), check.
    run(f"{backend}-restore", new, env)
    restored = new / "signgate-data"
    assert (restored / "master.key").stat().st_mode & 0o777 == 0o600
    server = serve(restored, token, port, env)
    try:
        checked = run("check", new, {**env, "SIGNGATE_URL": server.url})
        assert "intact" in checked, checked
        assert "re-issued" not in server.server_log()
        # The old signature verifies against the same root; signing works.
        assert server.cli("verify", str(artifact), "--ca", str(root)).returncode == 0
        after = tmp_path / "after.tar.gz"
        after.write_bytes(b"signed after the restore")
        server.cli("sign", str(after), "--key", "app/release", "--format", "cms")
        assert server.cli("verify", str(after), "--ca", str(root)).returncode == 0
        log = server.cli("audit", "log", "--key", "app/release", "--json").json()
        assert [e["action"] for e in log].count("signature.create") == 2
    finally:
        server.stop()


def init_env(data: Path, env: dict[str, str], port: int) -> str:
    """`signgate init` with the test's environment (database URL), naming ``port``."""
    subprocess.run([SIGNGATE, "init", "--data-dir", str(data), "--public-url",
                    f"http://127.0.0.1:{port}"], check=True, capture_output=True, env=env,
                   timeout=60)
    return (data / "admin.token").read_text().strip()
