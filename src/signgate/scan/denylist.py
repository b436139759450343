"""The SHA-256 deny-list: artifacts that must never be signed, whatever the scanners say.

:func:`check` is pure (a digest and a mapping in, a Verdict out); :class:`DenyListScanner`
wraps it in the :class:`~signgate.scan.base.Scanner` protocol by hashing the file. Where the
list is kept, who edits it and the audit record of edits live elsewhere.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from pathlib import Path

from signgate.errors import ConfigError, InvalidInput
from signgate.scan.base import Verdict

ENGINE = "denylist"
ENGINE_VERSION = "1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def normalize(denylist: Mapping[str, str]) -> dict[str, str]:
    """The deny-list with lower-case keys; a key that is not a SHA-256 is a ConfigError."""
    out: dict[str, str] = {}
    for digest, reason in denylist.items():
        key = digest.strip().lower()
        if not _SHA256.fullmatch(key):
            raise ConfigError(f"deny-list entry {digest!r} is not a SHA-256 in hex")
        out[key] = reason
    return out


def ruleset_version(denylist: Mapping[str, str]) -> str:
    """A short hash of the list's digests (reasons are notes, not rules)."""
    joined = "\n".join(sorted(denylist)).encode()
    return hashlib.sha256(joined).hexdigest()[:12]


def check(sha256_hex: str, denylist: Mapping[str, str], *, seconds: float = 0.0) -> Verdict:
    """The verdict on an artifact with this SHA-256: finding ``denylisted:<reason>`` when
    the list (normalized keys) holds it."""
    digest = sha256_hex.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise InvalidInput(f"not a SHA-256 in hex: {sha256_hex!r}")
    reason = denylist.get(digest)
    found = () if reason is None else (f"denylisted:{reason or 'no reason given'}",)
    return Verdict.of(ENGINE, found, engine_version=ENGINE_VERSION,
                      ruleset_version=ruleset_version(denylist), seconds=seconds)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class DenyListScanner:
    """The deny-list as a Scanner: hashes the file, then :func:`check`."""

    name = ENGINE

    def __init__(self, denylist: Mapping[str, str]) -> None:
        self._denylist = normalize(denylist)

    def scan_path(self, path: Path) -> Verdict:
        start = time.monotonic()
        digest = sha256_file(path)
        return check(digest, self._denylist, seconds=time.monotonic() - start)
