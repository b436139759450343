"""Receiving an upload into the spool (service/uploads.py): the file and its SHA-256 are
exactly the bytes that came, in order, however they were cut into chunks; and whatever goes
wrong on the way, nothing is kept and no descriptor is left open."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from signgate.errors import PayloadTooLarge
from signgate.service import uploads


async def body(chunks: Iterable[bytes], fail_after: int | None = None,
               pause: float = 0.0) -> AsyncIterator[bytes]:
    for i, chunk in enumerate(chunks):
        if fail_after is not None and i == fail_after:
            raise ConnectionResetError("the client went away")
        if pause:
            await asyncio.sleep(pause)
        yield chunk


def cut(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """``data`` in chunks of the given sizes, cycling, as a network delivers it."""
    out, i = [], 0
    sizes = list(sizes)
    while i < len(data):
        n = sizes[len(out) % len(sizes)]
        out.append(data[i:i + n])
        i += n
    return out


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("sizes", [[1], [65_536], [255_000, 1, 0, 3_000_001], [7 << 20]],
                         ids=["bytes", "64k", "mixed", "one-big"])
def test_the_file_and_its_hash_are_the_body(tmp_path: Path, sizes: list[int]) -> None:
    data = os.urandom(3 << 20) if sizes != [1] else os.urandom(5000)
    chunks = cut(data, [s or 1 for s in sizes])
    if 0 in sizes:
        chunks.insert(2, b"")  # an empty chunk is nothing
    before = open_fds()
    spooled = asyncio.run(uploads.receive(tmp_path, body(chunks), 8 << 20, "a/../b.bin"))
    assert spooled.path == tmp_path / "b.bin"
    assert spooled.path.read_bytes() == data
    assert spooled.size == len(data)
    assert spooled.sha256 == hashlib.sha256(data).hexdigest()
    assert (spooled.path.stat().st_mode & 0o777) == 0o600
    assert open_fds() == before


def test_over_the_limit_keeps_nothing(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    before = open_fds()
    with pytest.raises(PayloadTooLarge):
        asyncio.run(uploads.receive(tmp_path / "up", body([b"x" * 700_000] * 4), 2_000_000,
                                    "big.bin"))
    assert not (tmp_path / "up").exists()
    assert open_fds() == before


def test_a_broken_body_keeps_nothing(tmp_path: Path) -> None:
    """The client disconnects half-way: the file goes, and its descriptor is closed."""
    (tmp_path / "up").mkdir()
    before = open_fds()
    with pytest.raises(ConnectionResetError):
        asyncio.run(uploads.receive(tmp_path / "up", body([os.urandom(600_000)] * 10,
                                                          fail_after=7), 1 << 30, "a.bin"))
    assert not (tmp_path / "up").exists()
    assert open_fds() == before


def test_cancelled_while_receiving_keeps_nothing(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    before = open_fds()

    async def main() -> None:
        task = asyncio.create_task(uploads.receive(
            tmp_path / "up", body([os.urandom(1 << 20)] * 1000, pause=0.001), 1 << 40,
            "a.bin"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not (tmp_path / "up").exists()
    assert open_fds() == before
