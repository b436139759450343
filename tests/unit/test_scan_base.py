"""Verdicts, scan_all's fail-closed combination, and spooling an upload stream."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from signgate import errors
from signgate.api.problems import status_for
from signgate.scan import Verdict, all_clean, findings, scan_all, spool
from signgate.scan.base import Scanner


class Fixed:
    """A test scanner implementing the real protocol with a fixed answer."""

    def __init__(self, name: str, found: tuple[str, ...] = (),
                 error: Exception | None = None) -> None:
        self.name = name
        self.found = found
        self.error = error
        self.seen: list[Path] = []

    def scan_path(self, path: Path) -> Verdict:
        self.seen.append(path)
        if self.error is not None:
            raise self.error
        return Verdict.of(self.name, self.found, engine_version="1", ruleset_version="r",
                          seconds=0.0)


def test_verdict_is_clean_exactly_without_findings() -> None:
    assert Verdict.of("x", (), engine_version="1", ruleset_version="r", seconds=0).clean
    assert not Verdict.of("x", ["bad"], engine_version="1", ruleset_version="r",
                          seconds=0).clean
    with pytest.raises(ValueError, match="clean exactly"):
        Verdict(clean=True, findings=("bad",), engine="x", engine_version="1",
                ruleset_version="r", seconds=0)
    with pytest.raises(ValueError, match="clean exactly"):
        Verdict(clean=False, findings=(), engine="x", engine_version="1",
                ruleset_version="r", seconds=0)


def test_scan_all_runs_every_scanner(tmp_path: Path) -> None:
    a, b = Fixed("a"), Fixed("b", ("Evil",))
    verdicts = scan_all([a, b], tmp_path)
    assert [v.engine for v in verdicts] == ["a", "b"]
    assert a.seen == b.seen == [tmp_path]
    assert not all_clean(verdicts)
    assert findings(verdicts) == ["b:Evil"]
    assert all_clean(scan_all([a], tmp_path))


def test_scan_all_fails_closed_on_any_engine_error(tmp_path: Path) -> None:
    broken = Fixed("broken", error=RuntimeError("segfault in the engine"))
    later = Fixed("later")
    scanners: list[Scanner] = [Fixed("ok"), broken, later]
    with pytest.raises(errors.ScannerUnavailable) as info:
        scan_all(scanners, tmp_path)
    assert str(info.value) == "scanner unavailable: broken: RuntimeError: segfault in the engine"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert later.seen == []


def test_scan_all_passes_signgate_errors_through(tmp_path: Path) -> None:
    down = Fixed("clamav", error=errors.ScannerUnavailable("clamav", "no socket"))
    with pytest.raises(errors.ScannerUnavailable, match="scanner unavailable: clamav: no socket"):
        scan_all([down], tmp_path)
    big = Fixed("clamav", error=errors.PayloadTooLarge("too big"))
    with pytest.raises(errors.PayloadTooLarge):
        scan_all([big], tmp_path)


def test_no_scanners_is_not_a_pass(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="no scanners configured"):
        scan_all([], tmp_path)
    assert not all_clean([])


def test_scanner_unavailable_is_a_503_unavailable() -> None:
    exc = errors.ScannerUnavailable("yara", "rules do not compile")
    assert isinstance(exc, errors.Unavailable)
    assert exc.code == "scanner_unavailable"
    assert exc.details == {"engine": "yara", "reason": "rules do not compile"}
    assert status_for(exc) == 503
    assert errors.family_by_name("ScannerUnavailable") is errors.ScannerUnavailable


def test_spool_writes_hashes_and_removes(tmp_path: Path) -> None:
    chunks = [b"a" * 1000, b"", b"b" * 5000]
    with spool(iter(chunks), directory=tmp_path) as spooled:
        assert spooled.path.parent == tmp_path
        assert spooled.path.read_bytes() == b"".join(chunks)
        assert spooled.size == 6000
        assert spooled.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
        assert spooled.path.stat().st_mode & 0o077 == 0
    assert not spooled.path.exists()


def test_spool_refuses_over_the_limit_and_cleans_up(tmp_path: Path) -> None:
    consumed = []

    def chunks() -> Iterator[bytes]:
        for i in range(10):
            consumed.append(i)
            yield b"x" * 100

    with pytest.raises(errors.PayloadTooLarge, match="larger than the scan limit of 250"), \
            spool(chunks(), directory=tmp_path, max_bytes=250):
        pytest.fail("not reached")
    assert consumed == [0, 1, 2]
    assert list(tmp_path.iterdir()) == []
