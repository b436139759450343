"""The scanner set a server runs: the engines configured (clamd, YARA) and the deny-list.

Made once per process by the composition root (``service/factory.py``), so that a broken
engine setting (YARA rules that do not compile) stops the server before it listens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from signgate.errors import ScannerUnavailable
from signgate.scan.base import Scanner, Verdict, scan_all
from signgate.scan.clamd import ClamdScanner
from signgate.scan.denylist import DenyListScanner
from signgate.scan.yara import YaraScanner


class Scanners:
    """The engines configured in ``config.toml``; none configured is not a pass."""

    def __init__(self, *, clamd_socket: Path | str | None = None,
                 yara_dir: Path | str | None = None,
                 timeout_seconds: int = 60, yara_max_concurrent: int = 2) -> None:
        self.engines: list[Scanner] = []
        self.clamd: ClamdScanner | None = None
        if clamd_socket:
            self.clamd = ClamdScanner(clamd_socket, timeout=float(timeout_seconds))
            self.engines.append(self.clamd)
        if yara_dir:
            self.engines.append(YaraScanner(Path(yara_dir), timeout=timeout_seconds,
                                            max_concurrent=yara_max_concurrent))

    def scan(self, path: Path, denied: Mapping[str, str],
             streamed: Verdict | None = None) -> list[Verdict]:
        """Every engine, then the deny-list. ``streamed``: clamd's verdict, already given
        while the upload arrived (see ``clamd_stream.py``)."""
        if not self.engines:
            raise ScannerUnavailable("signgate", "no scanner is configured "
                                     "(scan_clamd_socket or scan_yara_dir in config.toml)")
        if streamed is None:
            return scan_all([*self.engines, DenyListScanner(denied)], path)
        others = [e for e in self.engines if e is not self.clamd]
        return [streamed, *scan_all([*others, DenyListScanner(denied)], path)]
