"""Streaming file digests (the client hashes artifacts locally; they never leave)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from io import BufferedIOBase, RawIOBase

from signgate.crypto.algorithms import DigestAlgorithm

CHUNK = 1 << 20


def digest_stream(
    stream: BufferedIOBase | RawIOBase,
    algorithm: DigestAlgorithm = DigestAlgorithm.SHA256,
    progress: Callable[[int], None] | None = None,
) -> bytes:
    """Hash ``stream`` in 1 MiB chunks, calling ``progress(n)`` after each chunk."""
    h = hashlib.new(algorithm.value)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = stream.readinto(view)
        if not n:
            break
        h.update(view[:n])
        if progress is not None:
            progress(n)
    return h.digest()
