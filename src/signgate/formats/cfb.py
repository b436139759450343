"""Compound files ([MS-CFB], the container of MSI packages): read the storage tree and the
streams, stream by stream, and write a new version 3 compound file.

Reading leans on ``olefile`` for the header, the FAT and DIFAT, the mini FAT and the
directory's red-black tree; a stream's bytes are then read here by following its sector
chain (:meth:`CompoundFile.chunks`), in runs of contiguous sectors, so that a stream of
100 MB is never held in memory whole (olefile's ``openstream`` would join it in memory).

olefile cannot add a stream, so :class:`Writer` writes a compound file anew ([MS-CFB]
version 3, 512-byte sectors): the streams of 4096 bytes or more in sectors of their own,
the smaller ones in the mini stream, then the mini FAT, the directory, the FAT and, past
109 FAT sectors (files over about 7 MB), the DIFAT. Every sector a stream needs is laid
out before anything is written, so a stream's bytes go straight from where they are read
to their place in the file.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from signgate.errors import ErrorCode, InvalidInput

# [MS-CFB] 2.6.1 object types
STORAGE = 1
STREAM = 2
ROOT = 5

SECTOR = 512  # version 3 ([MS-CFB] 2.2: sector shift 9)
MINI_SECTOR = 64  # [MS-CFB] 2.2: mini sector shift 6
CUTOFF = 4096  # [MS-CFB] 2.2: mini stream cutoff size
HEADER_DIFAT = 109  # FAT sector numbers held by the header ([MS-CFB] 2.2)
PER_SECTOR = SECTOR // 4  # 32-bit entries in a FAT, mini FAT or DIFAT sector
DIFAT_PER_SECTOR = PER_SECTOR - 1  # the last entry chains to the next DIFAT sector
DIR_ENTRY = 128
# [MS-CFB] 2.1 special sector numbers
MAXREGSECT = 0xFFFFFFFA
DIFSECT = 0xFFFFFFFC
FATSECT = 0xFFFFFFFD
ENDOFCHAIN = 0xFFFFFFFE
FREESECT = 0xFFFFFFFF
NOSTREAM = 0xFFFFFFFF
MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
ROOT_NAME = "Root Entry".encode("utf-16-le")
BLACK = 1
CHUNK = 1 << 20  # the most read or written at once
# [MS-CFB] 2.6.3: a version 3 stream is at most 0x80000000 bytes
MAX_STREAM = 0x80000000

_DIRENT = struct.Struct("<64sHBBIII16sIQQIQ")  # [MS-CFB] 2.6.1 Compound File Directory Entry


@dataclass(eq=False)
class Node:
    """A storage or stream of a compound file: what a copy must keep."""

    name: bytes  # UTF-16LE, without its terminating NUL ([MS-CFB] 2.6.1)
    kind: int  # STORAGE, STREAM or ROOT
    clsid: bytes = bytes(16)
    state_bits: int = 0
    created: int = 0  # FILETIME, as stored
    modified: int = 0
    size: int = 0  # streams only
    children: list[Node] = field(default_factory=list)
    # Where a stream's bytes come from (the reader's, or any other): chunks of ``size``
    read: Callable[[], Iterable[bytes]] | None = None

    @property
    def text(self) -> str:
        """The name for messages (MSI stream names are encoded; shown as they decode)."""
        return self.name.decode("utf-16-le", "replace")

    def child(self, name: bytes) -> Node | None:
        return next((c for c in self.children if c.name == name), None)


def _bad(path: Path, why: str) -> InvalidInput:
    """Refusal of a file that is no readable compound file (MSI packages are the only
    compound files signgate reads, hence the code); ``reason``, the why alone, lets a
    verifier say it as a failed verification."""
    why = f"not a readable compound file ({why})"
    return InvalidInput(f"{path.name} is not an MSI package signgate can sign: {why}",
                        code=ErrorCode.INVALID_MSI, reason=why)


_recursion = threading.Lock()


@contextmanager
def _deep_walk(entries: int) -> Iterator[None]:
    """olefile walks a storage's tree recursively, one call per sibling, and osslsigncode
    writes siblings as a list (only right siblings): a storage of 1,000 streams it signed
    would pass Python's default limit. Each entry is visited once, so the depth is at most
    the number of entries the file can hold. Python 3.11 runs these calls without the C
    stack, so a deep walk costs only memory, which the file's size bounds.

    The limit is process-wide and guards C recursion elsewhere too (a deeply nested value
    made into JSON, ...), so it is raised only for the walk, one walk at a time, and put
    back after it."""
    needed = min(1_000 + 4 * entries, 4_000_000)
    with _recursion:
        before = sys.getrecursionlimit()
        sys.setrecursionlimit(max(before, needed))
        try:
            yield
        finally:
            sys.setrecursionlimit(before)


class CompoundFile:
    """An open compound file: its tree of :class:`Node` (``root``) whose streams read
    their bytes from the file on demand. Close it (or use ``with``) when done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._f = path.open("rb")
        except IsADirectoryError:
            raise InvalidInput(f"{path} is a directory, not a file") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        import olefile  # here: telling an MSI by its first bytes needs none of it

        try:
            self.size = os.fstat(self._f.fileno()).st_size
            # Refuse what [MS-CFB] calls incorrect (a name used twice in a storage, an
            # entry referenced twice, ...), not only what olefile cannot parse at all.
            with _deep_walk(self.size // DIR_ENTRY):
                self._ole = olefile.OleFileIO(self._f,
                                              raise_defects=olefile.DEFECT_INCORRECT)
            self._fat = self._ole.fat
            self._sector = self._ole.sectorsize
            self._minifat: Sequence[int] = ()
            self._ministream: bytes | None = None
            self.root = self._node(self._ole.root)
        except InvalidInput:
            self.close()
            raise
        except (OSError, ValueError, TypeError, IndexError, KeyError, struct.error,
                RecursionError) as exc:  # olefile's OleFileError is an OSError
            self.close()
            raise _bad(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                       ) from exc

    def __enter__(self) -> CompoundFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        ole = getattr(self, "_ole", None)
        if ole is not None:
            ole.close()
        self._f.close()

    def _node(self, entry: Any) -> Node:  # an olefile OleDirectoryEntry
        kind = entry.entry_type
        if kind not in (STORAGE, STREAM, ROOT):
            raise _bad(self.path, f"directory entry {entry.sid} has type {kind}")
        if entry.namelength % 2 or entry.namelength < 2:
            raise _bad(self.path, f"directory entry {entry.sid} has a name of "
                                  f"{entry.namelength} bytes")
        size = entry.size if kind != STORAGE else 0
        if kind == STREAM and size > MAX_STREAM:
            raise _bad(self.path, f"stream {entry.sid} claims {size} bytes")
        # olefile shows a CLSID as text (GUID order); bytes_le is the stored form again
        clsid = uuid.UUID(entry.clsid).bytes_le if entry.clsid else bytes(16)
        node = Node(name=bytes(entry.name_utf16), kind=kind, clsid=clsid,
                    state_bits=entry.dwUserFlags, created=entry.createTime,
                    modified=entry.modifyTime, size=size)
        if kind == STREAM:
            start = entry.isectStart
            node.read = lambda: self.chunks(start, size)
        else:
            node.children = [self._node(kid) for kid in entry.kids]
        return node

    def chunks(self, start: int, size: int) -> Iterator[bytes]:
        """The ``size`` bytes of the stream starting at sector ``start``, in pieces of
        at most :data:`CHUNK` (from the mini stream when ``size`` < 4096: [MS-CFB] 2.4)."""
        if size == 0:
            return
        if size < CUTOFF:
            yield self._mini(start, size)
            return
        left = size
        for sector, count in self._runs(start, size, self._fat, self._sector):
            at = (sector + 1) * self._sector  # sector 0 follows the header ([MS-CFB] 2.2)
            n = min(count * self._sector, left)
            while n:
                piece = os.pread(self._f.fileno(), min(n, CHUNK), at)
                if not piece:
                    raise _bad(self.path, f"a stream's sector at offset {at} is past the "
                                          "end of the file")
                yield piece
                at += len(piece)
                n -= len(piece)
                left -= len(piece)

    def _runs(self, start: int, size: int, table: Sequence[int],
              unit: int) -> Iterator[tuple[int, int]]:
        """(first sector, count) of each contiguous run of the chain of a ``size``-byte
        stream in ``table`` (the FAT or the mini FAT: [MS-CFB] 2.3, 2.4)."""
        sector, run_start, run = start, start, 0
        for _ in range(-(-size // unit)):
            if sector >= len(table):
                raise _bad(self.path, f"a stream's chain reaches sector {sector:#x}, "
                                      "outside the file")
            if run and sector != run_start + run:
                yield run_start, run
                run_start, run = sector, 0
            run += 1
            sector = table[sector]
        if run:
            yield run_start, run

    def _mini(self, start: int, size: int) -> bytes:
        """A stream under the cutoff, from the mini stream (the root's own stream, in
        regular sectors) through the mini FAT ([MS-CFB] 2.4), both read once."""
        if self._ministream is None:
            try:
                self._ole.loadminifat()
            except (OSError, ValueError, IndexError, struct.error) as exc:
                raise _bad(self.path, f"its mini FAT: {str(exc).splitlines()[0]}") from exc
            self._minifat = self._ole.minifat
            root = self._ole.root
            self._ministream = b"".join(self._fat_bytes(root.isectStart, root.size))
        out = bytearray()
        for sector, count in self._runs(start, size, self._minifat, MINI_SECTOR):
            at = sector * MINI_SECTOR
            out += self._ministream[at:at + count * MINI_SECTOR]
        if len(out) < size:
            raise _bad(self.path, "a stream's mini sectors lie past the end of the mini "
                                  "stream")
        return bytes(out[:size])

    def _fat_bytes(self, start: int, size: int) -> Iterator[bytes]:
        """A chain of regular sectors, whatever its size (the mini stream itself)."""
        left = size
        for sector, count in self._runs(start, size, self._fat, self._sector):
            n = min(count * self._sector, left)
            piece = os.pread(self._f.fileno(), n, (sector + 1) * self._sector)
            if len(piece) != n:
                raise _bad(self.path, "the mini stream runs past the end of the file")
            yield piece
            left -= n


# -- writing ----------------------------------------------------------------------------


def _upper(unit: int) -> int:
    """[MS-CFB] 2.6.4: names compare by their UTF-16 code points in upper case (simple
    case mapping; a surrogate or a character without a one-character upper case stays)."""
    if 0xD800 <= unit <= 0xDFFF:
        return unit
    up = chr(unit).upper()
    return ord(up) if len(up) == 1 and ord(up) <= 0xFFFF else unit


def tree_key(name: bytes) -> tuple[int, tuple[int, ...]]:
    """The order of siblings in a storage's red-black tree ([MS-CFB] 2.6.4): a shorter
    name is less; names of one length compare code point by code point, upper-cased."""
    units = struct.unpack(f"<{len(name) // 2}H", name)
    return len(units), tuple(_upper(u) for u in units)


@dataclass
class _Place:
    start: int = ENDOFCHAIN
    sid: int = 0
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM


def _ceil(n: int, unit: int) -> int:
    return -(-n // unit)


def fat_layout(data_sectors: int) -> tuple[int, int]:
    """(FAT sectors, DIFAT sectors) for a file of ``data_sectors`` other sectors: each
    FAT sector maps 128 sectors, itself and the DIFAT sectors included; the header lists
    the first 109 FAT sectors, each DIFAT sector 127 more ([MS-CFB] 2.3, 2.5)."""
    fat = difat = 0
    while True:
        total = data_sectors + fat + difat
        need_fat = _ceil(total, PER_SECTOR)
        need_difat = _ceil(max(0, need_fat - HEADER_DIFAT), DIFAT_PER_SECTOR)
        if (need_fat, need_difat) == (fat, difat):
            return fat, difat
        fat, difat = need_fat, need_difat


class Writer:
    """Write the tree under ``root`` as a new compound file into ``out`` (a seekable file,
    empty): first :meth:`stream` for every stream (any order, each exactly its ``size``
    bytes), then :meth:`close`. The layout is fixed at construction: big streams first,
    then the mini stream, the mini FAT, the directory, the FAT and the DIFAT."""

    def __init__(self, root: Node, out: BinaryIO) -> None:
        if root.kind != ROOT:
            raise ValueError("the tree must start at the root storage")
        self._out = out
        self._places: dict[int, _Place] = {}
        self._entries: list[Node] = []
        self._number(root)
        self._fat: list[int] = []
        self._written: set[int] = set()
        self._mini = bytearray()
        self._minifat: list[int] = []
        streams = [n for n in self._entries if n.kind == STREAM and n.size]
        if any(n.size > MAX_STREAM for n in streams):
            raise ValueError("a stream is over 2 GiB, the most a version 3 file holds")
        big = [n for n in streams if n.size >= CUTOFF]
        small = [n for n in streams if n.size < CUTOFF]
        for node in big:  # [MS-CFB] 2.3: a chain of regular sectors each
            self._places[id(node)].start = self._chain(self._fat, _ceil(node.size, SECTOR))
        for node in small:  # [MS-CFB] 2.4: chains of 64-byte mini sectors
            self._places[id(node)].start = self._chain(self._minifat,
                                                       _ceil(node.size, MINI_SECTOR))
        self._mini_sectors = len(self._minifat)
        self._mini_start = self._chain(self._fat, _ceil(self._mini_sectors * MINI_SECTOR,
                                                        SECTOR))
        self._minifat_start = self._chain(self._fat, _ceil(len(self._minifat) * 4, SECTOR))
        self._minifat_count = _ceil(len(self._minifat) * 4, SECTOR)
        self._dir_start = self._chain(self._fat, _ceil(len(self._entries) * DIR_ENTRY,
                                                       SECTOR))
        self._fat_count, self._difat_count = fat_layout(len(self._fat))
        self._fat_at = len(self._fat)
        self._fat += [FATSECT] * self._fat_count  # [MS-CFB] 2.3: FAT sectors are marked
        self._difat_at = len(self._fat)
        self._fat += [DIFSECT] * self._difat_count

    def _number(self, storage: Node) -> None:
        """Directory stream ids in tree order; a storage's children as a balanced binary
        search tree, every node black (the simplest tree [MS-CFB] 2.6.4 allows)."""
        self._places[id(storage)] = _Place(sid=len(self._entries))
        self._entries.append(storage)
        kids = sorted(storage.children, key=lambda n: tree_key(n.name))
        keys = [tree_key(k.name) for k in kids]
        if len(set(keys)) != len(keys):
            raise ValueError(f"two entries of storage {storage.text!r} have one name")
        for kid in kids:
            if kid.kind == STORAGE:
                self._number(kid)
            elif kid.kind == STREAM:
                self._places[id(kid)] = _Place(sid=len(self._entries))
                self._entries.append(kid)
            else:
                raise ValueError(f"{kid.text!r}: only the root is a root storage")
        self._places[id(storage)].child = self._balance(kids)

    def _balance(self, kids: list[Node]) -> int:
        if not kids:
            return NOSTREAM
        mid = len(kids) // 2
        place = self._places[id(kids[mid])]
        place.left = self._balance(kids[:mid])
        place.right = self._balance(kids[mid + 1:])
        return place.sid

    @staticmethod
    def _chain(table: list[int], count: int) -> int:
        """Allocate ``count`` consecutive sectors of ``table``, chained; their first."""
        if count == 0:
            return ENDOFCHAIN
        first = len(table)
        table.extend(range(first + 1, first + count))
        table.append(ENDOFCHAIN)
        return first

    def stream(self, node: Node, chunks: Iterable[bytes]) -> None:
        """Write the bytes of stream ``node``; raise ValueError unless they are exactly
        ``node.size`` bytes."""
        place = self._places.get(id(node))
        if place is None or node.kind != STREAM:
            raise ValueError("not a stream of this tree")
        if id(node) in self._written:
            raise ValueError(f"stream {node.text!r} written twice")
        self._written.add(id(node))
        count = 0
        if node.size >= CUTOFF:
            self._out.seek((place.start + 1) * SECTOR)
            for chunk in chunks:
                count += len(chunk)
                if count > node.size:
                    break
                self._out.write(chunk)
            self._out.write(bytes(-count % SECTOR))
        else:
            data = b"".join(chunks)
            count = len(data)
            if node.size:
                at = place.start * MINI_SECTOR
                end = at + _ceil(node.size, MINI_SECTOR) * MINI_SECTOR
                if len(self._mini) < end:
                    self._mini.extend(bytes(end - len(self._mini)))
                self._mini[at:at + len(data)] = data[:node.size]
        if count != node.size:
            raise ValueError(f"stream {node.text!r} holds {count} bytes, not {node.size}")

    def close(self) -> None:
        """Write the mini stream, the mini FAT, the directory, the FAT, the DIFAT and the
        header."""
        missing = [n.text for n in self._entries if n.kind == STREAM and n.size
                   and id(n) not in self._written]
        if missing:
            raise ValueError(f"streams not written: {', '.join(missing)}")
        out = self._out
        mini = bytes(self._mini).ljust(self._mini_sectors * MINI_SECTOR, b"\0")
        self._sectors(self._mini_start, mini)
        self._sectors(self._minifat_start, _words(self._minifat, FREESECT))
        self._sectors(self._dir_start, b"".join(self._entry(n) for n in self._entries),
                      fill=_unused_entry())
        fat_sectors = list(range(self._fat_at, self._fat_at + self._fat_count))
        self._sectors(self._fat_at, _words(self._fat, FREESECT))
        difat_sectors = list(range(self._difat_at, self._difat_at + self._difat_count))
        listed = fat_sectors[HEADER_DIFAT:]
        for i, sector in enumerate(difat_sectors):  # [MS-CFB] 2.5
            part = listed[i * DIFAT_PER_SECTOR:(i + 1) * DIFAT_PER_SECTOR]
            part += [FREESECT] * (DIFAT_PER_SECTOR - len(part))
            following = difat_sectors[i + 1] if i + 1 < len(difat_sectors) else ENDOFCHAIN
            self._sectors(sector, struct.pack(f"<{PER_SECTOR}I", *part, following))
        head = fat_sectors[:HEADER_DIFAT]
        head += [FREESECT] * (HEADER_DIFAT - len(head))
        header = struct.pack(  # [MS-CFB] 2.2 Compound File Header
            "<8s16sHHHHH6sIIIIIIIII109I", MAGIC, bytes(16), 0x003E, 3, 0xFFFE, 9, 6,
            bytes(6), 0, self._fat_count, self._dir_start, 0, CUTOFF,
            self._minifat_start, self._minifat_count,
            difat_sectors[0] if difat_sectors else ENDOFCHAIN, self._difat_count, *head)
        out.seek(0)
        out.write(header)
        out.seek((len(self._fat) + 1) * SECTOR)
        out.truncate()

    def _sectors(self, first: int, data: bytes, fill: bytes = b"\0") -> None:
        if first == ENDOFCHAIN:
            return
        pad = -len(data) % SECTOR
        self._out.seek((first + 1) * SECTOR)
        self._out.write(data + (fill * _ceil(pad, len(fill)))[:pad])

    def _entry(self, node: Node) -> bytes:
        """[MS-CFB] 2.6.1 Compound File Directory Entry."""
        place = self._places[id(node)]
        name = ROOT_NAME if node.kind == ROOT else node.name
        if len(name) > 62:
            raise ValueError(f"the name {node.text!r} is longer than 31 characters")
        if node.kind == ROOT:
            start = self._mini_start
            size = self._mini_sectors * MINI_SECTOR
        elif node.kind == STREAM:
            start, size = (place.start if node.size else ENDOFCHAIN), node.size
        else:
            start, size = 0, 0
        created = 0 if node.kind == ROOT else node.created  # [MS-CFB] 2.6.3
        clsid = node.clsid if node.kind != STREAM else bytes(16)
        return _DIRENT.pack(name, len(name) + 2, node.kind, BLACK, place.left, place.right,
                            place.child, clsid, node.state_bits, created, node.modified,
                            start, size)


def _words(table: list[int], fill: int) -> bytes:
    padded = table + [fill] * (-len(table) % PER_SECTOR)
    return struct.pack(f"<{len(padded)}I", *padded)


def _unused_entry() -> bytes:
    """[MS-CFB] 2.6.1: an unused entry is all zeros but for its NOSTREAM ids."""
    return _DIRENT.pack(b"", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM, bytes(16), 0, 0, 0, 0, 0)


def write(root: Node, out: BinaryIO) -> None:
    """Write the whole tree, each stream from its ``read``."""
    writer = Writer(root, out)
    for node in _walk(root):
        if node.kind == STREAM and node.size:
            if node.read is None:
                raise ValueError(f"stream {node.text!r} has nothing to read from")
            writer.stream(node, node.read())
    writer.close()


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for kid in node.children:
        yield from _walk(kid)


def is_compound_file(head: bytes) -> bool:
    return head[:8] == MAGIC

