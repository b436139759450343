"""Throw-away GnuPG homes whose daemons end with the test that started them.

gpg starts a `gpg-agent` per home directory on first use and leaves it running after gpg
exits; a test suite that never stops them leaves one daemon per home behind. A home made
here is closed with `gpgconf --kill all` (which stops gpg-agent, dirmngr and keyboxd of
that home) before it is removed, and `daemons_under` lets the suite check that nothing it
started outlives it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("gpg-agent", "dirmngr", "keyboxd", "scdaemon")
_made: list[str] = []  # every home this process made


@contextmanager
def gpg_home() -> Iterator[Path]:
    """A new, private GnuPG home."""
    home = Path(tempfile.mkdtemp(prefix="sg-gpg-"))
    home.chmod(0o700)
    _made.append(str(home))
    try:
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def daemons_left() -> list[str]:
    """Command lines of GnuPG daemons still running for a home this process made."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # the process ended while we looked
        if argv and Path(argv[0]).name in DAEMONS and any(a in _made for a in argv):
            found.append(" ".join(argv).strip())
    return found
