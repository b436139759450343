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
    return feed_stream(hashlib.new(algorithm.value), stream, progress).digest()


def feed_stream(
    h: hashlib._Hash,
    stream: BufferedIOBase | RawIOBase,
    progress: Callable[[int], None] | None = None,
) -> hashlib._Hash:
    """Feed ``stream`` to the hash object ``h`` in 1 MiB chunks and return it (formats that
    hash more after the file, like OpenPGP's trailer, go on feeding it)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = stream.readinto(view)
        if not n:
            break
        h.update(view[:n])
        if progress is not None:
            progress(n)
    return h
