"""The clamd client against a fake clamd on a Unix socket: the wire format it sends, how it
reads each reply, and every way of not getting a verdict. (The real clamd answers the same
commands in tests/integration/test_scanners.py.)"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from signgate.errors import PayloadTooLarge, ScannerUnavailable
from signgate.scan.clamd import NO_DATABASE, ClamdScanner, parse_scan_reply, parse_version

VERSION = b"ClamAV 1.4.6/27432/Mon Oct 14 08:35:11 2024\0"

Handler = Callable[[socket.socket, bytes], None]


class FakeClamd:
    """Accepts connections, reads the NUL-terminated command and lets ``handler`` answer."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.commands: list[bytes] = []
        self.streams: list[list[int]] = []  # INSTREAM chunk lengths, terminator included
        self.received: list[bytes] = []
        self.passed: list[bytes] = []  # FILDES: the content of each file handed over
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                command = b""
                while not command.endswith(b"\0"):
                    byte = conn.recv(1)
                    if not byte:
                        break
                    command += byte
                self.commands.append(command)
                with contextlib.suppress(OSError):
                    self.handler(conn, command)

    def read_stream(self, conn: socket.socket, limit: int | None = None) -> bool:
        """Read INSTREAM chunks; False (stop reading) once more than ``limit`` bytes came."""
        lengths: list[int] = []
        data = b""
        self.streams.append(lengths)
        while True:
            (n,) = struct.unpack(">I", _exactly(conn, 4))
            lengths.append(n)
            if n == 0:
                self.received.append(data)
                return True
            data += _exactly(conn, n)
            if limit is not None and len(data) > limit:
                return False

    def read_fd(self, conn: socket.socket) -> bool:
        """Receive FILDES's descriptor and read the whole file through it, as clamd does;
        False if no descriptor came."""
        _, fds, _, _ = socket.recv_fds(conn, 1, 4)
        if not fds:
            return False
        with os.fdopen(fds[0], "rb") as f:
            f.seek(0)
            self.passed.append(f.read())
        for extra in fds[1:]:
            os.close(extra)
        return True

    def close(self) -> None:
        self.sock.close()


def _exactly(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        part = conn.recv(n - len(out))
        if not part:
            raise ConnectionError("client went away")
        out += part
    return out


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Callable[[Handler], FakeClamd]]:
    servers: list[FakeClamd] = []

    def make(handler: Handler) -> FakeClamd:
        server = FakeClamd(tmp_path / f"clamd{len(servers)}.sock", handler)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


def replying(scan_reply: bytes, fake_server: list[FakeClamd], fildes: str) -> Handler:
    """Answers PING, VERSION, INSTREAM and FILDES with ``scan_reply``, as clamd does for
    both (``stream:`` becomes ``fd[<n>]:`` for FILDES). ``fildes``: "yes"; "unknown", a
    clamd built without descriptor passing; "dropped", one behind a proxy that passes the
    byte but not the descriptor."""
    def handler(conn: socket.socket, command: bytes) -> None:
        if command == b"zVERSION\0":
            conn.sendall(VERSION)
        elif command == b"zPING\0":
            conn.sendall(b"PONG\0")
        elif command == b"zINSTREAM\0":
            fake_server[0].read_stream(conn)
            conn.sendall(scan_reply)
        elif command == b"zFILDES\0" and fildes == "dropped":  # behind a socket proxy
            conn.recv(1)
            conn.sendall(b"No file descriptor received. ERROR\0")
        elif command == b"zFILDES\0" and fildes == "yes":
            fake_server[0].read_fd(conn)
            conn.sendall(scan_reply.replace(b"stream: ", b"fd[9]: ", 1))
        else:
            conn.sendall(b"UNKNOWN COMMAND\0")
    return handler


def serve(fake: Callable[[Handler], FakeClamd], scan_reply: bytes,
          fildes: str = "yes") -> FakeClamd:
    holder: list[FakeClamd] = []
    server = fake(replying(scan_reply, holder, fildes))
    holder.append(server)
    return server


def test_fildes_hands_over_the_file(fake: Callable[[Handler], FakeClamd],
                                    tmp_path: Path) -> None:
    """scan_path passes the open file (SCM_RIGHTS) instead of streaming its bytes."""
    server = serve(fake, b"stream: OK\0")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x" * 10_000)
    verdict = ClamdScanner(server.path).scan_path(artifact)
    assert verdict.clean
    assert (verdict.engine_version, verdict.ruleset_version) == (
        "1.4.6", "27432/Mon Oct 14 08:35:11 2024")
    assert server.commands == [b"zVERSION\0", b"zFILDES\0"]
    assert server.passed == [b"x" * 10_000]
    assert server.streams == []  # not a byte through the socket


def test_fildes_finding(fake: Callable[[Handler], FakeClamd], tmp_path: Path) -> None:
    server = serve(fake, b"stream: Win.Test.EICAR_HDB-1 FOUND\0")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    verdict = ClamdScanner(server.path).scan_path(artifact)
    assert verdict.findings == ("Win.Test.EICAR_HDB-1",)


@pytest.mark.parametrize("fildes", ["unknown", "dropped"])
def test_a_clamd_without_fildes_gets_the_stream(fake: Callable[[Handler], FakeClamd],
                                                tmp_path: Path, fildes: str) -> None:
    """UNKNOWN COMMAND or no descriptor received: the same scan streams instead, and
    later scans stream at once."""
    server = serve(fake, b"stream: Win.Test.EICAR_HDB-1 FOUND\0", fildes=fildes)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"y" * 5000)
    scanner = ClamdScanner(server.path)
    assert scanner.scan_path(artifact).findings == ("Win.Test.EICAR_HDB-1",)
    assert server.received == [b"y" * 5000]
    assert scanner.scan_path(artifact).findings == ("Win.Test.EICAR_HDB-1",)
    assert server.commands == [b"zVERSION\0", b"zFILDES\0", b"zVERSION\0", b"zINSTREAM\0",
                               b"zVERSION\0", b"zINSTREAM\0"]
    assert scanner.pass_fd is False


def test_fildes_over_clamd_max_file_size_is_too_large(
        fake: Callable[[Handler], FakeClamd], tmp_path: Path) -> None:
    """clamd reports a whole file over MaxFileSize as a heuristic finding: the same
    refusal as a stream over StreamMaxLength, not a malware finding."""
    server = serve(fake, b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0")
    artifact = tmp_path / "big.bin"
    artifact.write_bytes(b"z" * 100)
    with pytest.raises(PayloadTooLarge) as info:
        ClamdScanner(server.path).scan_path(artifact)
    assert info.value.code == "scan_size_limit"
    assert "MaxFileSize" in str(info.value)


def test_instream_framing_and_clean_reply(fake: Callable[[Handler], FakeClamd],
                                          tmp_path: Path) -> None:
    server = serve(fake, b"stream: OK\0")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x" * 10_000)
    verdict = ClamdScanner(server.path, chunk_size=4096, pass_fd=False).scan_path(artifact)
    assert verdict.clean
    assert verdict.engine == "clamav"
    assert verdict.engine_version == "1.4.6"
    assert verdict.ruleset_version == "27432/Mon Oct 14 08:35:11 2024"
    assert server.commands == [b"zVERSION\0", b"zINSTREAM\0"]
    # 4-byte big-endian lengths, chunks no larger than chunk_size, a zero-length terminator
    assert server.streams == [[4096, 4096, 1808, 0]]
    assert server.received == [b"x" * 10_000]


def test_scan_chunks_streams_what_it_is_given(fake: Callable[[Handler], FakeClamd]) -> None:
    server = serve(fake, b"stream: OK\0")
    ClamdScanner(server.path, chunk_size=8).scan_chunks(iter([b"abc", b"", b"0123456789"]))
    assert server.streams == [[3, 8, 2, 0]]
    assert server.received == [b"abc0123456789"]


def test_found_reply_is_a_finding(fake: Callable[[Handler], FakeClamd], tmp_path: Path) -> None:
    server = serve(fake, b"stream: Win.Test.EICAR_HDB-1 FOUND\0")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    verdict = ClamdScanner(server.path, pass_fd=False).scan_path(artifact)
    assert not verdict.clean
    assert verdict.findings == ("Win.Test.EICAR_HDB-1",)


@pytest.mark.parametrize(("reply", "error", "message"), [
    (b"Can't allocate memory ERROR\0", ScannerUnavailable,
     "scanner unavailable: clamav: clamd could not scan the artifact: Can't allocate memory"),
    (b"stream: maybe\0", ScannerUnavailable,
     "scanner unavailable: clamav: unexpected reply from clamd: 'stream: maybe'"),
    (b"", ScannerUnavailable,
     "scanner unavailable: clamav: clamd closed the connection without answering INSTREAM"),
    (b"INSTREAM size limit exceeded. ERROR\0", PayloadTooLarge,
     "artifact not scanned: clamav: it is larger than clamd accepts"),
])
@pytest.mark.parametrize("pass_fd", [True, False], ids=["fildes", "instream"])
def test_error_replies(fake: Callable[[Handler], FakeClamd], tmp_path: Path, reply: bytes,
                       error: type[Exception], message: str, pass_fd: bool) -> None:
    server = serve(fake, reply)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    with pytest.raises(error) as info:
        ClamdScanner(server.path, pass_fd=pass_fd).scan_path(artifact)
    if pass_fd:  # the same replies, about "fd[9]" and to FILDES
        message = message.replace("'stream: ", "'fd[9]: ").replace("INSTREAM", "FILDES")
    assert str(info.value).startswith(message)


def test_size_limit_while_sending(fake: Callable[[Handler], FakeClamd],
                                  tmp_path: Path) -> None:
    """clamd stops reading, answers and closes mid-stream, as it does past StreamMaxLength."""
    holder: list[FakeClamd] = []

    def handler(conn: socket.socket, command: bytes) -> None:
        if command == b"zVERSION\0":
            conn.sendall(VERSION)
            return
        holder[0].read_stream(conn, limit=100_000)
        conn.sendall(b"INSTREAM size limit exceeded. ERROR\0")
        conn.shutdown(socket.SHUT_RDWR)

    holder.append(fake(handler))
    artifact = tmp_path / "big.bin"
    artifact.write_bytes(b"x" * 20_000_000)
    with pytest.raises(PayloadTooLarge) as info:
        ClamdScanner(holder[0].path, chunk_size=65536, pass_fd=False).scan_path(artifact)
    assert info.value.code == "scan_size_limit"
    assert "StreamMaxLength" in str(info.value)


def test_no_answer_times_out(fake: Callable[[Handler], FakeClamd]) -> None:
    release = threading.Event()
    def silent(conn: socket.socket, command: bytes) -> None:
        release.wait(10)

    server = fake(silent)
    try:
        with pytest.raises(ScannerUnavailable,
                           match=r"scanner unavailable: clamav: clamd did not answer PING "
                                 r"within 0\.2 s"):
            ClamdScanner(server.path, timeout=0.2).ping()
    finally:
        release.set()


def test_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(ScannerUnavailable,
                       match=r"scanner unavailable: clamav: no clamd socket at .*nothing\.sock"):
        ClamdScanner(tmp_path / "nothing.sock").ping()


def test_refused_connection(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file nobody listens on, as a killed clamd leaves
    stale.close()
    with pytest.raises(ScannerUnavailable, match="refused the connection"):
        ClamdScanner(path).ping()


def test_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "regular-file"
    path.write_text("")
    with pytest.raises(ScannerUnavailable, match="cannot connect to clamd at"):
        ClamdScanner(path).ping()


def test_unreadable_artifact_is_not_blamed_on_clamd(fake: Callable[[Handler], FakeClamd],
                                                    tmp_path: Path) -> None:
    server = serve(fake, b"stream: OK\0")
    with pytest.raises(FileNotFoundError):
        ClamdScanner(server.path).scan_path(tmp_path / "missing.bin")


def test_parse_version() -> None:
    v = parse_version("ClamAV 1.4.6/27432/Mon Oct 14 08:35:11 2024")
    assert (v.engine, v.database) == ("1.4.6", "27432/Mon Oct 14 08:35:11 2024")
    assert parse_version("ClamAV 1.4.6").database == NO_DATABASE
    with pytest.raises(ScannerUnavailable, match="unexpected reply to VERSION"):
        parse_version("Hello")


def test_parse_scan_reply() -> None:
    assert parse_scan_reply("stream: OK") == ()
    assert parse_scan_reply("stream: Eicar-Signature FOUND") == ("Eicar-Signature",)
    assert parse_scan_reply("fd[12]: OK") == ()
    assert parse_scan_reply("fd[12]: Eicar-Signature FOUND") == ("Eicar-Signature",)
    with pytest.raises(ScannerUnavailable, match="unexpected reply"):
        parse_scan_reply("/etc/passwd: OK")  # a path: not an answer about what was sent
