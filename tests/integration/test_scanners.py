"""The scanning engines against a real clamd (scripts/clamd.sh, signgate's own signatures)
and real YARA rules: what is found where ClamAV has to unpack it, what stays clean, and
how every way of not getting an answer fails closed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from signgate.errors import PayloadTooLarge, ScannerUnavailable
from signgate.scan import Scanner, all_clean, findings, scan_all
from signgate.scan.clamd import NO_DATABASE, ClamdScanner
from signgate.scan.denylist import DenyListScanner, sha256_file
from signgate.scan.yara import YaraScanner
from tests.support.clamd import EICAR, Clamd, start_clamd
from tests.support.pe import hello_exe

EICAR_FOUND = {"Signgate.Test.EICAR.UNOFFICIAL", "Signgate.Test.EICAR.File.UNOFFICIAL"}


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


INFECTED: dict[str, bytes] = {
    "plain.txt": EICAR,
    "embedded.bin": b"header " * 100 + EICAR + b" trailer" * 100,
    "archive.zip": zipped({"readme.txt": b"hello", "bin/tool.com": EICAR}),
    "nested.zip": zipped({"inner.zip": zipped({"deep/eicar.com": EICAR})}),
    "bundle.tar.gz": tar_gz({"pkg/eicar.com": EICAR}),
    "eicar.gz": gzip.compress(EICAR),
}

CLEAN: dict[str, bytes] = {
    "empty": b"",
    "text.txt": b"signgate release notes\n" * 1000,
    "random.bin": os.urandom(1 << 20),
    "archive.zip": zipped({"a.txt": b"hello", "b/c.txt": b"world" * 1000}),
    "bundle.tar.gz": tar_gz({"pkg/setup.py": b"print('hi')\n"}),
    "script.py": b"#!/usr/bin/env python3\nprint('signed by signgate')\n",
}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(INFECTED))
@pytest.mark.parametrize("pass_fd", [True, False], ids=["fildes", "instream"])
def test_eicar_is_found(clamd: Clamd, tmp_path: Path, name: str, pass_fd: bool) -> None:
    """Handed the file (FILDES, what scan_path does) or streamed its bytes (INSTREAM), clamd
    finds the same."""
    scanner = ClamdScanner(clamd.socket, pass_fd=pass_fd)
    verdict = scanner.scan_path(write(tmp_path, name, INFECTED[name]))
    assert not verdict.clean
    assert len(verdict.findings) == 1
    assert verdict.findings[0] in EICAR_FOUND
    assert scanner.pass_fd is pass_fd  # this clamd takes descriptors: no fallback


def test_clamd_reads_the_file_it_is_handed_whole(clamd: Clamd, tmp_path: Path) -> None:
    """FILDES scans the whole file whatever the descriptor's offset, and needs no access to
    its path: the file may be gone from its directory by the time clamd reads it."""
    path = write(tmp_path, "late.bin", os.urandom(3 << 20) + EICAR)
    scanner = clamd.scanner()
    assert scanner.scan_path(path).findings[0] in EICAR_FOUND
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        path.unlink()
        reply = scanner._command(b"FILDES", fd=fd)
    finally:
        os.close(fd)
    assert reply.startswith("fd["), reply
    assert reply.endswith("UNOFFICIAL FOUND"), reply


def test_eicar_in_a_pe_overlay_is_found(clamd: Clamd, tmp_path: Path) -> None:
    infected = hello_exe(tmp_path / "setup.exe", overlay=b"\0" * 512 + EICAR)
    verdict = clamd.scanner().scan_path(infected)
    assert verdict.findings == ("Signgate.Test.EICAR.UNOFFICIAL",)


def test_eicar_in_a_zip_appended_to_a_pe_is_found(clamd: Clamd, tmp_path: Path) -> None:
    # A self-extracting installer: an executable with an archive as its overlay.
    sfx = hello_exe(tmp_path / "installer.exe",
                    overlay=zipped({"payload/eicar.com": EICAR}))
    assert not clamd.scanner().scan_path(sfx).clean


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_files_are_clean(clamd: Clamd, tmp_path: Path, name: str) -> None:
    verdict = clamd.scanner().scan_path(write(tmp_path, name, CLEAN[name]))
    assert verdict.clean, verdict.findings
    assert verdict.engine == "clamav"
    assert verdict.engine_version.startswith("1.")
    assert verdict.ruleset_version == NO_DATABASE


def test_clean_pe_is_clean(clamd: Clamd, tmp_path: Path) -> None:
    assert clamd.scanner().scan_path(hello_exe(tmp_path / "hello.exe")).clean


def test_scan_chunks(clamd: Clamd) -> None:
    scanner = clamd.scanner()
    assert not scanner.scan_chunks(iter([EICAR[:10], EICAR[10:]])).clean
    assert scanner.scan_chunks(iter([b"fine"] * 1000)).clean


def test_wrong_socket_is_unavailable(clamd: Clamd, tmp_path: Path) -> None:
    artifact = write(tmp_path, "a.txt", b"x")
    wrong = ClamdScanner(clamd.state_dir / "other.sock")
    with pytest.raises(ScannerUnavailable, match="scanner unavailable: clamav: no clamd socket"):
        scan_all([wrong], artifact)


@pytest.fixture
def small_clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    """A clamd of the test's own, accepting at most 1 MiB, that the test may stop."""
    instance = start_clamd(tmp_path_factory.mktemp("clamd-small"), max_size_mb=1)
    yield instance
    instance.stop()


def test_stopped_clamd_is_unavailable(small_clamd: Clamd, tmp_path: Path) -> None:
    artifact = write(tmp_path, "a.txt", b"x")
    scanner = small_clamd.scanner()
    assert scanner.scan_path(artifact).clean
    small_clamd.stop()
    with pytest.raises(ScannerUnavailable, match="scanner unavailable: clamav: "):
        scan_all([scanner], artifact)


@pytest.mark.parametrize("pass_fd", [True, False], ids=["fildes", "instream"])
def test_over_stream_max_length_is_refused(small_clamd: Clamd, tmp_path: Path,
                                           pass_fd: bool) -> None:
    """Over MaxFileSize (FILDES) or StreamMaxLength (INSTREAM), both 1 MiB for this clamd:
    the same refusal, not a clean verdict on the first MiB."""
    scanner = ClamdScanner(small_clamd.socket, pass_fd=pass_fd)
    assert scanner.scan_path(write(tmp_path, "small.bin", os.urandom(900_000))).clean
    big = write(tmp_path, "big.bin", os.urandom(3 << 20))
    with pytest.raises(PayloadTooLarge) as info:
        scan_all([scanner], big)
    assert info.value.code == "scan_size_limit"
    assert "StreamMaxLength" in str(info.value)
    # and clamd is still fine afterwards
    scanner.ping()


def test_archive_over_max_scan_size_is_a_finding(small_clamd: Clamd, tmp_path: Path) -> None:
    """A small zip that unpacks past MaxScanSize (4 MiB for this clamd) is not passed as
    clean after a partial scan (AlertExceedsMax in clamd.conf.in)."""
    bomb = zipped({f"part{i}.bin": bytes([i]) * 900_000 for i in range(8)})
    assert len(bomb) < 100_000
    verdict = small_clamd.scanner().scan_path(write(tmp_path, "bomb.zip", bomb))
    assert verdict.findings == ("Heuristics.Limits.Exceeded.MaxScanSize",)


def test_archive_nested_too_deep_is_a_finding(clamd: Clamd, tmp_path: Path) -> None:
    data = b"hello"
    for _ in range(25):  # MaxRecursion is 17
        data = zipped({"inner.zip": data})
    verdict = clamd.scanner().scan_path(write(tmp_path, "deep.zip", data))
    assert verdict.findings == ("Heuristics.Limits.Exceeded.MaxRecursion",)


def test_all_engines_together(clamd: Clamd, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "release.yar").write_text(
        'rule internal_only { strings: $s = "INTERNAL-ONLY-BUILD" condition: $s }\n')
    clean = write(tmp_path, "clean.bin", b"a release")
    marked = write(tmp_path, "marked.bin", b"INTERNAL-ONLY-BUILD")
    banned = write(tmp_path, "banned.bin", b"the build that leaked")
    infected = write(tmp_path, "infected.zip", zipped({"x.com": EICAR}))
    scanners: list[Scanner] = [clamd.scanner(), YaraScanner(rules),
                DenyListScanner({sha256_file(banned): "leaked build"})]

    verdicts = scan_all(scanners, clean)
    assert all_clean(verdicts)
    assert [v.engine for v in verdicts] == ["clamav", "yara", "denylist"]
    assert findings(scan_all(scanners, marked)) == ["yara:release:internal_only"]
    assert findings(scan_all(scanners, banned)) == ["denylist:denylisted:leaked build"]
    assert findings(scan_all(scanners, infected))[0].startswith("clamav:Signgate.Test.EICAR")


def test_organisation_signatures_are_loaded(tmp_path_factory: pytest.TempPathFactory,
                                            tmp_path: Path) -> None:
    own = tmp_path / "acme-signatures"
    own.mkdir()
    marker = b"ACME-REVOKED-COMPONENT-7"
    (own / "acme.ndb").write_text(f"Acme.Revoked.Component:0:*:{marker.hex()}\n")
    instance = start_clamd(tmp_path_factory.mktemp("clamd-acme"), max_size_mb=1,
                           signatures=[own])
    try:
        verdict = instance.scanner().scan_path(write(tmp_path, "a.bin", b"xx" + marker))
        assert verdict.findings == ("Acme.Revoked.Component.UNOFFICIAL",)
    finally:
        instance.stop()


_CONCURRENT_YARA = """
import os, sys, threading
from pathlib import Path
from signgate.scan.yara import YaraScanner

directory, count, size_mb = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
files = []
for i in range(count):
    path = directory / f"artifact-{i}.bin"
    with path.open("wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1 << 20))
    files.append(path)

def peak_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

scanner = YaraScanner(directory / "rules")  # the default bound
before = peak_mib()
start = threading.Barrier(count)
def scan(path):
    start.wait()
    assert scanner.scan_path(path).clean
threads = [threading.Thread(target=scan, args=(p,)) for p in files]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(peak_mib() - before)
"""


def test_concurrent_yara_scans_hold_bounded_memory(tmp_path: Path) -> None:
    """YARA maps each file whole and touches every page, so each running scan is resident
    memory the size of the artifact: 8 scans of 32 MiB started together peaked at +242 MiB
    without a bound. At most scan_yara_max_concurrent (default 2) now run at once: about
    +64 MiB. Measured in a process of its own (VmHWM)."""
    import subprocess
    import sys

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "m.yar").write_text(
        'rule marker { strings: $a = "NOT-IN-RANDOM-DATA-1234" condition: $a }\n')
    size_mb = 32
    out = subprocess.run([sys.executable, "-c", _CONCURRENT_YARA, str(tmp_path), "8",
                          str(size_mb)], capture_output=True, text=True, timeout=120,
                         check=True)
    grown = float(out.stdout)
    assert grown < 3.5 * size_mb, f"peak resident memory grew by {grown:.0f} MiB"
