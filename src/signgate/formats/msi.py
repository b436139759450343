"""Authenticode over MSI packages: what the MSI SIP hashes, where the signature goes.

An MSI is a compound file (``cfb.py``). Its Authenticode signature is the DER SignedData
held by the root storage's stream ``\\x05DigitalSignature``, and what it signs is the
digest of (osslsigncode's ``msi.c``, ``msi_hash_dir``, which Windows' MSI SIP agrees with):

- the content of every stream of a storage, the storage's children taken in the SIP's
  order (:func:`sip_key`: their UTF-16LE names with the terminating NUL, compared byte by
  byte; of two names one of which begins the other, the longer first), a sub-storage
  hashed in full in its place;
- after a storage's children, its CLSID (16 bytes as stored); the root's comes last;
- at the root only, ``\\x05DigitalSignature`` and ``\\x05MsiDigitalSignatureEx`` are left
  out (empty streams add nothing).

Stream names, times and state bits are not covered; ``MsiDigitalSignatureEx`` (a
pre-hash of that metadata) would cover them. signgate does not write it, as osslsigncode
does not by default, and refuses a package that carries one, since it cannot account for
it: the signature it holds would be over other bytes than the ones signgate hashes.

Signing writes a new compound file with every storage and stream of the original (same
names, CLSIDs, times and state bits) and the new ``\\x05DigitalSignature`` in place of
any old one (``\\x05MsiDigitalSignatureEx`` dropped). The streams are read again for that
copy and hashed on the way: if the bytes differ from what was signed, nothing is written
(``artifact_changed``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats import cfb
from signgate.formats.base import Progress
from signgate.formats.files import commit_file, replaces, temporary_beside

DIGITAL_SIGNATURE = "\x05DigitalSignature".encode("utf-16-le")
SIGNATURE_EX = "\x05MsiDigitalSignatureEx".encode("utf-16-le")
# The MSI SIP's GUID {000C10F1-0000-0000-C000-000000000046}, in Windows' byte order
# (osslsigncode msi.c, SpcUUIDSipInfoMsi)
SIP_GUID = bytes.fromhex("f1100c0000000000c000000000000046")
SIP_VERSION = 1  # SpcSipInfo's first integer for MSI (osslsigncode msi_spc_sip_info_get)
_MAX_SIGNATURE = 16 << 20  # a signature, not a payload: refuse absurd streams


def _sip_compare(a: cfb.Node, b: cfb.Node) -> int:
    """osslsigncode's ``dirent_cmp_hash``: memcmp over the shorter of the two names, each
    with its NUL terminator; on a tie the longer name sorts first."""
    x, y = a.name + b"\0\0", b.name + b"\0\0"
    n = min(len(x), len(y))
    if x[:n] != y[:n]:
        return -1 if x[:n] < y[:n] else 1
    return -1 if len(x) > len(y) else 1


sip_key = cmp_to_key(_sip_compare)


def _bad(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path.name} is not an MSI package signgate can sign: {why}",
                        code=ErrorCode.INVALID_MSI, reason=why)


def is_msi(head: bytes) -> bool:
    return cfb.is_compound_file(head)


def _signed_children(storage: cfb.Node, root: bool) -> list[cfb.Node]:
    kids = sorted(storage.children, key=sip_key)
    if root:
        kids = [k for k in kids if k.name not in (DIGITAL_SIGNATURE, SIGNATURE_EX)]
    return kids


def _hashed(storage: cfb.Node, root: bool = True) -> Iterator[cfb.Node | bytes]:
    """What the digest covers, in order: streams (their content) and CLSIDs."""
    for kid in _signed_children(storage, root):
        if kid.kind == cfb.STREAM:
            if kid.size:
                yield kid
        else:
            yield from _hashed(kid, root=False)
    yield storage.clsid


def _feed(h: hashlib._Hash, chunks: Iterable[bytes], progress: Progress | None) -> None:
    for chunk in chunks:
        h.update(chunk)
        if progress is not None:
            progress(len(chunk))


def _check(path: Path, root: cfb.Node) -> None:
    ex = root.child(SIGNATURE_EX)
    if ex is not None:
        raise _bad(path, "it carries an MsiDigitalSignatureEx stream (a signature over "
                         "its metadata too), which signgate does not make or verify; "
                         "remove its signature first (osslsigncode remove-signature)")
    sig = root.child(DIGITAL_SIGNATURE)
    if sig is not None and sig.kind != cfb.STREAM:
        raise _bad(path, "its \\x05DigitalSignature is a storage, not a stream")


@dataclass(frozen=True)
class MsiDigest:
    """The digest of an MSI and how it was computed (for :func:`write_signed` to check
    that it copies the same bytes)."""

    digest: bytes
    algorithm: DigestAlgorithm


def digest(path: Path, algorithm: DigestAlgorithm,
           progress: Progress | None = None) -> MsiDigest:
    """The Authenticode digest of the MSI at ``path`` (signed or not), reading one stream
    at a time, in chunks."""
    with cfb.CompoundFile(path) as package:
        _check(path, package.root)
        h = hashlib.new(algorithm.value)
        for item in _hashed(package.root):
            if isinstance(item, bytes):
                h.update(item)
            else:
                assert item.read is not None
                _feed(h, item.read(), progress)
    return MsiDigest(h.digest(), algorithm)


def signature(path: Path) -> bytes | None:
    """The bytes of the ``\\x05DigitalSignature`` stream, None when there is none."""
    with cfb.CompoundFile(path) as package:
        _check(path, package.root)
        sig = package.root.child(DIGITAL_SIGNATURE)
        if sig is None:
            return None
        if not sig.size or sig.size > _MAX_SIGNATURE:
            raise _bad(path, f"its \\x05DigitalSignature stream holds {sig.size} bytes")
        assert sig.read is not None
        return b"".join(sig.read())


def write_signed(source: Path, hashed: MsiDigest, signed_data: bytes, output: Path) -> None:
    """Write ``source`` with ``signed_data`` as its ``\\x05DigitalSignature`` to
    ``output``: a new compound file beside ``output``, renamed into place (fsynced
    first when it replaces ``source``). ``source`` must still hash to ``hashed``."""
    tmp = temporary_beside(output)
    try:
        with cfb.CompoundFile(source) as package, tmp.open("r+b") as out:
            root = package.root
            _check(source, root)
            kept = [k for k in root.children if k.name not in (DIGITAL_SIGNATURE,
                                                                 SIGNATURE_EX)]
            stream = cfb.Node(DIGITAL_SIGNATURE, cfb.STREAM, size=len(signed_data))
            copy = cfb.Node(root.name, cfb.ROOT, clsid=root.clsid,
                            state_bits=root.state_bits, modified=root.modified,
                            children=[*kept, stream])
            writer = cfb.Writer(copy, out)
            h = hashlib.new(hashed.algorithm.value)
            for item in _hashed(root):
                if isinstance(item, bytes):
                    h.update(item)
                    continue
                assert item.read is not None
                writer.stream(item, _tee(h, item.read()))
            writer.stream(stream, [signed_data])
            if h.digest() != hashed.digest:
                raise InvalidInput(f"{source} changed while it was being signed; sign it "
                                   "again", code=ErrorCode.ARTIFACT_CHANGED)
            writer.close()
    except ValueError as exc:  # the writer's: a stream shorter or longer than it said
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"{source} changed while it was being signed ({exc}); sign it "
                           "again", code=ErrorCode.ARTIFACT_CHANGED) from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit_file(tmp, output, os.stat(source).st_mode & 0o777, replaces(source, output))


def _tee(h: hashlib._Hash, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        h.update(chunk)
        yield chunk
