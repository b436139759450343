"""A real 'signgate serve' on an ephemeral port, driven through the real CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SIGNGATE = str(Path(sys.executable).with_name("signgate"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@dataclass
class Server:
    """A running server: its URL, data directory, database URL and the admin's token."""

    url: str
    data_dir: Path
    database_url: str | None
    admin_token: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, token: str | None = None, check: bool = True,
            cwd: Path | None = None, timeout: float = 60) -> CliResult:
        """Run the signgate CLI as a subprocess (token defaults to the admin's)."""
        env = {**self.env, "SIGNGATE_URL": self.url,
               "SIGNGATE_TOKEN": self.admin_token if token is None else token}
        proc = subprocess.run([SIGNGATE, *args], capture_output=True, text=True, env=env,
                              cwd=cwd, timeout=timeout)
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"signgate {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return result

    def http(self, token: str | None = None) -> httpx.Client:
        t = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {t}"} if t else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def new_identity(self, name: str, kind: str = "service") -> str:
        return self.cli("identity", "create", name, "--kind", kind, "--json").json()["token"]

    def server_log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s; nothing if it is not running."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def base_env(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SIGNGATE_")}
    if database_url:
        env["SIGNGATE_DATABASE_URL"] = database_url
    return env


def init_data_dir(data_dir: Path, database_url: str | None, *, args: Sequence[str] = (),
                  env: Mapping[str, str] | None = None) -> str:
    """'signgate init' (with ``args``, in ``env`` added to the clean environment)."""
    full_env = {**base_env(database_url), **(env or {})}
    proc = subprocess.run([SIGNGATE, "init", "--data-dir", str(data_dir), "--json", *args],
                          capture_output=True, text=True, env=full_env, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"signgate init failed: {proc.stderr}")
    return (data_dir / "admin.token").read_text().strip()


def start_server(data_dir: Path, database_url: str | None, *, workers: int = 1,
                 init: bool = True, config: str = "", init_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, port: int | None = None) -> Server:
    """Init (unless ``init`` is False; with ``init_args``) and serve ``data_dir``;
    ``config`` is appended to its config.toml first. ``env`` is added to the clean
    environment of init, serve and the CLI (an HSM's SOFTHSM2_CONF and PIN, say).
    ``port``: one chosen before (free_port), when the config must name it."""
    token = init_data_dir(data_dir, database_url, args=init_args, env=env) if init else \
        (data_dir / "admin.token").read_text().strip()
    if config:
        with (data_dir / "config.toml").open("a", encoding="utf-8") as f:
            f.write("\n" + config + "\n")
    env = {**base_env(database_url), **(env or {})}
    port = port or free_port()
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [SIGNGATE, "serve", "--data-dir", str(data_dir), "--port", str(port),
         "--workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    server = Server(f"http://127.0.0.1:{port}", data_dir, database_url, token, proc, log_path,
                    env)
    # Generous: on a busy 2-core machine a server with several workers can take long.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"signgate serve exited: {log_path.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"signgate serve did not become healthy: {log_path.read_text()}")


def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise RuntimeError("openssl is not installed (scripts/test.sh installs it)")
    return path
