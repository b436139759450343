"""Admission of uploads to the spool: at most N in flight per identity, and one byte budget
for all of them, decided before a byte of the body is read.

The spool directory itself is the ledger, so that every worker process of ``serve`` (and
any other ``serve`` on the same data directory) counts the same uploads: an upload's
private directory is named ``upload-<identity tag>-<reserved bytes>-<pid>-<random>`` and is
created under an exclusive ``flock`` on ``spool/.admission``, after counting the
directories already there. It disappears with the upload (``Spooled.remove``), which ends
the reservation; a directory whose process is gone (a crashed worker) is removed by the
next admission, and ``serve`` empties the spool when it starts.

An upload reserves the length it declares (``Content-Length``, which uploads must send):
HTTP/1.1 never delivers more than that (RFC 9112 §6.3), so the reservation is exact and
the refusal comes before the body instead of half-way through it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from signgate.errors import ErrorCode, LimitExceeded, StorageFull

LOCK_FILE = ".admission"
PREFIX = "upload-"


def identity_tag(identity: str) -> str:
    """A fixed-length name part for ``identity`` (whatever characters its name has)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def admit(spool: Path, identity: str, reserve: int, *, per_identity: int,
          budget: int) -> Path:
    """A new private directory in ``spool`` for an upload of ``reserve`` bytes by
    ``identity``, or LimitExceeded (429: too many of its uploads in flight) or StorageFull
    (507: the uploads in flight have reserved the budget)."""
    tag = identity_tag(identity)
    fd = os.open(spool / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        mine = 0
        reserved = 0
        for entry in os.scandir(spool):
            parsed = _parse(entry.name)
            if parsed is None:
                continue
            owner, size, pid = parsed
            if not _alive(pid):
                shutil.rmtree(entry.path, ignore_errors=True)
                continue
            reserved += size
            mine += owner == tag
        if mine >= per_identity:
            raise LimitExceeded(
                f"identity {identity} already has {mine} uploads in flight, the limit "
                f"(upload_max_concurrent_per_identity); try again when one has ended",
                code=ErrorCode.TOO_MANY_UPLOADS)
        if reserved + reserve > budget:
            raise StorageFull(
                f"the upload spool cannot take {reserve} more bytes now: uploads in flight "
                f"have reserved {reserved} of {budget} (upload_spool_max_bytes); try again "
                "later", code=ErrorCode.SPOOL_FULL)
        return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{tag}-{reserve}-{os.getpid()}-",
                                     dir=spool))
    finally:
        os.close(fd)


def _parse(name: str) -> tuple[str, int, int] | None:
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].split("-", 3)
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to judge, count it
        return True
    return True

