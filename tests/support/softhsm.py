"""A real SoftHSM2 token for the PKCS#11 tests, initialised per test run in a temporary
directory (``SOFTHSM2_CONF`` names a config whose ``directories.tokendir`` is there).

SoftHSM reads ``SOFTHSM2_CONF`` when a process first initialises the module, and sees the
tokens that exist then: so one :class:`SoftHsm` is made per test session with every token
the tests need (``signgate`` for the key-store and format tests, ``second`` for routing
between two stores, ``doomed`` whose directory a test removes), and ``SOFTHSM2_CONF`` is
set in this process's environment before anything loads the module. Servers started by
the tests get the same variable through :meth:`SoftHsm.env`.

Nothing is skipped: without softhsm2 (Debian package ``softhsm2``, installed by
scripts/test.sh) the fixture fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.server import Server, start_server

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "87654321"
USER_PIN = "12345678"
PIN_ENV = "SOFTHSM_TEST_PIN"  # not SIGNGATE_*: tests/support/server.py passes it on
TOKENS = ("signgate", "second", "doomed", "wrongpin")


def module_path() -> str:
    """The SoftHSM2 PKCS#11 module; fails (never skips) when softhsm2 is not installed."""
    for candidate in MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    pytest.fail("softhsm2 is not installed (no libsofthsm2.so; scripts/test.sh installs "
                "the Debian package softhsm2)")


def util() -> str:
    found = shutil.which("softhsm2-util")
    if found is None:
        pytest.fail("softhsm2-util is not installed (Debian package softhsm2)")
    return found


@dataclass
class SoftHsm:
    """A SoftHSM2 configuration and its token directory; ``tokens`` by label."""

    root: Path
    module: str
    pin: str = USER_PIN
    tokens: list[str] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokendir(self) -> Path:
        return self.root / "tokens"

    def env(self) -> dict[str, str]:
        """What a process needs to see these tokens, and the PIN in ``PIN_ENV``."""
        return {"SOFTHSM2_CONF": str(self.conf), PIN_ENV: self.pin}

    def init_token(self, label: str) -> None:
        subprocess.run([util(), "--init-token", "--free", "--label", label,
                        "--so-pin", SO_PIN, "--pin", self.pin],
                       env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
                       check=True, capture_output=True)
        self.tokens.append(label)

    def token_dir(self, label: str) -> Path:
        """The directory SoftHSM keeps token ``label`` in (to remove it in a test)."""
        for d in self.tokendir.iterdir():
            info = d / "token.object"
            # The label as PKCS#11 keeps it: 32 bytes, padded with blanks.
            if info.exists() and label.encode().ljust(32) in info.read_bytes():
                return d
        raise AssertionError(f"no directory for token {label!r} in {self.tokendir}")

    def store_table(self, name: str, label: str = "signgate") -> str:
        """A ``[stores.NAME]`` table of config.toml for token ``label``."""
        return (f'[stores.{name}]\ntype = "pkcs11"\nmodule = "{self.module}"\n'
                f'token = "{label}"\npin_env = "{PIN_ENV}"\n')


def start_hsm_server(data_dir: Path, database_url: str | None, hsm: SoftHsm, *,
                     label: str = "signgate", store: str = "hsm", init_store: bool = True,
                     config: str = "") -> Server:
    """A real 'signgate serve' whose config.toml has ``[stores.STORE]`` on token
    ``label`` of ``hsm``, initialised with ``init --store STORE`` (unless ``init_store``
    is False: then the software vault stays the default store)."""
    data_dir.mkdir(parents=True, mode=0o700)
    (data_dir / "config.toml").write_text(hsm.store_table(store, label))
    return start_server(data_dir, database_url, config=config,
                        init_args=("--store", store) if init_store else (), env=hsm.env())


def make_softhsm(root: Path, labels: Sequence[str] = TOKENS) -> SoftHsm:
    """A fresh SoftHSM2 configuration under ``root`` with a token for each label."""
    hsm = SoftHsm(root, module_path())
    hsm.tokendir.mkdir(parents=True)
    hsm.conf.write_text(f"directories.tokendir = {hsm.tokendir}\n"
                        "objectstore.backend = file\nlog.level = ERROR\n")
    for label in labels:
        hsm.init_token(label)
    return hsm


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """The test run's SoftHSM2, its variables set in this process before any test loads
    the module (and restored afterwards)."""
    hsm = make_softhsm(tmp_path_factory.mktemp("softhsm"))
    saved = {k: os.environ.get(k) for k in hsm.env()}
    os.environ.update(hsm.env())
    try:
        yield hsm
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
