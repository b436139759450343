"""Hashing the signed file: the one read of the artifact that both the client half (to
sign) and the verifier (to check) make, before the signature's trailer is hashed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.digests import CHUNK
from signgate.errors import InvalidInput
from signgate.formats.base import Progress


def hash_file(path: Path, algorithm: DigestAlgorithm,
               progress: Progress | None) -> hashlib._Hash:
    """A hash object fed with the whole of ``path`` (the trailer comes after)."""
    h = hashlib.new(algorithm.value)
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                if progress is not None:
                    progress(len(chunk))
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    return h
