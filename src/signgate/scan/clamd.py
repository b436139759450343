"""ClamAV through clamd's Unix socket.

The protocol is clamd(8), section COMMANDS: a command is ``z<NAME>\\0`` (the ``z`` prefix asks
for NUL-delimited commands and replies), one command per connection here:

- ``zPING`` -> ``PONG``; ``zVERSION`` -> ``ClamAV 1.4.6/27432/Mon Oct 14 08:35:11 2024`` (engine
  version / official database version / its date; only ``ClamAV 1.4.6`` when clamd runs
  without the official databases).
- ``zFILDES``, then one byte sent with the open file's descriptor as ancillary data
  (``SCM_RIGHTS``, unix(7)) -> ``fd[<n>]: OK``, ``fd[<n>]: <signature> FOUND``, or
  ``<message> ERROR``. clamd scans the whole file through the descriptor it received: not
  a byte is copied, and clamd needs no permission on the file's path.
- ``zINSTREAM``, then chunks ``<length><data>`` with ``<length>`` a 4-byte unsigned integer in
  network byte order, ended by a zero-length chunk -> ``stream: OK``,
  ``stream: <signature> FOUND``, or ``<message> ERROR``. Past ``StreamMaxLength`` clamd
  answers ``INSTREAM size limit exceeded. ERROR`` and closes the connection.

A file signgate has on its own disk (the upload spool) goes by ``FILDES``: clamd receives an
``INSTREAM`` into a temporary file of its own and scans only once the stream has ended, so
streaming costs a second copy of the artifact through the socket and onto clamd's disk and
gains nothing (``bench/scan_throughput.py``: ``clamdscan --fdpass`` against ``--stream``).
A clamd that cannot receive descriptors (built without, or behind a socket proxy) answers
``UNKNOWN COMMAND`` or ``No file descriptor received. ERROR``; the scanner then streams
instead, from then on. A file over clamd's ``MaxFileSize`` (equal to ``StreamMaxLength`` in
``clamd.conf.in``) comes back as the finding ``Heuristics.Limits.Exceeded.MaxFileSize``
(``AlertExceedsMax``), which is the same refusal as a stream over ``StreamMaxLength``.

clamd itself unpacks archives, installers, documents and PE overlays (clamd.conf ``Scan*``
options, see ``clamd.conf.in``). No client library: the PyPI ones (``clamd``, ``pyclamd``)
have had no release for years, and the protocol above is a screenful of code.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from signgate.errors import ErrorCode, PayloadTooLarge, ScannerUnavailable
from signgate.scan.base import Verdict

ENGINE = "clamav"
CHUNK_SIZE = 256 * 1024
MAX_REPLY = 64 * 1024
NO_DATABASE = "local signatures only"
# What clamd calls the whole file being over MaxFileSize (members of archives over it are
# scanned in part and not reported: see clamd.conf.in).
OVER_MAX_FILE_SIZE = "Heuristics.Limits.Exceeded.MaxFileSize"
# A reply naming what was scanned: "stream: ..." (INSTREAM) or "fd[7]: ..." (FILDES).
_SUBJECT = re.compile(r"(?:stream|fd\[\d+\]): ")
# clamd's answers when it cannot take a descriptor: streaming is the way then.
_NO_FD_PASSING = ("UNKNOWN COMMAND", "No file descriptor received. ERROR")


@dataclass(frozen=True)
class ClamdVersion:
    engine: str  # "1.4.6"
    database: str  # "27432/Mon Oct 14 08:35:11 2024", or NO_DATABASE


def parse_version(reply: str) -> ClamdVersion:
    """``ClamAV 1.4.6/27432/Mon Oct 14 08:35:11 2024`` -> engine and database versions."""
    product, _, database = reply.partition("/")
    name, _, engine = product.partition(" ")
    if name != "ClamAV" or not engine:
        raise ScannerUnavailable(ENGINE, f"unexpected reply to VERSION from clamd: {reply!r}")
    return ClamdVersion(engine=engine, database=database or NO_DATABASE)


def parse_scan_reply(reply: str) -> tuple[str, ...]:
    """The findings in an INSTREAM or FILDES reply (empty: clean); errors raise, and so
    does the whole artifact being over clamd's size limit."""
    subject = _SUBJECT.match(reply)
    result = reply[subject.end():] if subject else None
    if result == "OK":
        return ()
    if result is not None and result.endswith(" FOUND"):
        found = result[:-len(" FOUND")]
        if found == OVER_MAX_FILE_SIZE:
            raise _size_limit(reply)
        return (found,)
    if "size limit exceeded" in reply:
        raise _size_limit(reply)
    if reply.endswith("ERROR"):
        raise ScannerUnavailable(ENGINE, f"clamd could not scan the artifact: {reply}")
    raise ScannerUnavailable(ENGINE, f"unexpected reply from clamd: {reply!r}")


def _size_limit(reply: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"artifact not scanned: {ENGINE}: it is larger than clamd accepts "
        f"(StreamMaxLength and MaxFileSize in clamd.conf; clamd said {reply!r}); it cannot "
        "be signed", code=ErrorCode.SCAN_SIZE_LIMIT, engine=ENGINE)


class ClamdScanner:
    """A clamd client on a Unix socket.

    ``connect_timeout`` bounds connecting; ``timeout`` bounds every later wait for clamd
    (sending a chunk, and the reply, which comes once the whole artifact is scanned).
    Every failure to get a verdict raises ScannerUnavailable; an artifact over clamd's
    StreamMaxLength (streamed) or MaxFileSize (handed over) raises PayloadTooLarge (code
    ``scan_size_limit``). Thread-safe: one connection per command.

    ``pass_fd``: :meth:`scan_path` hands clamd the open file (``FILDES``) rather than
    streaming its bytes (``INSTREAM``); it turns itself off when clamd cannot take a
    descriptor.
    """

    name = ENGINE

    def __init__(self, socket_path: Path | str, *, connect_timeout: float = 5.0,
                 timeout: float = 300.0, chunk_size: int = CHUNK_SIZE,
                 pass_fd: bool = True) -> None:
        self.socket_path = Path(socket_path)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.pass_fd = pass_fd

    # -- commands ------------------------------------------------------------------------

    def ping(self) -> None:
        reply = self._command(b"PING")
        if reply != "PONG":
            raise ScannerUnavailable(ENGINE, f"unexpected reply to PING from clamd: {reply!r}")

    def version(self) -> ClamdVersion:
        return parse_version(self._command(b"VERSION"))

    def scan_chunks(self, chunks: Iterable[bytes]) -> Verdict:
        """Scan an artifact given as chunks (streamed to clamd, never held in memory)."""
        start = time.monotonic()
        version = self.version()
        found = parse_scan_reply(self._command(b"INSTREAM", chunks))
        return Verdict.of(ENGINE, found, engine_version=version.engine,
                          ruleset_version=version.database, seconds=time.monotonic() - start)

    def scan_path(self, path: Path) -> Verdict:
        """Scan the file at ``path``: its descriptor is handed to clamd (``FILDES``), or,
        when clamd cannot take one, its bytes are streamed (``INSTREAM``)."""
        start = time.monotonic()
        # Opened before clamd is asked anything: an unreadable artifact is not clamd's fault.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if self.pass_fd:
                version = self.version()
                reply = self._command(b"FILDES", fd=fd)
                if reply not in _NO_FD_PASSING:
                    return Verdict.of(ENGINE, parse_scan_reply(reply),
                                      engine_version=version.engine,
                                      ruleset_version=version.database,
                                      seconds=time.monotonic() - start)
                self.pass_fd = False  # this clamd streams only: stream from now on
            with os.fdopen(os.dup(fd), "rb") as f:
                return self.scan_chunks(iter(lambda: f.read(self.chunk_size), b""))
        finally:
            os.close(fd)

    # -- wire ----------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        where = f"clamd at {self.socket_path}"
        if not self.socket_path.exists():
            raise ScannerUnavailable(
                ENGINE, f"no clamd socket at {self.socket_path} (is clamd running? "
                        "scripts/clamd.sh starts one)")
        if not self.socket_path.is_socket():
            raise ScannerUnavailable(
                ENGINE, f"cannot connect to {where}: {self.socket_path} is not a socket "
                        "(check the clamd socket setting)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(str(self.socket_path))
        except ConnectionRefusedError as exc:
            sock.close()
            raise ScannerUnavailable(
                ENGINE, f"{where} refused the connection (clamd stopped and left its "
                        "socket behind?)") from exc
        except TimeoutError as exc:
            sock.close()
            raise ScannerUnavailable(
                ENGINE, f"timed out after {self.connect_timeout} s connecting to {where}"
            ) from exc
        except OSError as exc:
            sock.close()
            raise ScannerUnavailable(
                ENGINE, f"cannot connect to {where}: {exc.strerror or exc}") from exc
        sock.settimeout(self.timeout)
        return sock

    def _command(self, command: bytes, body: Iterable[bytes] | None = None,
                 fd: int | None = None) -> str:
        name = command.decode()
        with self._connect() as sock:
            self._send(sock, b"z" + command + b"\0", name)
            if fd is not None and (refused := self._send_fd(sock, fd, name)):
                return refused
            if body is not None:
                # Errors reading ``body`` (the artifact) propagate as they are; only the
                # socket's become ScannerUnavailable.
                for chunk in body:
                    view = memoryview(chunk)
                    for i in range(0, len(view), self.chunk_size):
                        part = view[i:i + self.chunk_size]
                        self._send(sock, struct.pack(">I", len(part)) + part, name)
                self._send(sock, struct.pack(">I", 0), name)
            return self._read_reply(sock, name)

    def _send(self, sock: socket.socket, data: bytes, command: str) -> None:
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            raise ScannerUnavailable(
                ENGINE, f"clamd stopped reading for {self.timeout} s during {command}"
            ) from exc
        except OSError as exc:
            # clamd closes the connection when it refuses a stream (size limit); its reply,
            # if any, says why.
            reply = _read_reply_quietly(sock)
            if "size limit exceeded" in reply:
                raise _size_limit(reply) from exc
            raise ScannerUnavailable(
                ENGINE, f"clamd closed the connection during {command}: "
                        f"{reply or exc.strerror or exc}") from exc

    def _send_fd(self, sock: socket.socket, fd: int, command: str) -> str | None:
        """One byte carrying ``fd`` (SCM_RIGHTS): clamd receives its own copy of it. A
        clamd that does not know the command may have answered and closed already: that
        answer is returned."""
        try:
            socket.send_fds(sock, [b"\0"], [fd])
        except TimeoutError as exc:
            raise ScannerUnavailable(
                ENGINE, f"clamd stopped reading for {self.timeout} s during {command}"
            ) from exc
        except OSError as exc:
            reply = _read_reply_quietly(sock)
            if reply in _NO_FD_PASSING:
                return reply
            raise ScannerUnavailable(
                ENGINE, f"clamd closed the connection during {command}: "
                        f"{reply or exc.strerror or exc}") from exc
        return None

    def _read_reply(self, sock: socket.socket, command: str) -> str:
        data = bytearray()
        while b"\0" not in data:
            try:
                part = sock.recv(4096)
            except TimeoutError as exc:
                raise ScannerUnavailable(
                    ENGINE, f"clamd did not answer {command} within "
                            f"{self.timeout} s") from exc
            except OSError as exc:
                raise ScannerUnavailable(
                    ENGINE, f"lost the connection to clamd during {command}: "
                            f"{exc.strerror or exc}") from exc
            if not part:
                break
            data += part
            if len(data) > MAX_REPLY:
                raise ScannerUnavailable(ENGINE, "unexpected reply from clamd: too long")
        text = bytes(data).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        if not text:
            raise ScannerUnavailable(
                ENGINE, f"clamd closed the connection without answering {command}")
        return text


def _read_reply_quietly(sock: socket.socket) -> str:
    """Whatever clamd said before closing, or "" (used only to explain a failure)."""
    try:
        sock.settimeout(1.0)
        data = sock.recv(4096)
    except OSError:
        return ""
    return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()

