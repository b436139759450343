"""C2SP tlog-tiles: paths, which tiles a tree has (the spec's 70,000-leaf example), tiles
made of stored hashes, proofs read through tiles, and entry bundles."""

from __future__ import annotations

import pytest

from signgate.errors import InvalidInput
from signgate.transparency.merkle import MemoryHashStore, prove_record, prove_tree, tree_hash
from signgate.transparency.tiles import (
    TILE_WIDTH,
    Tile,
    TileHashReader,
    entries_path,
    format_entry_bundle,
    new_tiles,
    parse_entry_bundle,
    parse_tile_path,
    read_tile_data,
    tiles_for_size,
)

SIZE = 70_000


@pytest.fixture(scope="module")
def store() -> MemoryHashStore:
    s = MemoryHashStore()
    for i in range(SIZE):
        s.append(i.to_bytes(4, "big"))
    return s


def test_paths_are_the_specs() -> None:
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(1, 0).path == "tile/1/000"
    assert Tile(2, 1000, 17).path == "tile/2/x001/000.p/17"
    assert entries_path(5) == "tile/entries/005"
    assert entries_path(5, 3) == "tile/entries/005.p/3"
    assert parse_tile_path("tile/0/x001/x234/067") == (Tile(0, 1234067), False)
    assert parse_tile_path("tile/entries/x001/000.p/255") == (Tile(0, 1000, 255), True)
    for tile in (Tile(0, 0), Tile(3, 999, 1), Tile(7, 10**9, 200)):
        assert parse_tile_path(tile.path) == (tile, False)


@pytest.mark.parametrize("path", [
    "tile/0/1", "tile/0/0001", "tile/0/x000/001", "tile/00/001", "tile/0/001.p/256",
    "tile/0/001.p/0", "tile/0/001.p/007", "tile/0/x1/001", "tile/64/000", "tile/0/001/",
    "tiles/0/001", "tile/entries/001.p/", "tile/-1/001",
])
def test_non_canonical_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tile_path(path)


def test_the_specs_70000_leaf_example() -> None:
    tiles = tiles_for_size(SIZE)
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if t.full]) == 273
    assert [t for t in level0 if not t.full] == [Tile(0, 273, 112)]
    assert [t for t in tiles if t.level == 1] == [Tile(1, 0), Tile(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [Tile(2, 0, 1)]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1"
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(0) == []


def test_new_tiles_are_the_difference() -> None:
    assert new_tiles(255, 257) == [Tile(0, 0), Tile(0, 1, 1), Tile(1, 0, 1)]
    assert new_tiles(300, 300) == []
    grown = set(tiles_for_size(1000)) | set(new_tiles(1000, 5000))
    assert set(tiles_for_size(5000)) <= grown


def test_a_tile_holds_the_level_hashes(store: MemoryHashStore) -> None:
    # level 1 tile 0 hash i is the root of leaves [256 i, 256 (i + 1))
    data = read_tile_data(Tile(1, 0), store)
    assert len(data) == TILE_WIDTH * 32
    for i in (0, 7, 255):
        assert data[32 * i:32 * (i + 1)] == _range_root(store, 256 * i, 256 * (i + 1))


def _range_root(store: MemoryHashStore, lo: int, hi: int) -> bytes:
    sub = MemoryHashStore()
    for i in range(lo, hi):
        sub.append(i.to_bytes(4, "big"))
    return sub.root()


class DictTiles:
    def __init__(self, tiles: dict[Tile, bytes]) -> None:
        self.tiles = tiles
        self.asked: list[Tile] = []

    def read_tiles(self, tiles: list[Tile]) -> list[bytes]:  # type: ignore[override]
        self.asked += tiles
        return [self.tiles[t] for t in tiles]


def test_proofs_through_tiles_are_the_proofs(store: MemoryHashStore) -> None:
    served = DictTiles({t: read_tile_data(t, store) for t in tiles_for_size(SIZE)})
    reader = TileHashReader(SIZE, served)
    assert tree_hash(SIZE, reader) == store.root()
    for n in (0, 1, 255, 256, 65_535, 65_536, 69_999):
        assert prove_record(SIZE, n, reader) == prove_record(SIZE, n, store)
        assert prove_tree(SIZE, n, reader) == prove_tree(SIZE, n, store)
    # an older checkpoint's tree reads the tiles at the widths that size implies
    served_old = DictTiles({t: read_tile_data(t, store) for t in tiles_for_size(1000)})
    assert tree_hash(1000, TileHashReader(1000, served_old)) == tree_hash(1000, store)
    assert all(t in served_old.tiles for t in served_old.asked)


def test_a_short_tile_is_refused(store: MemoryHashStore) -> None:
    tiles = {t: read_tile_data(t, store) for t in tiles_for_size(1000)}
    tiles[Tile(0, 3, 232)] = tiles[Tile(0, 3, 232)][:-32]
    with pytest.raises(InvalidInput):
        tree_hash(1000, TileHashReader(1000, DictTiles(tiles)))


def test_entry_bundles() -> None:
    entries = [b"", b"a", bytes(300), bytes(range(256)) * 255]
    bundle = format_entry_bundle(entries)
    assert bundle[:2] == b"\x00\x00"
    assert bundle[2:4] == b"\x00\x01"
    assert parse_entry_bundle(bundle) == entries
    for bad in (bundle[:-1], bundle + b"\x00", b"\x00\x05abc"):
        with pytest.raises(InvalidInput):
            parse_entry_bundle(bad)
    with pytest.raises(InvalidInput):
        format_entry_bundle([bytes(65_536)])
    with pytest.raises(InvalidInput):
        parse_entry_bundle(b"\x00\x00" * 257)
