"""The scanner set a server runs: the engines configured (clamd, YARA) and the deny-list.

Made once per process by the composition root (``service/factory.py``), so that a broken
engine setting (YARA rules that do not compile) stops the server before it listens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from signgate.errors import ScannerUnavailable
from signgate.scan import denylist
from signgate.scan.base import Scanner, Verdict, scan_all
from signgate.scan.clamd import ClamdScanner
from signgate.scan.yara import YaraScanner


class Scanners:
    """The engines configured in ``config.toml``; none configured is not a pass."""

    def __init__(self, *, clamd_socket: Path | str | None = None,
                 yara_dir: Path | str | None = None,
                 timeout_seconds: int = 60, yara_max_concurrent: int = 2) -> None:
        self.engines: list[Scanner] = []
        if clamd_socket:
            self.engines.append(ClamdScanner(clamd_socket, timeout=float(timeout_seconds)))
        if yara_dir:
            self.engines.append(YaraScanner(Path(yara_dir), timeout=timeout_seconds,
                                            max_concurrent=yara_max_concurrent))

    def scan(self, path: Path, sha256: str, denied: Mapping[str, str]) -> list[Verdict]:
        """Every engine on the file at ``path``, then the deny-list on ``sha256``, the
        digest of that file computed as its bytes arrived (the caller's: one pass over
        the bytes, not one more per check)."""
        if not self.engines:
            raise ScannerUnavailable("signgate", "no scanner is configured "
                                     "(scan_clamd_socket or scan_yara_dir in config.toml)")
        verdicts = scan_all(self.engines, path)
        started = time.monotonic()
        listed = denylist.normalize(denied)
        return [*verdicts, denylist.check(sha256, listed, seconds=time.monotonic() - started)]
