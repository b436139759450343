"""'signgate --help' lists the commands from cli/main.py's SUMMARIES without importing
them: each summary must say what the command's own help says, at every width."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from signgate.cli.main import COMMANDS, SUMMARIES, cli


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_summary_is_the_commands_own(name: str) -> None:
    real = cli.get_command(click.Context(cli), name)
    assert real is not None
    stub = click.Command(name, help=SUMMARIES[name])
    for limit in (30, 45, 80, 200):
        assert stub.get_short_help_str(limit) == real.get_short_help_str(limit)


def test_help_lists_every_command_without_importing_them() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert f"\n  {name} " in out
    code = ("import sys; from signgate.cli.main import main; sys.argv=['signgate','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('signgate.cli.server',"
            "'signgate.cli.keys','fastapi','sqlalchemy','httpx'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_sign_command_imports_no_format_machinery_it_may_not_need() -> None:
    """`signgate sign` is on every CI job's path (issue 14, item 5): loading it pulls in
    no ASN.1, x509 or httpx code; a format that needs them imports them when used."""
    code = ("import sys, signgate.cli.sign\n"
            "print(sorted(m for m in sys.modules if m.startswith(('asn1crypto', 'httpx',"
            "'cryptography.x509', 'signgate.formats.authenticode', 'signgate.pki'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
