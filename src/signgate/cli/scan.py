"""signgate scan deny add | list | remove"""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table


@click.group("scan")
def scan() -> None:
    """Scanning before signing: the hash deny-list."""


@scan.group("deny")
def deny() -> None:
    """Artifacts that must never be signed, by SHA-256 (global admins; audited)."""


@deny.command("add")
@click.argument("sha256")
@click.option("--reason", required=True, help="Why (recorded, and shown in refusals).")
@client_options
@json_option
@handles_errors
def deny_add(sha256: str, reason: str, url: str, token_file: Path | None,
             as_json: bool) -> None:
    """Refuse to sign any artifact whose SHA-256 is SHA256."""
    with make_client(url, token_file) as c:
        entry = c.deny_add(sha256, reason)
    if as_json:
        emit_json(entry)
    else:
        click.echo(f"deny-listed {entry['sha256']}: {entry['reason']}")


@deny.command("list")
@client_options
@json_option
@handles_errors
def deny_list(url: str, token_file: Path | None, as_json: bool) -> None:
    """List the deny-list."""
    with make_client(url, token_file) as c:
        entries = c.deny_list()
    if as_json:
        emit_json(entries)
    else:
        table([(e["sha256"], e["reason"], e["created_by"], e["created_at"]) for e in entries],
              ["sha256", "reason", "added by", "added at"])


@deny.command("remove")
@click.argument("sha256")
@client_options
@json_option
@handles_errors
def deny_remove(sha256: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Take SHA256 off the deny-list."""
    with make_client(url, token_file) as c:
        c.deny_remove(sha256)
    if as_json:
        emit_json({"removed": sha256.lower()})
    else:
        click.echo(f"removed {sha256.lower()} from the deny-list")
