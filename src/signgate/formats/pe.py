"""Just enough PE/COFF to hash and sign a Windows executable, streaming.

Follows Microsoft's "Windows Authenticode Portable Executable Signature Format" (the
*Authenticode spec* below) and the PE/COFF specification (*PE spec*). Nothing here loads
the whole file: the image hash, the PE checksum and the signed copy are all computed in
bounded memory, whatever the size of the executable.

The Authenticode image hash covers every byte of the file except three: the optional
header's ``CheckSum`` field, the certificate-table entry of the data directory (entry 4),
and the attribute-certificate table itself (Authenticode spec, "Calculating the PE Image
Hash"). Like signtool and osslsigncode, we hash the file sequentially rather than section
by section, which is equivalent for the files those tools produce and accept. The one
subtlety is padding: the certificate table must start on an 8-byte boundary, so an
unsigned file whose length is not a multiple of 8 is hashed *with* the zero bytes that
:func:`write_signed` will add before the table.

Because the certificate table is not hashed, nothing in it is covered by the signature,
so an existing table is accepted only in the one shape signgate writes and can account
for (:func:`_check_entries`): exactly one ``WIN_CERTIFICATE`` (revision 2.0, type
PKCS_SIGNED_DATA) holding exactly one DER SignedData, followed by nothing but the zero
padding to the next 8-byte boundary. A second entry (which osslsigncode reports as a
"Corrupted attribute certificate table") or bytes after the SignedData inside the entry
(the CVE-2013-3900 pattern that Windows refuses with ``EnableCertPaddingCheck``) are
refused, when verifying and before re-signing alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import mmap
import os
import struct
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats.base import Progress
from signgate.formats.files import (
    commit_file,
    read_exact,
    replaces,
    signed_copy,
    temporary_beside,
)

# 8 MiB reads: the hash runs in a helper thread. With the pure-Python checksum (no C
# compiler at install time) it must win the GIL back from the checksum loop for every
# chunk, so fewer, larger chunks let the two overlap (1 MiB: 0.18 s, 8 MiB: 0.14 s for a
# 105 MB image); the C sum runs without the GIL, and 1 to 8 MiB measure alike. Two
# buffers: 16 MiB whatever the file size.
CHUNK = 8 << 20
_MZ = b"MZ"
_PE = b"PE\0\0"
_PE32 = 0x10B
_PE32_PLUS = 0x20B
_CERT_TABLE = 4  # data directory index of the certificate table (PE spec §3.4.3)
WIN_CERT_REVISION_2 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
_MAX_CERT_TABLE = 64 << 20  # a signature, not a payload: refuse absurd tables


def _pad8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True)
class PeLayout:
    """Where the fields the Authenticode hash skips live, and where the image ends."""

    size: int  # the file's length
    checksum_offset: int  # optional header CheckSum (4 bytes)
    cert_dir_offset: int  # data directory entry 4 (8 bytes: RVA, Size)
    cert_table_offset: int  # 0 when unsigned; a file offset, not an RVA (PE spec §4)
    cert_table_size: int
    pe32_plus: bool
    signature_size: int = 0  # DER length of the one PKCS#7 SignedData in the table

    @property
    def content_end(self) -> int:
        """The end of what is hashed and kept: where the certificate table starts, or
        the end of the file when there is none."""
        return self.cert_table_offset if self.cert_table_offset else self.size

    @property
    def padding(self) -> int:
        """Zero bytes between the content and an 8-aligned certificate table."""
        return _pad8(self.content_end) - self.content_end


def _bad(path: Path, why: str) -> InvalidInput:
    """Refusal of a malformed PE. ``reason`` (the why alone) lets a verifier say the same
    thing as a failed verification instead (formats/authenticode.py)."""
    return InvalidInput(f"{path.name} is not a PE file signgate can sign: {why}",
                        code=ErrorCode.INVALID_PE, reason=why)


def _read_exact(f: BinaryIO, offset: int, n: int, path: Path, what: str) -> bytes:
    return read_exact(f, offset, n, what, lambda why: _bad(path, why))


def parse(f: BinaryIO, path: Path) -> PeLayout:
    """Locate the checksum, the certificate-table entry and the table (PE spec §3, §4).

    Raises InvalidInput for anything that is not a well-formed PE image or whose
    certificate table cannot be replaced cleanly (outside the file, not at its end)."""
    size = os.fstat(f.fileno()).st_size
    dos = _read_exact(f, 0, 64, path, "DOS header")
    if dos[:2] != _MZ:
        raise _bad(path, "no MZ signature")
    (e_lfanew,) = struct.unpack_from("<I", dos, 0x3C)
    if e_lfanew < 64 or e_lfanew > size:
        raise _bad(path, f"e_lfanew {e_lfanew} points outside the file")
    head = _read_exact(f, e_lfanew, 4 + 20 + 2, path, "PE header")
    if head[:4] != _PE:
        raise _bad(path, "no PE signature at e_lfanew")
    (optional_size,) = struct.unpack_from("<H", head, 4 + 16)
    (magic,) = struct.unpack_from("<H", head, 24)
    if magic not in (_PE32, _PE32_PLUS):
        raise _bad(path, f"unknown optional header magic {magic:#x}")
    pe32_plus = magic == _PE32_PLUS
    optional = e_lfanew + 24
    # NumberOfRvaAndSizes sits at 92 (PE32) / 108 (PE32+); directories follow it.
    count_at = optional + (108 if pe32_plus else 92)
    (dir_count,) = struct.unpack("<I", _read_exact(f, count_at, 4, path, "optional header"))
    if dir_count <= _CERT_TABLE:
        raise _bad(path, "the data directory has no certificate-table entry")
    cert_dir = count_at + 4 + 8 * _CERT_TABLE
    if cert_dir + 8 > optional + optional_size:
        raise _bad(path, "the optional header is shorter than its data directory")
    table, table_size = struct.unpack("<II", _read_exact(f, cert_dir, 8, path,
                                                          "certificate-table entry"))
    layout = PeLayout(size, optional + 64, cert_dir, table, table_size, pe32_plus)
    if table or table_size:
        _check_table(layout, path)
        layout = dataclasses.replace(layout, signature_size=_check_entries(f, layout, path))
    return layout


def _check_table(layout: PeLayout, path: Path) -> None:
    """The existing certificate table must lie inside the file, after the headers, and
    end it: Authenticode puts it last, and replacing it is only clean if nothing follows."""
    start, length = layout.cert_table_offset, layout.cert_table_size
    if start == 0 or length == 0 or length > _MAX_CERT_TABLE:
        raise _bad(path, f"certificate table entry ({start}, {length}) is malformed")
    if start % 8:
        raise _bad(path, f"certificate table at offset {start} is not 8-byte aligned")
    if start < layout.cert_dir_offset + 8 or start + length > layout.size:
        raise _bad(path, f"certificate table ({start}+{length} bytes) points outside the "
                         f"file ({layout.size} bytes)")
    if _pad8(start + length) < layout.size:
        raise _bad(path, "data follows the certificate table; Authenticode requires the "
                         "table at the end of the file")


def _der_length(header: bytes) -> int | None:
    """The total length (tag, length and contents) of the DER SEQUENCE starting
    ``header``, or None if it is not one: definite length, minimally encoded (X.690
    §10.1, §8.1.3), at most 4 length octets (a table is at most 64 MiB anyway)."""
    if len(header) < 2 or header[0] != 0x30:
        return None
    first = header[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(header) < 2 + count or header[2] == 0:
        return None  # 0x80 is BER's indefinite length; a leading zero octet is not minimal
    length = int.from_bytes(header[2:2 + count], "big")
    if length < 0x80:
        return None  # would fit the short form
    return 2 + count + length


def _check_entries(f: BinaryIO, layout: PeLayout, path: Path) -> int:
    """The certificate table holds exactly one attribute certificate and nothing else;
    returns the length of its SignedData.

    PE spec, "The Attribute Certificate Table (Image Only)" (learn.microsoft.com/windows/
    win32/debug/pe-format#the-attribute-certificate-table-image-only): each entry is a
    ``WIN_CERTIFICATE`` (``dwLength``, ``wRevision``, ``wCertificateType``,
    ``bCertificate``), and "if the bCertificate content does not end on a quadword
    boundary, the attribute certificate entry is padded with zeros, from the end of
    bCertificate to the next quadword boundary". For Authenticode, ``bCertificate`` is one
    PKCS#7 SignedData in DER (Authenticode spec, "Authenticode Signature Format"), whose
    own length says where it ends. So the only bytes allowed after the SignedData are
    fewer than 8 zeros up to that boundary; ``dwLength`` may count them (signtool,
    osslsigncode and signgate do) or not (the spec's reading). Anything else in the table
    is covered by no signature: a second entry, or data appended inside the entry
    (CVE-2013-3900, refused by Windows with ``EnableCertPaddingCheck``). Only the few
    header and tail bytes are read."""
    start, size = layout.cert_table_offset, layout.cert_table_size
    if size < 8 + 2:
        raise _bad(path, f"its certificate table ({size} bytes) is too short for a "
                         "WIN_CERTIFICATE")
    head = _read_exact(f, start, min(size, 8 + 6), path, "certificate table")
    length, revision, kind = struct.unpack_from("<IHH", head)
    if revision != WIN_CERT_REVISION_2 or kind != WIN_CERT_TYPE_PKCS_SIGNED_DATA:
        raise _bad(path, f"its certificate table starts with a WIN_CERTIFICATE of revision "
                         f"{revision:#06x}, type {kind:#06x}; Authenticode uses revision "
                         "0x0200, type 0x0002 (PKCS_SIGNED_DATA)")
    der = _der_length(head[8:])
    if der is None or 8 + der > size:
        raise _bad(path, "its WIN_CERTIFICATE does not hold one DER PKCS#7 SignedData")
    end = 8 + der
    if length < end:
        raise _bad(path, f"its WIN_CERTIFICATE's dwLength ({length}) is shorter than the "
                         f"SignedData it holds ({end} bytes with the header)")
    if length not in (end, _pad8(end)):
        raise _bad(path, f"its WIN_CERTIFICATE holds {length - end} bytes after its "
                         f"SignedData (dwLength {length}, SignedData {end} bytes with the "
                         "header); no signature covers them (the CVE-2013-3900 pattern)")
    if size != _pad8(end):
        raise _bad(path, f"its certificate table ({size} bytes) holds {size - _pad8(end)} "
                         "bytes after the signature's padded WIN_CERTIFICATE; only one entry "
                         "and its zero padding to 8 bytes are allowed (a second entry, or "
                         "data appended to the signature, is covered by no signature)")
    if _read_exact(f, start + end, size - end, path, "certificate padding").strip(b"\0"):
        raise _bad(path, "the padding after its signature is not zeros (data appended to a "
                         "signature is covered by no signature: CVE-2013-3900)")
    return der


def layout_of(path: Path) -> PeLayout:
    try:
        with path.open("rb") as f:
            return parse(f, path)
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def _sum_mod_python(data: bytes | memoryview) -> int:
    """``int.from_bytes(data, 'little')`` modulo 0xFFFF, 0xFFFF for a non-zero multiple
    (see :class:`_Checksum`), at 1 to 2.4 ns a byte: the fallback of the C loop."""
    view = memoryview(data)
    piece = _Checksum.PIECE
    value = sum(int.from_bytes(view[i:i + piece], "little")
                for i in range(0, len(view), piece))
    return (value % 0xFFFF or 0xFFFF) if value else 0


try:  # built from _pe_checksum.c at install time unless no C compiler was found
    from signgate.formats._pe_checksum import sum_mod as _sum_mod
except ImportError:  # pragma: no cover - depends on the installation
    _sum_mod = _sum_mod_python

ACCELERATED = _sum_mod is not _sum_mod_python  # for tests and benchmarks to report


class _Checksum:
    """The PE checksum (the one of ``CheckSumMappedFile``): the 16-bit little-endian words
    of the file added with end-around carry, then the file length.

    A ones'-complement sum is the sum modulo 0xFFFF, and 0x10000 ≡ 1 (mod 0xFFFF), so the
    words of any even-length piece sum to ``int.from_bytes(piece, 'little') mod 0xFFFF``.
    That sum is the one loop over every byte that Python cannot run at memory speed:
    ``_pe_checksum.c`` does it (0.15 ns a byte), else :func:`_sum_mod_python` in pieces
    of 16 KiB (converting and dividing megabyte-sized integers is slower; 1 to 2.4 ns a
    byte, half of the client's CPU time for a big executable). A chunk at an odd offset
    is shifted by one byte (times 0x100). The only case the modulus cannot tell apart, a
    non-zero sum that is a multiple of 0xFFFF, is 0xFFFF (end-around carry never returns
    to 0 once a word was non-zero), which both sums return as 0xFFFF."""

    PIECE = 1 << 14  # even, so every piece starts on a word boundary of its chunk

    def __init__(self) -> None:
        self.total = 0
        self.nonzero = False

    def add(self, data: bytes | memoryview, offset: int) -> None:
        value = _sum_mod(data)
        if value:
            self.nonzero = True
            self.total = (self.total + (value << (8 * (offset & 1)))) % 0xFFFF

    def value(self, length: int) -> int:
        folded = self.total if (self.total or not self.nonzero) else 0xFFFF
        return (folded + length) & 0xFFFFFFFF


class TempCopy:
    """A temporary file that is removed unless it was put in place: when its owner is
    garbage-collected, or at exit (a refused signing leaves nothing behind)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._finalizer = weakref.finalize(self, _remove, path)

    def placed(self) -> None:
        self._finalizer.detach()

    def discard(self) -> None:
        self._finalizer()


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ImageDigest:
    """What reading the file once yields: the Authenticode digest to sign, the PE
    checksum of the unsigned image, and (when asked for) a copy of exactly the bytes that
    were hashed, beside the file, for :func:`write_signed` to complete: no second pass,
    and a file changed meanwhile cannot slip under the signature."""

    layout: PeLayout
    digest: bytes
    checksum: _Checksum
    copy: TempCopy | None = None


def _spans(layout: PeLayout) -> list[tuple[int, int]]:
    """The byte ranges the image hash covers (Authenticode spec, steps 3 to 14)."""
    return [(0, layout.checksum_offset),
            (layout.checksum_offset + 4, layout.cert_dir_offset),
            (layout.cert_dir_offset + 8, layout.content_end)]


def _pieces(spans: list[tuple[int, int]], at: int, n: int) -> list[tuple[int, int]]:
    """The parts of the chunk [at, at + n) that fall in ``spans``, relative to ``at``."""
    out = []
    for start, end in spans:
        lo, hi = max(start, at), min(end, at + n)
        if lo < hi:
            out.append((lo - at, hi - at))
    return out


def image_digest(path: Path, algorithm: DigestAlgorithm,
                 progress: Progress | None = None, keep_copy: bool = False) -> ImageDigest:
    """The Authenticode PE image hash of ``path``, read once in 8 MiB chunks; on the way,
    the checksum of the same bytes and, with ``keep_copy``, a copy of the image (without
    any old certificate table) in a temporary file beside ``path``.

    The hash runs in a helper thread (hashlib releases the GIL on large updates) while
    this one sums the checksum and writes the copy, so they cost about as much as the
    slowest of them. Two chunk buffers alternate: memory stays at 16 MiB whatever the
    file size.

    With ``keep_copy``, the kernel copies the file first where it can
    (:func:`_digest_of_copy`), and the hash and checksum read that copy."""
    if keep_copy:
        copied = _digest_of_copy(path, algorithm, progress)
        if copied is not None:
            return copied
    h = hashlib.new(algorithm.value)
    checksum = _Checksum()
    views = [memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK))]
    pending: Future[None] | None = None
    turn = 0
    copy = TempCopy(temporary_beside(path)) if keep_copy else None
    try:
        with path.open("rb") as f, ThreadPoolExecutor(1) as hasher, \
                contextlib.ExitStack() as stack:
            out = stack.enter_context(copy.path.open("wb")) if copy is not None else None
            layout = parse(f, path)
            spans = _spans(layout)
            f.seek(0)
            at = 0
            while at < layout.content_end:
                view = views[turn]
                turn ^= 1
                n = f.readinto(view[:min(CHUNK, layout.content_end - at)])
                if not n:
                    raise _bad(path, "the file shrank while it was read")
                pieces = _pieces(spans, at, n)
                if pending is not None:
                    pending.result()  # the other buffer is free again
                pending = hasher.submit(_update_all, h, [view[a:b] for a, b in pieces])
                for a, b in pieces:
                    checksum.add(view[a:b], at + a)
                if out is not None:
                    out.write(view[:n])
                at += n
                if progress is not None:
                    progress(n)
            if pending is not None:
                pending.result()
    except OSError as exc:
        if copy is not None:
            copy.discard()
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    except BaseException:
        if copy is not None:
            copy.discard()
        raise
    h.update(bytes(layout.padding))  # zeros written before the table (see module doc)
    return ImageDigest(layout, h.digest(), checksum, copy)


def _update_all(h: Any, pieces: list[memoryview]) -> None:
    for piece in pieces:
        h.update(piece)


# What a file system without copy_file_range or a mappable file answers: read and write.
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV}


def _digest_of_copy(path: Path, algorithm: DigestAlgorithm,
                    progress: Progress | None) -> ImageDigest | None:
    """:func:`image_digest` with ``keep_copy`` at a lower cost: each chunk is copied by
    the kernel (``copy_file_range``: no trip through this process's memory), then hashed
    (helper thread) and summed from the copy, mapped into memory: what is signed is the
    copy, so a file changed meanwhile still cannot slip under the signature. Against
    reading into a buffer and writing it out, a gigabyte cost 1.8 to 2.9 s of CPU time
    instead of 3.6 to 4.8 (in process, on the shared 2-core machine at load 7 to 10). The
    mapping is of our own temporary file, made full size first, so no access falls past
    its end.

    None when the file system cannot copy or map (the caller reads and writes instead)."""
    if not hasattr(os, "copy_file_range"):  # Linux only
        return None
    copy = TempCopy(temporary_beside(path))
    done = False
    try:
        with path.open("rb") as src, copy.path.open("r+b") as dst:
            layout = parse(src, path)
            os.ftruncate(dst.fileno(), layout.size)
            first = min(CHUNK, layout.size)
            try:
                _copy_exactly(src, dst, 0, first, path)
                mapped = mmap.mmap(dst.fileno(), layout.size)
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    return None
                raise
            with mapped, ThreadPoolExecutor(1) as hasher:
                digest, checksum = _hash_mapped(mapped, layout, algorithm, progress, first,
                                                src, dst, path, hasher)
            # The copy's own headers: the layout hashed is the copy's, whatever the file
            # became meanwhile (its old certificate table was copied for this check).
            if parse(dst, copy.path) != layout:
                raise InvalidInput(f"{path} changed while it was being signed; sign it "
                                   "again", code=ErrorCode.ARTIFACT_CHANGED)
            os.ftruncate(dst.fileno(), layout.content_end)
        done = True
        return ImageDigest(layout, digest, checksum, copy)
    except OSError as exc:
        raise InvalidInput(f"cannot copy {path} to sign it: {exc.strerror}") from exc
    finally:
        if not done:
            copy.discard()


def _copy_exactly(src: BinaryIO, dst: BinaryIO, at: int, n: int, path: Path) -> None:
    """Bytes [at, at + n) of ``src`` to the same place in ``dst``, in the kernel."""
    end = at + n
    while at < end:
        copied = os.copy_file_range(src.fileno(), dst.fileno(), end - at, at, at)
        if not copied:
            raise _bad(path, "the file shrank while it was read")
        at += copied


def _hash_mapped(mapped: mmap.mmap, layout: PeLayout, algorithm: DigestAlgorithm,
                 progress: Progress | None, copied: int, src: BinaryIO, dst: BinaryIO,
                 path: Path, hasher: ThreadPoolExecutor) -> tuple[bytes, _Checksum]:
    """Hash and sum the mapped copy chunk by chunk, copying the next chunk while the
    helper thread hashes this one; every view of the mapping is released before return
    (the mapping cannot close while one is alive)."""
    h = hashlib.new(algorithm.value)
    checksum = _Checksum()
    spans = _spans(layout)
    whole = memoryview(mapped)
    pending: tuple[Future[None], list[memoryview]] | None = None
    at = 0
    try:
        while at < layout.size:
            n = min(CHUNK, layout.size - at)
            if at >= copied:
                _copy_exactly(src, dst, at, n, path)
                copied = at + n
            pieces = [whole[at + a:at + b] for a, b in _pieces(spans, at, n)]
            if pending is not None:
                _finish(pending)
            pending = (hasher.submit(_update_all, h, pieces), pieces)
            for piece, (a, _) in zip(pieces, _pieces(spans, at, n), strict=True):
                checksum.add(piece, at + a)
            at += n
            if progress is not None:
                progress(n)
        if pending is not None:
            _finish(pending)
            pending = None
    finally:
        if pending is not None:
            with contextlib.suppress(Exception):
                _finish(pending)
        whole.release()
    h.update(bytes(layout.padding))  # zeros written before the table (see module doc)
    return h.digest(), checksum


def _finish(pending: tuple[Future[None], list[memoryview]]) -> None:
    future, views = pending
    try:
        future.result()
    finally:
        for view in views:
            view.release()


def win_certificate(signed_data: bytes) -> bytes:
    """A WIN_CERTIFICATE holding a PKCS#7 SignedData, padded to 8 bytes (PE spec §4.1:
    dwLength counts the padding)."""
    length = _pad8(8 + len(signed_data))
    body = struct.pack("<IHH", length, WIN_CERT_REVISION_2, WIN_CERT_TYPE_PKCS_SIGNED_DATA)
    return (body + signed_data).ljust(length, b"\0")


def write_signed(source: Path, unsigned: ImageDigest, signed_data: bytes,
                 output: Path) -> None:
    """Copy ``source`` without its old certificate table to ``output``, append the new
    one and fix the data directory and checksum.

    The copy is the one :func:`image_digest` kept (else made by the kernel,
    ``copy_file_range``); the checksum is the one it summed, plus the new directory entry
    and table. Written to a temporary file beside ``output`` and renamed (fsynced first
    only when it replaces ``source``: ``files.commit_file``): ``source`` is never
    touched."""
    layout = unsigned.layout
    table = win_certificate(signed_data)
    table_at = _pad8(layout.content_end)
    entry = struct.pack("<II", table_at, len(table))
    total = table_at + len(table)
    checksum = _Checksum()
    checksum.total, checksum.nonzero = unsigned.checksum.total, unsigned.checksum.nonzero
    checksum.add(entry, layout.cert_dir_offset)
    checksum.add(table, table_at)
    if unsigned.copy is not None and unsigned.copy.path.exists():  # not used up yet
        try:
            _complete(unsigned.copy.path, layout, table, entry, checksum.value(total))
            _place(unsigned.copy.path, output, os.stat(source).st_mode & 0o777,
                   replaces(source, output))
        except BaseException:
            unsigned.copy.discard()
            raise
        unsigned.copy.placed()
        return
    with signed_copy(source, output) as tmp, source.open("rb") as src, \
            tmp.open("r+b") as dst:
        if parse(src, source) != layout:
            raise InvalidInput(f"{source} changed while it was being signed; sign it "
                               "again", code=ErrorCode.ARTIFACT_CHANGED)
        _copy(src, dst, layout.content_end)
        dst.write(bytes(layout.padding))
        dst.write(table)
        dst.seek(layout.cert_dir_offset)
        dst.write(entry)
        dst.seek(layout.checksum_offset)
        dst.write(struct.pack("<I", checksum.value(total)))


def _complete(copy: Path, layout: PeLayout, table: bytes, entry: bytes,
              checksum: int) -> None:
    """Turn the copy of the hashed image into the signed file."""
    try:
        with copy.open("r+b") as dst:
            dst.seek(layout.content_end)
            dst.write(bytes(layout.padding))
            dst.write(table)
            dst.seek(layout.cert_dir_offset)
            dst.write(entry)
            dst.seek(layout.checksum_offset)
            dst.write(struct.pack("<I", checksum))
    except OSError as exc:
        raise InvalidInput(f"cannot write {copy}: {exc.strerror}") from exc


def _place(copy: Path, output: Path, mode: int, durable: bool) -> None:
    """The completed copy becomes ``output``: renamed when on the same file system,
    else copied to a temporary file beside ``output`` first (the rename stays atomic)."""
    try:
        same = copy.parent.resolve() == (output.parent if str(output.parent) else
                                         Path(".")).resolve()
    except OSError:
        same = False
    if same:
        commit_file(copy, output, mode, durable)
        return
    tmp = temporary_beside(output)
    try:
        with copy.open("rb") as src, tmp.open("r+b") as dst:
            _copy(src, dst, copy.stat().st_size)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    commit_file(tmp, output, mode, durable)
    copy.unlink(missing_ok=True)


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    """The first ``length`` bytes of ``src`` to ``dst``, in the kernel when it can."""
    src.seek(0)
    dst.seek(0)
    copied = 0
    copy_range = getattr(os, "copy_file_range", None)  # Linux only
    try:
        while copy_range is not None and copied < length:
            n = copy_range(src.fileno(), dst.fileno(), length - copied, copied, copied)
            if n == 0:
                break
            copied += n
    except OSError:
        pass  # cross-device or unsupported: fall back to read/write below
    src.seek(copied)
    dst.seek(copied)
    while copied < length:
        data = src.read(min(CHUNK, length - copied))
        if not data:
            raise InvalidInput("the file shrank while it was being signed",
                               code=ErrorCode.ARTIFACT_CHANGED)
        dst.write(data)
        copied += len(data)
    dst.seek(length)


def certificate_table(path: Path) -> tuple[PeLayout, bytes | None]:
    """The PKCS#7 SignedData (DER, exactly) of the file's one WIN_CERTIFICATE, or None
    when the file is unsigned. :func:`parse` has already refused any other table."""
    try:
        with path.open("rb") as f:
            layout = parse(f, path)
            if not layout.cert_table_offset:
                return layout, None
            blob = _read_exact(f, layout.cert_table_offset + 8, layout.signature_size, path,
                               "signature")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    return layout, blob
