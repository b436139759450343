"""File work shared by the client halves of the formats: streaming digests, atomic writes.

No terminal here: progress is a callback the CLI turns into a progress bar.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.digests import feed_stream
from signgate.errors import InvalidInput
from signgate.formats.base import Progress


def hash_path(path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None) -> bytes:
    """Digest ``path`` without loading it."""
    return hash_file(path, algorithm, progress).digest()


def hash_file(path: Path, algorithm: DigestAlgorithm,
              progress: Progress | None = None) -> hashlib._Hash:
    """A hash object fed with the whole of ``path``, without loading it (a format that
    hashes more after the file, like OpenPGP's trailer, goes on feeding it)."""
    try:
        with path.open("rb") as f:
            return feed_stream(hashlib.new(algorithm.value), f, progress)
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def sidecar_token(signature: Path) -> bytes | None:
    """The RFC 3161 token ``signgate sign`` wrote beside a signature that has no place for
    one (``SIG.tsr``, a TimeStampResp), as a TimeStampToken; None when there is none."""
    from signgate.pki.validate import token_from_response

    tsr = signature.with_name(signature.name + ".tsr")
    try:
        data = tsr.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {tsr}: {exc.strerror}") from exc
    return token_from_response(data)


def temporary_beside(path: Path) -> Path:
    """A new empty file in ``path``'s directory, to be renamed over ``path`` when complete
    (same file system, so the rename is atomic)."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc
    os.close(fd)
    return Path(tmp)


def replaces(source: Path, output: Path) -> bool:
    """Does writing ``output`` replace the file ``source`` itself (signing in place, or
    through another name of the same file)?"""
    try:
        return os.path.samefile(source, output)
    except OSError:
        return False  # no output yet (or no source): nothing is replaced


def commit_file(tmp: Path, path: Path, mode: int = 0o644, durable: bool = True) -> None:
    """Rename ``tmp`` over ``path`` (fsynced first when ``durable``); on failure ``tmp``
    is removed.

    The rename alone is atomic for every reader: ``path`` is the old file or the new one,
    never half of one. What the fsync adds is the same after a power failure, and it costs
    the whole file's trip to the disk (seconds for a gigabyte on a slow disk, which neither
    osslsigncode nor jarsigner pays). A signed copy written beside its source
    (``durable=False``) loses nothing if a crash empties it: the source is intact, and
    signing again makes it anew. A file signed in place replaces its source, the only copy
    of the artifact: that one is made durable first (:func:`replaces`)."""
    try:
        if durable:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc


@contextmanager
def signed_copy(source: Path, output: Path) -> Iterator[Path]:
    """A new temporary file beside ``output`` for a format to write the signed copy of
    ``source`` into. When the block ends normally it becomes ``output``, with ``source``'s
    mode (:func:`commit_file`: fsynced first only when it replaces ``source``); on any
    failure it is removed, and a failure to write says so about ``output``."""
    tmp = temporary_beside(output)
    try:
        yield tmp
        mode = os.stat(source).st_mode & 0o777
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit_file(tmp, output, mode, replaces(source, output))


def read_exact(f: BinaryIO, offset: int, n: int, what: str,
               malformed: Callable[[str], Exception]) -> bytes:
    """``n`` bytes of ``f`` at ``offset``; when the file ends before them,
    ``malformed(why)`` is raised (the format's own refusal of a malformed file)."""
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        raise malformed(f"truncated ({what} at offset {offset} is cut off)")
    return data


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: never a half-written file."""
    tmp = temporary_beside(path)
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc
    commit_file(tmp, path, mode)
