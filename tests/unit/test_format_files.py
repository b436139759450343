"""formats/files.py: which signed copies replace their source (and are made durable)."""

from __future__ import annotations

import os
from pathlib import Path

from signgate.formats.files import commit_file, replaces, temporary_beside


def test_replaces_only_the_source_itself(tmp_path: Path) -> None:
    source = tmp_path / "app.exe"
    source.write_bytes(b"MZ")
    other = tmp_path / "other.exe"
    other.write_bytes(b"MZ")
    link = tmp_path / "link.exe"
    os.link(source, link)
    assert replaces(source, source)
    assert replaces(source, tmp_path / "." / "app.exe")
    assert replaces(source, link)  # another name of the same file
    assert not replaces(source, other)
    assert not replaces(source, tmp_path / "new.exe")  # nothing there yet
    assert not replaces(tmp_path / "gone.exe", source)


def test_commit_file_renames_with_or_without_fsync(tmp_path: Path) -> None:
    for durable in (True, False):
        out = tmp_path / f"out-{durable}"
        out.write_bytes(b"old")
        tmp = temporary_beside(out)
        tmp.write_bytes(b"new")
        commit_file(tmp, out, 0o640, durable=durable)
        assert out.read_bytes() == b"new"
        assert out.stat().st_mode & 0o777 == 0o640
        assert not tmp.exists()
