"""A server over a data directory filled by 'signgate demo seed' (the demo's tests and
the README's screenshots)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.server import SIGNGATE, Server, base_env, start_server


def seed(data_dir: Path, database_url: str | None = None) -> dict[str, Any]:
    """'signgate demo seed --json' into ``data_dir``; its answer."""
    proc = subprocess.run([SIGNGATE, "demo", "seed", "--data-dir", str(data_dir), "--json"],
                          capture_output=True, text=True, env=base_env(database_url),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


@contextlib.contextmanager
def demo_server(data_dir: Path, database_url: str | None = None,
                ) -> Iterator[tuple[Server, dict[str, Any]]]:
    """The seeded directory served; the seed's answer."""
    seeded = seed(data_dir, database_url)
    srv = start_server(data_dir, database_url, init=False)
    try:
        yield srv, seeded
    finally:
        srv.stop()
