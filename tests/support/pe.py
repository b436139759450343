"""Real Windows executables for the Authenticode tests, compiled with mingw-w64 at test
time (no binary blobs in the repository)."""

from __future__ import annotations

import shutil
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
