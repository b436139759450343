"""Real Windows executables for the Authenticode tests, compiled with mingw-w64 at test
time (no binary blobs in the repository)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from functools import cache
from pathlib import Path

MINGW = "x86_64-w64-mingw32-gcc"
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from signgate"); return 0; }\n'


@cache
def _hello() -> bytes:
    """A PE32+ console program, compiled once per test session."""
    if shutil.which(MINGW) is None:
        raise RuntimeError(f"{MINGW} is not installed (Debian: gcc-mingw-w64-x86-64)")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "hello.c"
        source.write_text(HELLO_C)
        out = Path(tmp) / "hello.exe"
        subprocess.run([MINGW, "-O2", "-s", "-o", str(out), str(source)], check=True,
                       capture_output=True, timeout=120)
        return out.read_bytes()


def hello_exe(path: Path, overlay: bytes = b"") -> Path:
    """Write the hello-world PE (plus ``overlay`` appended after its last section, as
    installers carry their payload) to ``path``."""
    path.write_bytes(_hello() + overlay)
    return path


def pe_checksum(data: bytes, checksum_offset: int) -> int:
    """CheckSumMappedFile, word by word, as the PE spec describes it (the CheckSum field
    itself counts as zero)."""
    total = 0
    padded = data + b"\0" * (len(data) % 2)
    for i in range(0, len(padded), 2):
        word = 0 if checksum_offset <= i < checksum_offset + 4 else \
            padded[i] | padded[i + 1] << 8
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def certificate_table(path: Path) -> bytes:
    """The raw attribute certificate table of a signed PE (data directory entry 4)."""
    data = path.read_bytes()
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    at, size = struct.unpack_from("<II", data, _cert_dir(data, e_lfanew))
    return data[at:at + size]


def with_certificate_table(path: Path, table: bytes, out: Path) -> Path:
    """``path`` (a signed PE32+) with its certificate table replaced by ``table``, the
    data directory entry and the PE checksum updated, as a careful attacker would: the
    only thing wrong with the result is what is in the table."""
    data = bytearray(path.read_bytes())
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    cert_dir = _cert_dir(bytes(data), e_lfanew)
    at, _ = struct.unpack_from("<II", data, cert_dir)
    data = data[:at] + table
    struct.pack_into("<II", data, cert_dir, at, len(table))
    checksum_at = e_lfanew + 24 + 64
    struct.pack_into("<I", data, checksum_at, pe_checksum(bytes(data), checksum_at))
    out.write_bytes(bytes(data))
    return out


def win_certificate(signed_data: bytes, appended: bytes = b"") -> bytes:
    """A WIN_CERTIFICATE (revision 2.0, PKCS_SIGNED_DATA) holding ``signed_data`` and then
    ``appended``, zero-padded to 8 bytes, dwLength counting everything."""
    body = signed_data + appended
    length = (8 + len(body) + 7) & ~7
    return (struct.pack("<IHH", length, 0x0200, 0x0002) + body).ljust(length, b"\0")


def _cert_dir(data: bytes, e_lfanew: int) -> int:
    (magic,) = struct.unpack_from("<H", data, e_lfanew + 24)
    assert magic == 0x20B, "PE32+ only (what mingw builds here)"
    return e_lfanew + 24 + 112 + 4 * 8
