"""formats/cfb.py: compound files written by signgate read back by olefile (an independent
reader) and by signgate's own reader: streams on both sides of the 4096-byte mini-stream
cutoff, storages with CLSIDs, names in [MS-CFB]'s tree order, and a file over 7 MB whose
FAT needs a DIFAT sector. What an MSI tool makes of them: tests/e2e/test_authenticode_msi.py."""

from __future__ import annotations

import hashlib
import struct
import uuid
from pathlib import Path

import olefile
import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.formats import cfb

CLSID_ROOT = uuid.UUID("000c1084-0000-0000-c000-000000000046")  # an MSI database's
CLSID_SUB = uuid.UUID("12345678-9abc-def0-1122-334455667788")


def content(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def stream(name: str, size: int) -> cfb.Node:
    data = content(name, size)
    return cfb.Node(name.encode("utf-16-le"), cfb.STREAM, size=size, read=lambda: [data],
                    state_bits=0, modified=0)


SIZES = {"empty": 0, "one": 1, "mini63": 63, "mini64": 64, "mini65": 65,
         "under": cfb.CUTOFF - 1, "cutoff": cfb.CUTOFF, "over": cfb.CUTOFF + 1,
         "big": 100_000}


def tree() -> cfb.Node:
    sub = cfb.Node("Sub".encode("utf-16-le"), cfb.STORAGE, clsid=CLSID_SUB.bytes_le,
                   created=0x01D9000000000000, modified=0x01D9000000000001,
                   children=[stream("inner", 5000), stream("tiny", 3)])
    return cfb.Node(cfb.ROOT_NAME, cfb.ROOT, clsid=CLSID_ROOT.bytes_le,
                    children=[*(stream(n, s) for n, s in SIZES.items()), sub])


def written(tmp_path: Path, root: cfb.Node, name: str = "out.cfb") -> Path:
    path = tmp_path / name
    with path.open("w+b") as f:
        cfb.write(root, f)
    return path


def test_round_trip_through_olefile(tmp_path: Path) -> None:
    path = written(tmp_path, tree())
    assert path.stat().st_size % cfb.SECTOR == 0
    with olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT) as ole:
        assert ole.root.clsid == str(CLSID_ROOT).upper()
        assert ole.getclsid("Sub") == str(CLSID_SUB).upper()
        assert sorted(map("/".join, ole.listdir())) == sorted(
            [*SIZES, "Sub/inner", "Sub/tiny"])
        for name, size in SIZES.items():
            assert ole.openstream(name).read() == content(name, size), name
        assert ole.openstream("Sub/inner").read() == content("inner", 5000)
        assert ole.openstream("Sub/tiny").read() == content("tiny", 3)
        assert ole.getmtime("Sub") is not None


def test_round_trip_through_signgates_reader(tmp_path: Path) -> None:
    original = tree()
    path = written(tmp_path, original)
    with cfb.CompoundFile(path) as again:
        assert again.root.clsid == CLSID_ROOT.bytes_le
        names = {n.name.decode("utf-16-le"): n for n in again.root.children}
        assert set(names) == {*SIZES, "Sub"}
        for name, size in SIZES.items():
            node = names[name]
            assert node.size == size
            assert node.read is not None
            assert b"".join(node.read()) == content(name, size)
        sub = names["Sub"]
        assert (sub.kind, sub.clsid) == (cfb.STORAGE, CLSID_SUB.bytes_le)
        assert (sub.created, sub.modified) == (0x01D9000000000000, 0x01D9000000000001)
        copy = written(tmp_path, again.root, "copy.cfb")  # a copy of a copy: the same
    assert copy.read_bytes() == path.read_bytes()


def test_siblings_form_a_search_tree_in_cfb_order(tmp_path: Path) -> None:
    """[MS-CFB] 2.6.4: shorter names first, then by upper-cased code points; a reader
    that searches the tree (Windows' does) must find every name."""
    names = ["b", "A", "a_", "Zz", "zy", "\x05SummaryInformation", "\u4840\u3b3f", "c" * 31,
             *(f"s{i:02d}" for i in range(40))]
    root = cfb.Node(cfb.ROOT_NAME, cfb.ROOT, children=[stream(n, 10) for n in names])
    path = written(tmp_path, root)
    data = path.read_bytes()
    (dir_start,) = struct.unpack_from("<I", data, 0x30)
    entries = data[(dir_start + 1) * 512:]

    def entry(sid: int) -> tuple[bytes, int, int, int]:
        raw = entries[sid * 128:(sid + 1) * 128]
        length, _, color = struct.unpack_from("<HBB", raw, 64)
        assert color == cfb.BLACK
        left, right, child = struct.unpack_from("<III", raw, 68)
        return raw[:length - 2], left, right, child

    def in_order(sid: int) -> list[bytes]:
        if sid == cfb.NOSTREAM:
            return []
        name, left, right, _ = entry(sid)
        return [*in_order(left), name, *in_order(right)]

    found = in_order(entry(0)[3])
    assert found == sorted(found, key=cfb.tree_key)
    assert sorted(found) == sorted(n.encode("utf-16-le") for n in names)
    assert cfb.tree_key("A".encode("utf-16-le")) == cfb.tree_key("a".encode("utf-16-le"))
    assert cfb.tree_key("zz".encode("utf-16-le")) < cfb.tree_key("aaa".encode("utf-16-le"))


def test_a_file_over_7_mb_has_a_difat(tmp_path: Path) -> None:
    size = 7_500_000  # 14,649 sectors: 115 FAT sectors, 6 more than the header lists
    data = content("huge", size)
    root = cfb.Node(cfb.ROOT_NAME, cfb.ROOT, children=[
        cfb.Node(b"h\0", cfb.STREAM, size=size,
                 read=lambda: (data[i:i + 65536] for i in range(0, size, 65536))),
        stream("small", 100)])
    path = written(tmp_path, root)
    header = path.read_bytes()[:512]
    fat_count, = struct.unpack_from("<I", header, 0x2C)
    difat_start, difat_count = struct.unpack_from("<II", header, 0x44)
    assert fat_count > cfb.HEADER_DIFAT
    assert difat_count == 1
    assert difat_start != cfb.ENDOFCHAIN
    with olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT) as ole:
        assert ole.num_difat_sectors == 1
        assert hashlib.sha256(ole.openstream("h").read()).digest() == \
            hashlib.sha256(data).digest()
        assert ole.openstream("small").read() == content("small", 100)
    with cfb.CompoundFile(path) as again:
        big = again.root.child(b"h\0")
        assert big is not None
        assert big.read is not None
        chunks = list(big.read())
    assert max(map(len, chunks)) <= cfb.CHUNK  # streamed, never the whole stream at once
    assert b"".join(chunks) == data


@pytest.mark.parametrize(("data_sectors", "expected"), [
    (0, (0, 0)),
    (127, (1, 0)),  # 127 + the FAT sector itself = 128 entries
    (128, (2, 0)),
    (109 * 128 - 109, (109, 0)),  # the header's 109 FAT sectors, full
    (109 * 128 - 108, (110, 1)),  # one more sector: a FAT sector and a DIFAT sector
    (236 * 128 - 237, (236, 1)),  # 109 + 127 FAT sectors: one DIFAT sector, full
    (236 * 128 - 236, (237, 2)),
])
def test_fat_and_difat_sizes(data_sectors: int, expected: tuple[int, int]) -> None:
    fat, difat = cfb.fat_layout(data_sectors)
    assert (fat, difat) == expected
    assert fat * cfb.PER_SECTOR >= data_sectors + fat + difat
    assert cfb.HEADER_DIFAT + difat * cfb.DIFAT_PER_SECTOR >= fat


def test_a_stream_shorter_than_it_said_is_refused(tmp_path: Path) -> None:
    root = cfb.Node(cfb.ROOT_NAME, cfb.ROOT, children=[
        cfb.Node(b"x\0", cfb.STREAM, size=5000, read=lambda: [b"short"])])
    with (tmp_path / "x.cfb").open("w+b") as f, pytest.raises(ValueError, match="5 bytes"):
        cfb.write(root, f)


def read_all(path: Path) -> None:
    with cfb.CompoundFile(path) as f:
        for node in f.root.children:
            if node.read is not None:
                b"".join(node.read())


@pytest.mark.parametrize("damage", ["not a compound file", "truncated", "chain outside"])
def test_unreadable_files_are_refused_in_one_line(tmp_path: Path, damage: str) -> None:
    path = written(tmp_path, tree())
    data = bytearray(path.read_bytes())
    if damage == "not a compound file":
        data[:8] = b"MZ\0\0\0\0\0\0"
    elif damage == "truncated":
        del data[1024:]
    else:  # the first FAT sector's entries point past the file
        (fat0,) = struct.unpack_from("<I", data, 0x4C)
        at = (fat0 + 1) * 512
        data[at:at + 4 * 8] = struct.pack("<8I", *([0x00FFFFF0] * 8))
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput) as caught:
        read_all(path)
    assert caught.value.code is ErrorCode.INVALID_MSI
    assert "\n" not in str(caught.value)
