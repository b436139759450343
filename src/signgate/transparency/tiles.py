"""C2SP tlog-tiles (c2sp.org/tlog-tiles): the stored hashes and entries as static tiles.

A tile at level L and index N holds up to 256 consecutive hashes of tree level 8L:
``MTH(D[(N*256 + i) * 256**L : (N*256 + i + 1) * 256**L])`` for i < W. They are exactly
stored hashes of ``merkle.py`` (level 8L, positions N*256 + i), so a log that keeps the
stored-hash sequence can serve tiles, and a reader of tiles can rebuild any stored hash:
one at a level between two tile levels is the Merkle hash of a run of the lower tile's
hashes. Full tiles are 256 hashes wide; the rightmost one of a level may be partial
(``.p/<W>``). Entry bundles (``tile/entries/<N>``) hold the leaves themselves, each
prefixed with its big-endian uint16 length.

Tiles read through :class:`TileHashReader` are not authenticated by it: a proof or tree
hash computed from wrong tiles simply fails to verify against the signed checkpoint, which
is where a client's trust comes from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from signgate.errors import InvalidInput
from signgate.transparency.merkle import (
    HASH_SIZE,
    MAX_SIZE,
    HashReader,
    node_hash,
    split_stored_hash_index,
    stored_hash_index,
)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes, 8192 bytes
MAX_ENTRY_SIZE = 0xFFFF
_LEVELS = 64 // TILE_HEIGHT  # tile levels 0..7 cover every uint64 size (the spec allows 63)


@dataclass(frozen=True, order=True)
class Tile:
    """Tile ``n`` of tile level ``level`` with ``width`` hashes (256 when full)."""

    level: int
    n: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not (0 <= self.level <= 63 and self.n >= 0 and 1 <= self.width <= TILE_WIDTH):
            raise InvalidInput(f"no such tile: level {self.level}, index {self.n}, "
                               f"width {self.width}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``."""
        return f"tile/{self.level}/{_encode_index(self.n)}{_partial(self.width)}"

    def hash_indexes(self) -> list[int]:
        """The stored-hash indexes of the hashes this tile holds, in order."""
        level = self.level * TILE_HEIGHT
        return [stored_hash_index(level, self.n * TILE_WIDTH + i) for i in range(self.width)]


def entries_path(n: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``: the path of entry bundle ``n``."""
    Tile(0, n, width)  # the same bounds
    return f"tile/entries/{_encode_index(n)}{_partial(width)}"


def _encode_index(n: int) -> str:
    """1234067 -> ``x001/x234/067``: 3-digit groups, all but the last prefixed ``x``."""
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def _partial(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


_PATH = re.compile(r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<n>(?:x[0-9]{3}/)*[0-9]{3})"
                   r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?")


def parse_tile_path(path: str) -> tuple[Tile, bool]:
    """The tile a path names and whether it is an entry bundle (then the tile's level is
    0). Strict: the one encoding the spec allows, so two paths never name one tile."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise InvalidInput(f"not a tile path: {path!r}")
    groups = match["n"].split("/")
    if len(groups) > 1 and groups[0] == "x000":  # a leading zero group
        raise InvalidInput(f"not a tile path: {path!r}")
    n = int("".join(g.lstrip("x") for g in groups))
    width = int(match["width"]) if match["width"] else TILE_WIDTH
    if match["width"] and width >= TILE_WIDTH:
        raise InvalidInput(f"not a tile path: {path!r}")
    entries = match["level"] == "entries"
    return Tile(0 if entries else int(match["level"]), n, width), entries


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile of a tree of ``size`` leaves: the full ones and the partial rightmost
    tile of each level, level by level."""
    return new_tiles(0, size)


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The tiles that a tree growing from ``old_size`` to ``new_size`` adds or widens: what
    a log writes (or serves anew) after the checkpoint of ``new_size``."""
    if not 0 <= old_size <= new_size <= MAX_SIZE:
        raise InvalidInput(f"no growth from size {old_size} to size {new_size}")
    tiles = []
    for level in range(_LEVELS):
        old_hashes = old_size >> (level * TILE_HEIGHT)
        new_hashes = new_size >> (level * TILE_HEIGHT)
        if new_hashes == 0:
            break
        for n in range(old_hashes // TILE_WIDTH, (new_hashes - 1) // TILE_WIDTH + 1):
            width = min(TILE_WIDTH, new_hashes - n * TILE_WIDTH)
            old_width = min(TILE_WIDTH, max(0, old_hashes - n * TILE_WIDTH))
            if width > old_width:
                tiles.append(Tile(level, n, width))
    return tiles


def tile_width_in(level: int, n: int, size: int) -> int:
    """The width tile ``n`` of ``level`` has in a tree of ``size`` (0: not there yet)."""
    hashes = size >> (level * TILE_HEIGHT)
    return max(0, min(TILE_WIDTH, hashes - n * TILE_WIDTH))


def read_tile_data(tile: Tile, reader: HashReader) -> bytes:
    """The bytes of ``tile``: its hashes, read from the stored-hash sequence."""
    hashes = reader.read_hashes(tile.hash_indexes())
    if len(hashes) != tile.width or any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidInput("the hash reader returned the wrong number or size of hashes")
    return b"".join(hashes)


def tile_for_index(index: int) -> tuple[Tile, int, int]:
    """The smallest tile from which the stored hash ``index`` can be computed, and the
    range ``[start, end)`` of that tile's hashes it is the Merkle hash of."""
    level, n = split_stored_hash_index(index)
    tile_level, below = divmod(level, TILE_HEIGHT)
    start = (n << below) % TILE_WIDTH
    end = start + (1 << below)
    return Tile(tile_level, (n << below) // TILE_WIDTH, end), start, end


def hash_from_tile(data: bytes, start: int, end: int) -> bytes:
    """The Merkle hash of the tile hashes ``[start, end)`` (a complete subtree: a power of
    two of them, aligned)."""
    if len(data) % HASH_SIZE or len(data) < end * HASH_SIZE:
        raise InvalidInput("a tile too short for the hash asked of it")
    hashes = [data[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(start, end)]
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


class TileReader(Protocol):
    """Fetches tiles (from files, a table, or a log's HTTP server): the bytes of each tile,
    in order. A tile asked for at width W must be answered with exactly W hashes."""

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]: ...


class TileHashReader:
    """A :class:`~signgate.transparency.merkle.HashReader` over the tiles of a tree of
    ``size`` leaves: asks for each tile once per call, at the width it has in that tree
    (so that only tiles that the checkpoint of ``size`` implies are fetched)."""

    def __init__(self, size: int, tiles: TileReader) -> None:
        self.size = size
        self._tiles = tiles

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        wanted = []
        for index in indexes:
            tile, start, end = tile_for_index(index)
            width = tile_width_in(tile.level, tile.n, self.size)
            if width < end:
                raise InvalidInput(f"stored hash {index} is not in the tree of size "
                                   f"{self.size}")
            wanted.append((Tile(tile.level, tile.n, width), start, end))
        unique = sorted({tile for tile, _, _ in wanted})
        data = dict(zip(unique, self._tiles.read_tiles(unique), strict=True))
        for tile, blob in data.items():
            if len(blob) != tile.width * HASH_SIZE:
                raise InvalidInput(f"tile {tile.path} has {len(blob)} bytes, not "
                                   f"{tile.width * HASH_SIZE}")
        return [hash_from_tile(data[tile], start, end) for tile, start, end in wanted]


def format_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry prefixed by its length as a big-endian uint16."""
    if len(entries) > TILE_WIDTH:
        raise InvalidInput(f"an entry bundle holds at most {TILE_WIDTH} entries")
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise InvalidInput(f"a log entry of {len(entry)} bytes is over the "
                               f"{MAX_ENTRY_SIZE} bytes an entry bundle can hold")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; malformed when a length runs past the end or there are
    more than 256 entries."""
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise InvalidInput("an entry bundle ends inside a length")
        length = int.from_bytes(data[at:at + 2], "big")
        at += 2
        if at + length > len(data):
            raise InvalidInput("an entry bundle ends inside an entry")
        entries.append(data[at:at + length])
        at += length
        if len(entries) > TILE_WIDTH:
            raise InvalidInput(f"an entry bundle with more than {TILE_WIDTH} entries")
    return entries
