"""Scanning engines: signgate refuses to sign an artifact that a scanner flags, and refuses
too when a scanner cannot give an answer (fail closed).

- :mod:`signgate.scan.base`: :class:`Verdict`, the :class:`Scanner` protocol, :func:`scan_all`
  and :func:`spool` (a stream of upload chunks to a temporary file, with its SHA-256).
- :mod:`signgate.scan.clamd`: ClamAV through clamd's Unix socket (``zFILDES``, ``zINSTREAM``).
- :mod:`signgate.scan.yara`: YARA rules from a directory, recompiled when it changes.
- :mod:`signgate.scan.denylist`: SHA-256 deny-list.
- ``signatures/``: signgate's own ClamAV signatures; ``clamd.conf.in``: the clamd
  configuration template that ``scripts/clamd.sh`` fills in.
"""

from __future__ import annotations

from pathlib import Path

from signgate.errors import ScannerUnavailable
from signgate.scan.base import Scanner, Spooled, Verdict, all_clean, findings, scan_all, spool

SIGNATURES_DIR = Path(__file__).parent / "signatures"
CLAMD_CONF_TEMPLATE = Path(__file__).parent / "clamd.conf.in"

__all__ = [
    "CLAMD_CONF_TEMPLATE",
    "SIGNATURES_DIR",
    "Scanner",
    "ScannerUnavailable",
    "Spooled",
    "Verdict",
    "all_clean",
    "findings",
    "scan_all",
    "spool",
]
