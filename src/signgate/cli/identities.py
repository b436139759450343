"""signgate identity create | list | disable | enable | rotate-token | whoami"""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table
from signgate.cli.usage import Choice


@click.group("identity")
def identity() -> None:
    """People and CI services that authenticate with API tokens."""


@identity.command("create")
@click.argument("name")
@click.option("--kind", type=Choice(["service", "user"]), default="service",
              show_default=True)
@client_options
@json_option
@handles_errors
def create(name: str, kind: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Create an identity and print its token (shown only this once)."""
    with make_client(url, token_file) as c:
        r = c.create_identity(name, kind)
    if as_json:
        emit_json(r)
    else:
        click.echo(r["token"])
        click.echo(f"created {kind} identity {name}; the token above is shown only once",
                   err=True)


@identity.command("list")
@client_options
@json_option
@handles_errors
def list_(url: str, token_file: Path | None, as_json: bool) -> None:
    """List identities and their grants."""
    with make_client(url, token_file) as c:
        items = c.list_identities()
    if as_json:
        emit_json(items)
    else:
        table([(i["name"], i["kind"], "yes" if i["enabled"] else "no", " ".join(i["grants"]))
               for i in items], ["name", "kind", "enabled", "grants"])


def _action(name: str, help_text: str) -> click.Command:
    @click.argument("target", metavar="NAME")
    @client_options
    @json_option
    @handles_errors
    def command(target: str, url: str, token_file: Path | None, as_json: bool) -> None:
        with make_client(url, token_file) as c:
            r = c.identity_action(target, name)
        if as_json:
            emit_json(r)
        elif name == "rotate-token":
            click.echo(r["token"])
            click.echo(f"new token for {target}; the old one no longer works", err=True)
        else:
            click.echo(f"identity {r['name']} is now {'enabled' if r['enabled'] else 'disabled'}")

    return click.command(name, help=help_text)(command)


identity.add_command(_action("disable", "Stop an identity from doing anything."))
identity.add_command(_action("enable", "Let a disabled identity work again."))
identity.add_command(_action("rotate-token", "Issue a new token; the old one stops working."))


@click.command("whoami")
@client_options
@json_option
@handles_errors
def whoami(url: str, token_file: Path | None, as_json: bool) -> None:
    """Show the identity the token belongs to, and its grants."""
    with make_client(url, token_file) as c:
        r = c.whoami()
    if as_json:
        emit_json(r)
    else:
        click.echo(f"{r['name']} ({r['kind']}): {' '.join(r['grants']) or 'no grants'}")
