"""Where the software vault keeps its sealed blobs: a small repository it is given.

The vault (``soft.py``) seals and opens; it does not know where blobs live. Long-lived keys
go to the database (``signgate.store.vault.DatabaseBlobs``, which joins the caller's
transaction so a key version and its blob commit together); one-time keys and unit tests
use :class:`InMemoryBlobs`, which never leaves the process.
"""

from __future__ import annotations

import threading
from typing import Protocol


class SealedBlobs(Protocol):
    """Sealed key blobs by key URI. Blobs are opaque (already encrypted); a repository
    stores and returns them unchanged."""

    def put(self, uri: str, blob: bytes) -> None:
        """Store the blob of a new key (``uri`` is new: a second ``put`` is a defect)."""
        ...

    def get(self, uri: str) -> bytes | None:
        """The blob of ``uri``, or None if there is none (never stored, or deleted)."""
        ...

    def delete(self, uri: str) -> None:
        """Forget the blob of ``uri``; nothing happens if there is none."""
        ...


class InMemoryBlobs:
    """Blobs in a dict of this process: gone with it, never written anywhere."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryBlobs({len(self)} blobs)"

    def __len__(self) -> int:
        with self._lock:
            return len(self._blobs)

    def put(self, uri: str, blob: bytes) -> None:
        with self._lock:
            if uri in self._blobs:
                raise ValueError(f"a blob for {uri} is already stored")
            self._blobs[uri] = blob

    def get(self, uri: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(uri)

    def delete(self, uri: str) -> None:
        with self._lock:
            self._blobs.pop(uri, None)
