"""The import-linter contracts of pyproject.toml (the layering of docs/design.md) hold for
the code, and they fail on the imports they exist to refuse: one that points up a layer,
one between sibling use cases, one that closes a cycle, one that reaches the database from
outside service/.

Each bad case copies src/ aside, adds one import to one module and runs ``lint-imports``
on the copy (the copy comes first on the import path, so the graph is the copy's)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src", tmp_path / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tmp_path


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / "src" / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_code_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    # up a layer: a pure package reaching for the service layer
    ("signgate.pki.certs", "from signgate.service import keys  # noqa",
     "packages point one way"),
    # a session helper reaching up for a use case
    ("signgate.service.records.keys", "from signgate.service import projects  # noqa",
     "use cases build on session helpers"),
    # sibling use cases
    ("signgate.service.grants", "from signgate.service import keys  # noqa",
     "use cases build on session helpers"),
    # a cycle between two session helpers (same layer, so only the cycle check sees it)
    ("signgate.service.records.authorities",
     "from signgate.service.records import keys  # noqa", "no import cycle"),
    # a use case reaching for the web framework (scanning once did, for its thread pool)
    ("signgate.service.scanning", "import starlette.concurrency  # noqa",
     "imports a web or command-line framework"),
    # the database from an adapter
    ("signgate.cli.server", "from signgate.store import db  # noqa",
     "the database is reached only through service/"),
])
def test_a_bad_import_breaks_a_contract(tree: Path, module: str, line: str,
                                        broken: str) -> None:
    _add_import(tree, module, line)
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    assert any(broken in row and "BROKEN" in row for row in result.stdout.splitlines()), \
        result.stdout
