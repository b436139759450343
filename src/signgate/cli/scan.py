"""signgate scan FILE | scan deny add | list | remove"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.files import progress_bar
from signgate.cli.output import emit_json, handles_errors, json_option, table
from signgate.errors import Denied


class _FileOrCommand(click.Group):
    """``signgate scan FILE`` scans FILE; ``signgate scan deny ...`` is a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["file", *args]
        return super().parse_args(ctx, args)


@click.group("scan", cls=_FileOrCommand)
def scan() -> None:
    """Scanning before signing: 'signgate scan FILE' asks signgate for a verdict on FILE
    without signing it (a pre-flight for CI); 'scan deny' manages the hash deny-list."""


@scan.command("file", hidden=True)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", "artifact_name", help="Artifact name to record (default: file name).")
@click.option("--no-progress", is_flag=True, help="No progress bar while uploading.")
@client_options
@json_option
@handles_errors
def scan_file(path: Path, artifact_name: str | None, no_progress: bool, url: str,
              token_file: Path | None, as_json: bool) -> None:
    """Upload PATH to be scanned by every configured scanner and the deny-list. Exit code 0
    when clean, 4 when something was found, 9 when a scanner was unavailable."""
    with make_client(url, token_file) as c, \
            progress_bar(path, "uploading", not no_progress and not as_json) as progress:
        report: dict[str, Any] = c.scan_upload(path, artifact_name or path.name, progress)
    if as_json:
        emit_json(report)
        if not report["clean"]:
            raise SystemExit(4)
        return
    engines = ", ".join(f"{e['engine']} {e['engine_version']}" for e in report["engines"])
    if not report["clean"]:
        raise Denied(f"{path.name}: FOUND {'; '.join(report['findings'])} ({engines})")
    click.echo(f"{path.name}: clean (sha256 {report['sha256']}; {engines})")


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
