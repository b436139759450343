"""A witness process for tests: ``signgate witness serve`` on a free port, its CLI."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from signgate.transparency.cosignature import CosignatureVerifier, parse_cosigner_key
from tests.support.server import SIGNGATE, Server, free_port, start_server, stop_process


@dataclass
class Witness:
    """A witness process: its data directory, URL and verifier."""

    data_dir: Path
    name: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    verifier: CosignatureVerifier | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> CosignatureVerifier:
        assert self.verifier is not None
        return self.verifier

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SIGNGATE, "witness", *args, "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=60, check=False)

    def start(self) -> None:
        """Start serving (again on the same port after a stop: its URL stays valid)."""
        self.port = self.port or free_port()
        log = (self.data_dir.parent / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [SIGNGATE, "witness", "serve", "--data-dir", str(self.data_dir), "--name",
             self.name, "--listen", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"witness exited: {self.log()}")
            try:
                httpx.get(f"{self.url}/{'0' * 64}/checkpoint", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"witness did not start: {self.log()}")
        self.verifier = parse_cosigner_key(self.cli("public-key").stdout.strip())

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        path = self.data_dir.parent / f"{self.name}.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def two_witnesses(directory: Path) -> Iterator[list[Witness]]:
    """Witnesses w1.example and w2.example running, stopped afterwards."""
    ws = [Witness(directory / f"w{i}", f"w{i}.example") for i in (1, 2)]
    try:
        for w in ws:
            w.start()
        yield ws
    finally:
        for w in ws:
            w.stop()


def witnessed_server(data: Path, witnesses: list[Witness], policy: str,
                     database_url: str | None = None, workers: int = 1) -> Server:
    """A server whose log the witnesses know (quorum: all of them; ``policy``): started
    once to learn its log key, then again with the witnesses configured."""
    first = start_server(data, database_url)
    try:
        key = first.cli("log", "public-key", "--json", token="").json()
    finally:
        first.stop()
    for w in witnesses:
        added = w.cli("add-log", "--origin", key["origin"], "--key", key["verifier_key"])
        assert added.returncode == 0, added.stderr
    listed = ", ".join(f'"{w.url} {w.key.verifier_key}"' for w in witnesses)
    return start_server(data, database_url, init=False, workers=workers, config=(
        f"log_witnesses = [{listed}]\nlog_witness_quorum = {len(witnesses)}\n"
        f'log_witness_policy = "{policy}"\nlog_witness_timeout_seconds = 2'))
