"""Just enough of the cabinet format to hash and sign a CAB archive, streaming.

Microsoft's "Microsoft Cabinet Format" (*CAB spec*, learn.microsoft.com/previous-versions/
ms974336): a CFHEADER, the CFFOLDER entries, then the CFFILE entries and the data. An
Authenticode signature lives after the data, found through the CFHEADER's reserved area
(``abReserve``, present when ``flags`` has ``cfhdrRESERVE_PRESENT``). The layout and the
digest are those of signtool as osslsigncode implements them (``cab.c``, read, not
copied):

- the reserved area is 20 bytes (``cbCFHeader`` = 20, ``cbCFFolder`` = ``cbCFData`` = 0):
  ``00 00 10 00``, the signature's offset (= ``cbCabinet``, the archive's size without
  the signature), the signature's length (DER padded with zeros to 8 bytes), 8 zeros;
- signing an archive without that area adds it: 24 more header bytes (the 4 of
  ``cbCFHeader``/``cbCFFolder``/``cbCFData`` and the 20), so ``cbCabinet``, ``coffFiles``
  and every CFFOLDER's ``coffCabStart`` grow by 24;
- the digest covers the signed layout without the signature: every byte before the
  signature except bytes 4-7 (``reserved1``) and 34-55 (``iCabinet``, the reserve sizes
  and the first 16 bytes of the reserved area, which hold the signature's place).

Multi-cabinet sets (``cfhdrPREV_CABINET``/``NEXT_CABINET``) and reserved areas of other
sizes are refused. Like a PE's certificate table, nothing may follow the signature but
its zero padding: those bytes would be covered by no signature.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput
from signgate.formats.base import Progress
from signgate.formats.files import commit_file, read_exact, replaces, temporary_beside
from signgate.formats.pe import TempCopy

MAGIC = b"MSCF"
CHUNK = 1 << 20
HEADER = 36  # CFHEADER without the optional fields (CAB spec, CFHEADER)
RESERVE = 20  # cbCFHeader of a signed archive
SIGNED_HEADER = HEADER + 4 + RESERVE  # 60
GROWTH = 4 + RESERVE  # what adding the reserved area adds before the folders
RESERVE_MARK = b"\x00\x00\x10\x00"  # abReserve[0:4] of a signed archive
PREV_CABINET, NEXT_CABINET, RESERVE_PRESENT = 0x0001, 0x0002, 0x0004
FOLDER = 8  # CFFOLDER without per-folder reserve: coffCabStart, cCFData, typeCompress
MAX_SIGNATURE = 64 << 20
# Byte ranges of the signed layout the digest leaves out (osslsigncode cab_digest_calc).
SKIPPED = ((4, 8), (34, 56))


def _bad(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path.name} is not a CAB archive signgate can sign: {why}",
                        reason=why)


@dataclass(frozen=True)
class CabLayout:
    size: int  # the file's length
    folders: int  # cFolders
    reserved: bool  # the 20-byte reserved area is there already
    content_end: int  # where the signature starts (the file's end when unsigned)
    signature_size: int = 0  # DER length of the signature, without its padding

    @property
    def body_start(self) -> int:
        """Where the bytes copied as they are start: after the CFFOLDER entries."""
        return (SIGNED_HEADER if self.reserved else HEADER) + FOLDER * self.folders

    @property
    def signed_end(self) -> int:
        """The signed layout's length without the signature (its ``cbCabinet``)."""
        return self.content_end + (0 if self.reserved else GROWTH)


def _read_exact(f: BinaryIO, offset: int, n: int, path: Path, what: str) -> bytes:
    return read_exact(f, offset, n, what, lambda why: _bad(path, why))


def parse(f: BinaryIO, path: Path) -> CabLayout:
    """Check the CFHEADER and locate the folders and any signature (CAB spec, CFHEADER)."""
    size = os.fstat(f.fileno()).st_size
    head = _read_exact(f, 0, HEADER, path, "CFHEADER")
    if head[:4] != MAGIC:
        raise _bad(path, "no MSCF signature")
    (reserved1, cabinet, _, files_at, _, minor, major, folders, _, flags) = \
        struct.unpack_from("<IIIIIBBHHH", head, 4)
    if reserved1:
        raise _bad(path, f"reserved1 is {reserved1:#x}, not 0")
    if (major, minor) != (1, 3):
        raise _bad(path, f"format version {major}.{minor}, not 1.3")
    if flags & (PREV_CABINET | NEXT_CABINET):
        raise _bad(path, "it is part of a multi-cabinet set, which signgate does not sign")
    if flags & ~RESERVE_PRESENT:
        raise _bad(path, f"unknown flags {flags:#06x}")
    if not flags & RESERVE_PRESENT:
        if cabinet != size:
            raise _bad(path, f"cbCabinet ({cabinet}) is not the file's size ({size})")
        layout = CabLayout(size, folders, False, size)
    else:
        layout = _reserved(f, path, size, cabinet, folders)
    start = SIGNED_HEADER if layout.reserved else HEADER
    if files_at != layout.body_start or layout.body_start > layout.content_end:
        raise _bad(path, f"coffFiles ({files_at}) is not right after the {folders} "
                         f"CFFOLDER entries at offset {start}")
    return layout


def _reserved(f: BinaryIO, path: Path, size: int, cabinet: int, folders: int) -> CabLayout:
    """An archive with a reserved area: signtool's 20 bytes, signed or not."""
    area = _read_exact(f, HEADER, 4 + RESERVE, path, "reserved area")
    header_size, folder_size, data_size = struct.unpack_from("<HBB", area)
    if (header_size, folder_size, data_size) != (RESERVE, 0, 0):
        raise _bad(path, f"its reserved areas ({header_size}, {folder_size}, {data_size} "
                         f"bytes) are not the {RESERVE}-byte header area of an "
                         "Authenticode signature")
    if area[4:8] != RESERVE_MARK or area[16:20].strip(b"\0"):
        raise _bad(path, "its reserved area is not the one of an Authenticode signature")
    at, length = struct.unpack_from("<II", area, 8)
    if at == 0 and length == 0:  # the place made, no signature yet
        if cabinet != size:
            raise _bad(path, f"cbCabinet ({cabinet}) is not the file's size ({size})")
        return CabLayout(size, folders, True, size)
    if at != cabinet or at + length != size or not 0 < length <= MAX_SIGNATURE:
        raise _bad(path, f"its signature ({length} bytes at offset {at}) is not at the end "
                         f"of the archive (cbCabinet {cabinet}, file {size} bytes)")
    der = _der_length(_read_exact(f, at, min(length, 6), path, "signature"))
    if der is None or der > length or length - der >= 8:
        raise _bad(path, f"its signature area ({length} bytes) does not hold one DER "
                         "PKCS#7 SignedData and its zero padding to 8 bytes")
    if _read_exact(f, at + der, length - der, path, "signature padding").strip(b"\0"):
        raise _bad(path, "the padding after its signature is not zeros (data appended to "
                         "a signature is covered by no signature)")
    return CabLayout(size, folders, True, at, der)


def _der_length(header: bytes) -> int | None:
    """The total length (tag, length, contents) of the DER SEQUENCE starting ``header``,
    or None if it is not one: definite length, minimally encoded (X.690 §10.1, §8.1.3),
    at most 4 length octets."""
    if len(header) < 2 or header[0] != 0x30:
        return None
    first = header[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(header) < 2 + count or header[2] == 0:
        return None
    length = int.from_bytes(header[2:2 + count], "big")
    return None if length < 0x80 else 2 + count + length


def signed_head(f: BinaryIO, path: Path, layout: CabLayout) -> bytes:
    """The signed layout's CFHEADER and CFFOLDER entries (the signature's place left
    zero): as they are for an archive with the reserved area, else with the area added
    and every offset after it moved by 24 bytes (CAB spec: ``coffFiles``,
    ``CFFOLDER.coffCabStart``)."""
    original = _read_exact(f, 0, layout.body_start, path, "CFFOLDER entries")
    if layout.reserved:
        head = bytearray(original)
        head[44:52] = bytes(8)
        return bytes(head)
    cabinet, = struct.unpack_from("<I", original, 8)
    files_at, = struct.unpack_from("<I", original, 16)
    flags, = struct.unpack_from("<H", original, 30)
    head = bytearray(original[:HEADER])
    struct.pack_into("<I", head, 8, cabinet + GROWTH)
    struct.pack_into("<I", head, 16, files_at + GROWTH)
    struct.pack_into("<H", head, 30, flags | RESERVE_PRESENT)
    head += struct.pack("<HBB", RESERVE, 0, 0) + RESERVE_MARK + bytes(RESERVE - 4)
    for i in range(layout.folders):
        entry = bytearray(original[HEADER + FOLDER * i:HEADER + FOLDER * (i + 1)])
        start, = struct.unpack_from("<I", entry)
        struct.pack_into("<I", entry, 0, start + GROWTH)
        head += entry
    return bytes(head)


def _hash_head(h: Any, head: bytes) -> None:
    at = 0
    for start, end in SKIPPED:
        h.update(head[at:start])
        at = end
    h.update(head[at:])


@dataclass(frozen=True)
class CabDigest:
    layout: CabLayout
    digest: bytes
    copy: TempCopy | None = None  # the signed layout without the signature


def cab_digest(path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> CabDigest:
    """The Authenticode digest of ``path`` as a signed archive, read once; with
    ``keep_copy``, the signed layout (without signature) written on the way to a
    temporary file beside ``path``, for :func:`write_signed` to complete."""
    h = hashlib.new(algorithm.value)
    copy = TempCopy(temporary_beside(path)) if keep_copy else None
    try:
        with path.open("rb") as f, (copy.path.open("wb") if copy else open(os.devnull, "wb")
                                    ) as out:
            layout = parse(f, path)
            head = signed_head(f, path, layout)
            _hash_head(h, head)
            out.write(head)
            f.seek(layout.body_start)
            left = layout.content_end - layout.body_start
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise _bad(path, "the file shrank while it was read")
                h.update(chunk)
                out.write(chunk)
                left -= len(chunk)
                if progress is not None:
                    progress(len(chunk))
    except IsADirectoryError:
        if copy is not None:
            copy.discard()
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        if copy is not None:
            copy.discard()
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    except BaseException:
        if copy is not None:
            copy.discard()
        raise
    return CabDigest(layout, h.digest(), copy)


def write_signed(source: Path, hashed: CabDigest, signed_data: bytes, output: Path) -> None:
    """Complete the copy :func:`cab_digest` kept: the signature and its zero padding at
    the end, its offset and length in the reserved area; then rename it to ``output``
    (atomically; ``source`` is never touched)."""
    copy = hashed.copy
    if copy is None or not copy.path.exists():
        raise InvalidInput(f"cannot write {output}: the hashed copy of {source.name} is gone")
    padded = signed_data + bytes(-len(signed_data) % 8)
    at = hashed.layout.signed_end
    try:
        mode = os.stat(source).st_mode & 0o777
        with copy.path.open("r+b") as dst:
            dst.seek(at)
            dst.write(padded)
            dst.seek(44)
            dst.write(struct.pack("<II", at, len(padded)))
        if copy.path.parent.resolve() != (output.parent if str(output.parent)
                                          else Path(".")).resolve():
            tmp = temporary_beside(output)
            shutil.copyfile(copy.path, tmp)
            copy.discard()
            commit_file(tmp, output, mode, replaces(source, output))
            return
        commit_file(copy.path, output, mode, replaces(source, output))
    except OSError as exc:
        copy.discard()
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    except BaseException:
        copy.discard()
        raise
    copy.placed()


def signature(path: Path) -> bytes | None:
    """The DER SignedData of a signed archive (exactly), None when it is unsigned."""
    try:
        with path.open("rb") as f:
            layout = parse(f, path)
            if not layout.signature_size:
                return None
            return _read_exact(f, layout.content_end, layout.signature_size, path,
                               "signature")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
