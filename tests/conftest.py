"""Shared fixtures: real servers on SQLite and PostgreSQL, real databases for service tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support import gpg, postgres
from tests.support import softhsm as softhsm_support
from tests.support.clamd import clamd as clamd  # the session clamd fixture
from tests.support.server import Server, start_server
from tests.support.softhsm import softhsm as softhsm  # the session SoftHSM2 tokens

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", autouse=True)
def _no_gpg_daemons_left() -> Iterator[None]:
    """The suite stops every GnuPG daemon it started (gpg leaves one per home behind)."""
    yield
    left = gpg.daemons_left()
    assert not left, f"GnuPG daemons left running by the tests: {left}"


@pytest.fixture
def new_gpg_home() -> Iterator[Callable[[], Path]]:
    """Makes GnuPG homes; their daemons are stopped when the test ends."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(gpg.gpg_home())
_counter = itertools.count()


def _require_postgres() -> None:
    if not postgres.available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/test.sh starts it)")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        _require_postgres()
    return str(request.param)


def unique(prefix: str) -> str:
    """A name no other test uses (servers are shared within a module)."""
    return f"{prefix}-{next(_counter)}"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server shared by the tests of one module (tests use unique names)."""
    yield from _server(backend, tmp_path_factory)


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A SQLite server shared by one module, for format interop tests: what they prove
    does not depend on the database (the signing path itself runs on both backends)."""
    yield from _server("sqlite", tmp_path_factory)


@pytest.fixture(scope="module")
def hsm_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A SQLite server shared by one module whose keys all live in a SoftHSM2 token of its
    own (``init --store hsm``: the CAs, the TSA, the log key and every new key): format
    and PKI tests run on it as on ``sqlite_server`` to prove HSM keys work everywhere."""
    hsm = softhsm_support.make_softhsm(tmp_path_factory.mktemp("softhsm"), ["signgate"])
    srv = softhsm_support.start_hsm_server(tmp_path_factory.mktemp("signgate") / "data",
                                           None, hsm)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of the test's own, for tests that damage its state (audit tampering)."""
    yield from _server(backend, tmp_path_factory)


def _server(backend: str, factory: pytest.TempPathFactory, config: str = "") -> Iterator[Server]:
    data_dir = factory.mktemp("signgate") / "data"
    if backend == "postgres":
        with postgres.temporary_database() as url:
            srv = start_server(data_dir, url, config=config)
            try:
                yield srv
            finally:
                srv.stop()
    else:
        srv = start_server(data_dir, None, config=config)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (SQLite file or fresh PostgreSQL database) for service-level tests."""
    if request.param == "postgres":
        _require_postgres()
        with postgres.temporary_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'signgate.db'}"
