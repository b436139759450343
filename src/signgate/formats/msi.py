"""Authenticode over MSI packages: what the MSI SIP hashes, where the signature goes.

An MSI is a compound file (``cfb.py``). Its Authenticode signature is the DER SignedData
held by the root storage's stream ``\\x05DigitalSignature``, and what it signs is the
digest of (osslsigncode's ``msi.c``, ``msi_hash_dir``, which Windows' MSI SIP agrees with):

- the content of every stream of a storage, the storage's children taken in the SIP's
  order (:func:`sip_key`: their UTF-16LE names with the terminating NUL, compared byte by
  byte, so a name comes before the names it begins), a sub-storage hashed in full in its
  place;
- after a storage's children, its CLSID (16 bytes as stored); the root's comes last;
- at the root only, ``\\x05DigitalSignature`` and ``\\x05MsiDigitalSignatureEx`` are left
  out (empty streams add nothing).

Stream names, times and state bits are not covered by that digest. A package may also
carry ``\\x05MsiDigitalSignatureEx`` (signtool adds it; osslsigncode with ``-add-msi-dse``):
the digest of that metadata (:func:`prehash`: each entry's name, CLSID or size, state bits
and times, in the same order), which then also starts the signed digest. signgate keeps a
package's mode: one signed with it is re-signed with it (the pre-hash computed anew), one
without it gets none, as osslsigncode does by default. Verifying, the stream must hold
exactly the pre-hash: nothing else in it would be covered.

Signing writes a new compound file with every storage and stream of the original (same
names, CLSIDs, times and state bits) and the new signature streams in place of any old
ones. The streams are read again for that copy and hashed on the way: if the bytes differ
from what was signed, nothing is written (``artifact_changed``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path
from typing import BinaryIO

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats import cfb
from signgate.formats.base import Progress
from signgate.formats.files import signed_copy

DIGITAL_SIGNATURE = "\x05DigitalSignature".encode("utf-16-le")
SIGNATURE_EX = "\x05MsiDigitalSignatureEx".encode("utf-16-le")
# The MSI SIP's GUID {000C10F1-0000-0000-C000-000000000046}, in Windows' byte order
# (osslsigncode msi.c, SpcUUIDSipInfoMsi)
SIP_GUID = bytes.fromhex("f1100c0000000000c000000000000046")
SIP_VERSION = 1  # SpcSipInfo's first integer for MSI (osslsigncode msi_spc_sip_info_get)
_MAX_SIGNATURE = 16 << 20  # a signature, not a payload: refuse absurd streams


def _sip_compare(a: cfb.Node, b: cfb.Node) -> int:
    """osslsigncode's ``dirent_cmp_hash``: memcmp over the shorter of the two names, each
    with its NUL terminator (on a tie, which only equal names make, the longer first)."""
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


def _metadata(node: cfb.Node) -> bytes:
    """What the MsiDigitalSignatureEx pre-hash takes of one entry (osslsigncode msi.c,
    ``prehash_metadata``): its name (not the root's), its CLSID (a storage's) or the low 32
    bits of its size (a stream's), its state bits, and its two times (not the root's)."""
    out = b"" if node.kind == cfb.ROOT else node.name
    out += (struct.pack("<I", node.size & 0xFFFFFFFF) if node.kind == cfb.STREAM
            else node.clsid)
    out += struct.pack("<I", node.state_bits)
    if node.kind != cfb.ROOT:
        out += struct.pack("<QQ", node.created, node.modified)
    return out


def _prehashed(storage: cfb.Node, root: bool = True) -> Iterator[bytes]:
    """What the pre-hash covers, in order (``msi_prehash_dir``): the storage's own
    metadata, then each child's in the SIP's order, sub-storages in full in their place."""
    yield _metadata(storage)
    for kid in _signed_children(storage, root):
        if kid.kind == cfb.STREAM:
            yield _metadata(kid)
        else:
            yield from _prehashed(kid, root=False)


def prehash(root: cfb.Node, algorithm: DigestAlgorithm) -> bytes:
    """The MsiDigitalSignatureEx value of a package: the digest of its metadata."""
    h = hashlib.new(algorithm.value)
    for piece in _prehashed(root):
        h.update(piece)
    return h.digest()


def _feed(h: hashlib._Hash, chunks: Iterable[bytes], progress: Progress | None) -> int:
    fed = 0
    for chunk in chunks:
        h.update(chunk)
        fed += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return fed


def _check(path: Path, root: cfb.Node) -> None:
    for name in (DIGITAL_SIGNATURE, SIGNATURE_EX):
        found = root.child(name)
        if found is not None and found.kind != cfb.STREAM:
            raise _bad(path, f"its {found.text!r} is a storage, not a stream")


def _read_small(path: Path, node: cfb.Node, what: str) -> bytes:
    if not node.size or node.size > _MAX_SIGNATURE:
        raise _bad(path, f"its {what} stream holds {node.size} bytes")
    assert node.read is not None
    return b"".join(node.read())


@dataclass(frozen=True)
class MsiDigest:
    """The digest of an MSI and how it was computed (for :func:`write_signed` to check
    that it copies the same bytes)."""

    digest: bytes
    algorithm: DigestAlgorithm
    prehash: bytes | None = None  # the MsiDigitalSignatureEx the signed copy carries


def digest(path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
           signing: bool = False) -> MsiDigest:
    """The Authenticode digest of the MSI at ``path`` (signed or not), reading one stream
    at a time, in chunks.

    A package with an ``MsiDigitalSignatureEx`` stream is signed in that mode: its digest
    starts with the pre-hash of its metadata. Verifying (not ``signing``), the stream must
    hold exactly that pre-hash, of this algorithm: nothing else would be covered; signing,
    the old value is replaced by the new one."""
    with cfb.CompoundFile(path) as package:
        root = package.root
        _check(path, root)
        h = hashlib.new(algorithm.value)
        ex = root.child(SIGNATURE_EX)
        pre = None
        if ex is not None:
            pre = prehash(root, algorithm)
            if not signing and _read_small(path, ex, "MsiDigitalSignatureEx") != pre:
                raise _bad(path, f"its MsiDigitalSignatureEx is not the {algorithm.value} "
                                 "pre-hash of its streams' names, sizes and times")
            h.update(pre)
        fed = 0
        for item in _hashed(root):
            if isinstance(item, bytes):
                h.update(item)
            else:
                assert item.read is not None
                fed += _feed(h, item.read(), progress)
        if progress is not None:  # the rest of the file (structure) counts as read too
            progress(max(0, package.size - fed))
    return MsiDigest(h.digest(), algorithm, pre)


def signature(path: Path) -> bytes | None:
    """The bytes of the ``\\x05DigitalSignature`` stream, None when there is none."""
    with cfb.CompoundFile(path) as package:
        _check(path, package.root)
        sig = package.root.child(DIGITAL_SIGNATURE)
        if sig is None:
            if package.root.child(SIGNATURE_EX) is not None:
                raise _bad(path, "it holds an MsiDigitalSignatureEx without a signature")
            return None
        return _read_small(path, sig, "\\x05DigitalSignature")


def write_signed(source: Path, hashed: MsiDigest, signed_data: bytes, output: Path) -> None:
    """Write ``source`` with ``signed_data`` as its ``\\x05DigitalSignature`` to
    ``output``: a new compound file beside ``output``, renamed into place (fsynced
    first when it replaces ``source``). ``source`` must still hash to ``hashed``."""
    with signed_copy(source, output) as tmp, cfb.CompoundFile(source) as package, \
            tmp.open("r+b") as out:
        try:
            _write_copy(source, package.root, hashed, signed_data, out)
        except ValueError as exc:  # a stream shorter or longer than it was when hashed
            raise InvalidInput(f"{source} changed while it was being signed ({exc}); "
                               "sign it again", code=ErrorCode.ARTIFACT_CHANGED) from exc


def _write_copy(source: Path, root: cfb.Node, hashed: MsiDigest, signed_data: bytes,
                out: BinaryIO) -> None:
    """Every stream of ``root`` but the old signatures, hashed again on the way, then the
    new signature (and the original MsiDigitalSignatureEx, which covers the copy too)."""
    _check(source, root)
    kept = [k for k in root.children if k.name not in (DIGITAL_SIGNATURE, SIGNATURE_EX)]
    stream = cfb.Node(DIGITAL_SIGNATURE, cfb.STREAM, size=len(signed_data))
    added = [stream]
    h = hashlib.new(hashed.algorithm.value)
    if hashed.prehash is not None:  # the metadata of the copy is the original's
        if prehash(root, hashed.algorithm) != hashed.prehash:
            raise InvalidInput(f"{source} changed while it was being signed; sign it "
                               "again", code=ErrorCode.ARTIFACT_CHANGED)
        ex = cfb.Node(SIGNATURE_EX, cfb.STREAM, size=len(hashed.prehash))
        added.append(ex)
        h.update(hashed.prehash)
    copy = cfb.Node(root.name, cfb.ROOT, clsid=root.clsid, state_bits=root.state_bits,
                    modified=root.modified, children=[*kept, *added])
    try:
        writer = cfb.Writer(copy, out)
    except ValueError as exc:  # a tree no compound file can hold
        raise _bad(source, str(exc)) from exc
    if hashed.prehash is not None:
        writer.stream(added[1], [hashed.prehash])
    for item in _hashed(root):
        if isinstance(item, bytes):
            h.update(item)
            continue
        assert item.read is not None
        writer.stream(item, _tee(h, item.read()))
    writer.stream(stream, [signed_data])
    if h.digest() != hashed.digest:
        raise InvalidInput(f"{source} changed while it was being signed; sign it again",
                           code=ErrorCode.ARTIFACT_CHANGED)
    writer.close()


def _tee(h: hashlib._Hash, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        h.update(chunk)
        yield chunk
