"""A real clamd for the scanner tests, started with scripts/clamd.sh on signgate's own
signatures (src/signgate/scan/signatures) and a temporary Unix socket.

The official ClamAV databases are left out on purpose (CLAMAV_DATABASE_DIR points at an
empty directory): the tests then do not depend on what freshclam last fetched, and clamd
starts in a fraction of a second instead of the ~10-20 s it takes to load them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from signgate.errors import ScannerUnavailable
from signgate.scan.clamd import ClamdScanner

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "clamd.sh"
# The EICAR anti-malware test file (https://www.eicar.org/download-anti-malware-testfile/),
# in two halves so that this source file is not itself taken for the test file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@dataclass
class Clamd:
    process: subprocess.Popen[bytes]
    state_dir: Path
    socket: Path
    startup_seconds: float

    def scanner(self, *, timeout: float = 60.0) -> ClamdScanner:
        return ClamdScanner(self.socket, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_clamd(state_dir: Path, *, max_size_mb: int = 1000,
                signatures: Sequence[Path] = (), wait: float = 60.0) -> Clamd:
    """Start clamd through scripts/clamd.sh and return once it answers PING."""
    state_dir.mkdir(parents=True, exist_ok=True)
    empty = state_dir / "no-official-databases"
    empty.mkdir(exist_ok=True)
    args = [str(SCRIPT), "--max-size", str(max_size_mb)]
    for d in signatures:
        args += ["--signatures", str(d)]
    env = {**os.environ, "CLAMAV_DATABASE_DIR": str(empty)}
    env.pop("SIGNGATE_CLAMD_SIGNATURES", None)
    start = time.monotonic()
    log = (state_dir / "clamd.out").open("wb")
    process = subprocess.Popen([*args, str(state_dir)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env)
    log.close()
    instance = Clamd(process, state_dir, state_dir / "clamd.sock", 0.0)
    scanner = ClamdScanner(instance.socket, connect_timeout=1.0, timeout=5.0)
    while True:
        try:
            scanner.ping()
            break
        except ScannerUnavailable as exc:
            output = (state_dir / "clamd.out").read_text(errors="replace")
            if process.poll() is not None:
                raise RuntimeError(f"clamd exited with {process.returncode}:\n{output}") from exc
            if time.monotonic() - start > wait:
                instance.stop()
                raise RuntimeError(f"clamd did not answer PING within {wait} s:\n{output}"
                                   ) from exc
            time.sleep(0.02)
    instance.startup_seconds = time.monotonic() - start
    return instance


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    """One clamd for the whole session (per xdist worker), stopped at the end."""
    instance = start_clamd(tmp_path_factory.mktemp("clamd"))
    try:
        yield instance
    finally:
        instance.stop()
