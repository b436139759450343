"""What every scanning engine returns and how several are combined.

A :class:`Scanner` looks at one file and returns a :class:`Verdict`, or raises
:class:`~signgate.errors.ScannerUnavailable` when it cannot say (clamd down, rules broken).
:func:`scan_all` runs several and never passes silently: an engine that fails for any
reason makes the whole scan fail.

Streams. The server receives an upload as a stream of chunks. Engines take a *path*, not a
stream: the server spools the upload once to a temporary file with :func:`spool` (constant
memory, size-limited, SHA-256 computed on the way, which is what the deny-list needs) and
every engine reads that file. One file serves everyone: YARA needs random access to the
whole artifact (``filesize``, the ``pe`` module reads headers and sections at offsets),
clamd is handed the open file itself (``FILDES``: no copy through its socket;
:meth:`~signgate.scan.clamd.ClamdScanner.scan_chunks` streams chunks over ``INSTREAM``
when there is no file), and the signer needs the same bytes afterwards, so nothing is held
in memory or uploaded twice.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from signgate.errors import ConfigError, PayloadTooLarge, ScannerUnavailable, SigngateError


@dataclass(frozen=True)
class Verdict:
    """One engine's answer about one artifact.

    ``findings`` name what was found (a ClamAV signature, ``namespace:rule`` for YARA,
    ``denylisted:<reason>``); an artifact is clean exactly when there are none.
    ``engine_version`` and ``ruleset_version`` say which engine and which signatures gave
    the answer, for the audit record.
    """

    clean: bool
    findings: tuple[str, ...]
    engine: str
    engine_version: str
    ruleset_version: str
    seconds: float

    def __post_init__(self) -> None:
        if self.clean == bool(self.findings):
            raise ValueError(f"{self.engine}: a verdict is clean exactly when it has no findings")

    @classmethod
    def of(cls, engine: str, findings: Iterable[str], *, engine_version: str,
           ruleset_version: str, seconds: float) -> Verdict:
        found = tuple(findings)
        return cls(clean=not found, findings=found, engine=engine,
                   engine_version=engine_version, ruleset_version=ruleset_version,
                   seconds=seconds)


class Scanner(Protocol):
    """A scanning engine. ``scan_path`` raises ScannerUnavailable when it cannot answer."""

    @property
    def name(self) -> str: ...

    def scan_path(self, path: Path) -> Verdict: ...


def scan_all(scanners: Sequence[Scanner], path: Path) -> list[Verdict]:
    """Every scanner's verdict on ``path``, in order.

    Fails closed: a scanner that raises anything (a signgate error such as
    ScannerUnavailable passes through as is; any other exception becomes
    ScannerUnavailable naming the engine) makes the whole scan fail; and an empty list of
    scanners is a configuration error rather than a pass. The artifact is clean only if
    every verdict is (see :func:`all_clean`).
    """
    if not scanners:
        raise ConfigError("no scanners configured: refusing to call an unscanned artifact clean")
    verdicts = []
    for scanner in scanners:
        try:
            verdict = scanner.scan_path(path)
        except SigngateError:
            raise
        except Exception as exc:
            raise ScannerUnavailable(scanner.name, f"{type(exc).__name__}: {exc}") from exc
        verdicts.append(verdict)
    return verdicts


def all_clean(verdicts: Sequence[Verdict]) -> bool:
    return bool(verdicts) and all(v.clean for v in verdicts)


def findings(verdicts: Sequence[Verdict]) -> list[str]:
    """Every finding, prefixed with its engine: ``clamav:Win.Trojan.X``, ``yara:ns:rule``."""
    return [f"{v.engine}:{f}" for v in verdicts for f in v.findings]


@dataclass(frozen=True)
class Spooled:
    path: Path
    size: int
    sha256: str


@contextmanager
def spool(chunks: Iterable[bytes], *, directory: Path | None = None,
          max_bytes: int | None = None) -> Iterator[Spooled]:
    """Write ``chunks`` to a private temporary file (mode 0600) and yield it with its size
    and SHA-256; the file is removed afterwards. More than ``max_bytes`` raises
    PayloadTooLarge before the rest is read."""
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(prefix="signgate-scan-", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise PayloadTooLarge(
                        f"artifact is larger than the scan limit of {max_bytes} bytes",
                        limit=max_bytes)
                digest.update(chunk)
                out.write(chunk)
        yield Spooled(path=path, size=size, sha256=digest.hexdigest())
    finally:
        path.unlink(missing_ok=True)
