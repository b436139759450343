"""signgate project create | list"""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table


@click.group("project")
def project() -> None:
    """Projects (product lines) own keys."""


@project.command("create")
@click.argument("name")
@client_options
@json_option
@handles_errors
def create(name: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Create project NAME ([a-z0-9][a-z0-9-]*)."""
    with make_client(url, token_file) as c:
        p = c.create_project(name)
    if as_json:
        emit_json(p)
    else:
        click.echo(f"created project {p['name']}")


@project.command("list")
@client_options
@json_option
@handles_errors
def list_(url: str, token_file: Path | None, as_json: bool) -> None:
    """List projects."""
    with make_client(url, token_file) as c:
        items = c.list_projects()
    if as_json:
        emit_json(items)
    else:
        table([(p["name"], p["keys"], p["created_by"], p["created_at"]) for p in items],
              ["name", "keys", "created by", "created at"])
