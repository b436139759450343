"""signgate grant add | remove | list"""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table
from signgate.cli.usage import Choice

ROLES = Choice(["admin", "signer", "approver", "auditor"])


@click.group("grant")
def grant() -> None:
    """Who may do what: IDENTITY gets ROLE on SCOPE ('*', PROJECT or PROJECT/KEY)."""


@grant.command("add")
@click.argument("identity")
@click.argument("role", type=ROLES)
@click.argument("scope")
@client_options
@json_option
@handles_errors
def add(identity: str, role: str, scope: str, url: str, token_file: Path | None,
        as_json: bool) -> None:
    """Give IDENTITY the ROLE on SCOPE."""
    with make_client(url, token_file) as c:
        g = c.add_grant(identity, role, scope)
    if as_json:
        emit_json(g)
    else:
        click.echo(f"granted {g['role']} on {g['scope']} to {g['identity']}")


@grant.command("remove")
@click.argument("identity")
@click.argument("role", type=ROLES)
@click.argument("scope")
@client_options
@json_option
@handles_errors
def remove(identity: str, role: str, scope: str, url: str, token_file: Path | None,
           as_json: bool) -> None:
    """Take the ROLE on SCOPE away from IDENTITY."""
    with make_client(url, token_file) as c:
        g = c.remove_grant(identity, role, scope)
    if as_json:
        emit_json(g)
    else:
        click.echo(f"removed {g['role']} on {g['scope']} from {g['identity']}")


@grant.command("list")
@click.option("--identity", help="Only this identity's grants.")
@client_options
@json_option
@handles_errors
def list_(identity: str | None, url: str, token_file: Path | None, as_json: bool) -> None:
    """List grants you may see."""
    with make_client(url, token_file) as c:
        items = c.list_grants(identity)
    if as_json:
        emit_json(items)
    else:
        table([(g["identity"], g["role"], g["scope"], g["created_at"]) for g in items],
              ["identity", "role", "scope", "granted at"])
