"""YARA rules from a directory, through yara-python.

Every ``*.yar`` / ``*.yara`` file under the directory (recursively) is compiled into one
rule set, each file its own namespace (its path relative to the directory, without the
suffix), so findings read ``namespace:rule``. Before each scan a cheap fingerprint of the
directory (names, inodes, sizes, modification times of the rule files) is compared with
the one of the compiled set; any change recompiles. A rule file that does not compile is a
ConfigError when the scanner is created, and makes every scan fail with
ScannerUnavailable (fail closed; the previous rules are not used) until it is fixed.

Memory. ``match(filepath=...)`` maps the whole file and the scan touches every page, so
each running scan holds up to the artifact's size in resident memory (8 concurrent 60 MiB
uploads took a server from 106 MB to 566 MB). At most ``max_concurrent`` scans run at
once; the others wait for a slot, within the same ``timeout`` as the scan. Scanning in
bounded chunks instead would miss matches spanning two chunks and break ``filesize`` and
the ``pe`` module, which read at offsets; the semaphore keeps the scan exact.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yara

from signgate.errors import ConfigError, ScannerUnavailable
from signgate.scan.base import Verdict

ENGINE = "yara"
SUFFIXES = (".yar", ".yara")

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class _Compiled:
    fingerprint: Fingerprint
    rules: Any  # yara.Rules, or None when ``error`` is set
    version: str
    error: str | None = None


class YaraScanner:
    """YARA rules from ``rules_dir``; ``timeout`` (seconds) bounds one scan, waiting for a
    slot included; at most ``max_concurrent`` scans run at once."""

    name = ENGINE

    def __init__(self, rules_dir: Path, *, timeout: int = 60, max_concurrent: int = 2) -> None:
        self.rules_dir = Path(rules_dir)
        self.timeout = timeout
        self.max_concurrent = max_concurrent
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        fingerprint = self._fingerprint_or_error()
        if isinstance(fingerprint, str):
            raise ConfigError(fingerprint)
        self._compiled = self._compile(fingerprint)
        if self._compiled.error is not None:
            raise ConfigError(self._compiled.error)

    @property
    def engine_version(self) -> str:
        return str(yara.__version__)

    @property
    def ruleset_version(self) -> str:
        """The current rule set's version (recompiling first if the directory changed)."""
        return self._current().version

    def scan_path(self, path: Path) -> Verdict:
        start = time.monotonic()
        compiled = self._current()
        if compiled.error is not None:
            raise ScannerUnavailable(ENGINE, compiled.error)
        if not self._slots.acquire(timeout=self.timeout):
            raise ScannerUnavailable(
                ENGINE, f"no free scan slot for {path.name} within {self.timeout} s "
                f"({self.max_concurrent} scans running: scan_yara_max_concurrent)")
        try:
            # yara's timeout is whole seconds; what the wait for a slot left, at least 1.
            left = max(1, round(self.timeout - (time.monotonic() - start)))
            matches = compiled.rules.match(filepath=str(path), timeout=left)
        except yara.TimeoutError as exc:
            raise ScannerUnavailable(
                ENGINE, f"scanning {path.name} took longer than {self.timeout} s") from exc
        except yara.Error as exc:
            raise ScannerUnavailable(ENGINE, f"cannot scan {path.name}: {exc}") from exc
        finally:
            self._slots.release()
        found = sorted({f"{m.namespace}:{m.rule}" for m in matches})
        return Verdict.of(ENGINE, found, engine_version=self.engine_version,
                          ruleset_version=compiled.version, seconds=time.monotonic() - start)

    # -- rule set ------------------------------------------------------------------------

    def _current(self) -> _Compiled:
        fingerprint = self._fingerprint_or_error()
        with self._lock:
            if isinstance(fingerprint, str):
                return _Compiled((), None, "", fingerprint)
            if fingerprint != self._compiled.fingerprint:
                self._compiled = self._compile(fingerprint)
            return self._compiled

    def _rule_files(self) -> list[Path]:
        return sorted(p for p in self.rules_dir.rglob("*")
                      if p.suffix in SUFFIXES and p.is_file())

    def _fingerprint(self) -> Fingerprint:
        """What changes when a rule file is added, removed, replaced or edited. Cheap: one
        stat per file, no reading."""
        if not self.rules_dir.is_dir():
            raise ConfigError(f"YARA rules directory {self.rules_dir} does not exist")
        out = []
        for p in self._rule_files():
            st = p.stat()
            out.append((p.relative_to(self.rules_dir).as_posix(), st.st_ino, st.st_size,
                        st.st_mtime_ns))
        return tuple(out)

    def _fingerprint_or_error(self) -> Fingerprint | str:
        try:
            return self._fingerprint()
        except ConfigError as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read YARA rules directory {self.rules_dir}: {exc}"

    def _compile(self, fingerprint: Fingerprint) -> _Compiled:
        if not fingerprint:
            return _Compiled(fingerprint, None, "", f"no YARA rule files (*.yar, *.yara) in "
                                                    f"{self.rules_dir}")
        digest = hashlib.sha256()
        paths: dict[str, str] = {}
        try:
            for rel, *_ in fingerprint:
                path = self.rules_dir / rel
                digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
                paths[rel.rsplit(".", 1)[0]] = str(path)
            rules = yara.compile(filepaths=paths)
        except yara.SyntaxError as exc:
            # The message names the file and line: "rules/x.yar(3): undefined identifier".
            return _Compiled(fingerprint, None, "", f"YARA rule file does not compile: {exc}")
        except (yara.Error, OSError) as exc:
            return _Compiled(fingerprint, None, "",
                             f"cannot load YARA rules from {self.rules_dir}: {exc}")
        return _Compiled(fingerprint, rules, digest.hexdigest()[:12])
