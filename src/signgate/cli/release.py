"""signgate release open | close | list: release windows of offline keys ('signgate key
policy P/N --offline')."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table
from signgate.clock import parse_time


@click.group("release")
def release() -> None:
    """Release windows: when an offline key may sign, how often, and for whom."""


def _count(w: Mapping[str, Any]) -> str:
    return f"{w['signatures']}/{w['max_signatures']}" if w.get("max_signatures") \
        else str(w["signatures"])


@release.command("open")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--until", "until", required=True, metavar="TIME",
              help="When the window ends (ISO 8601; UTC if no zone is given).")
@click.option("--max-signatures", type=click.IntRange(1, 2**31 - 1), metavar="N",
              help="At most N signatures in this window.")
@click.option("--signer", "signers", multiple=True, metavar="IDENTITY",
              help="Only this identity signs in it (repeat for several; default: any "
                   "signer of the key).")
@click.option("--label", metavar="L", help="A name for the release (e.g. v2.4.0).")
@client_options
@json_option
@handles_errors
def open_(ref: str, until: str, max_signatures: int | None, signers: tuple[str, ...],
          label: str | None, url: str, token_file: Path | None, as_json: bool) -> None:
    """Open a release window for the offline key PROJECT/NAME (admins; recorded)."""
    when = parse_time(until).isoformat()
    with make_client(url, token_file) as c:
        w = c.open_window(ref, when, max_signatures, list(signers), label)
    if as_json:
        emit_json(w)
        return
    limits = [f"until {w['until']}"]
    if w.get("max_signatures"):
        limits.append(f"at most {w['max_signatures']} signatures")
    if w.get("signers"):
        limits.append("for " + ", ".join(w["signers"]))
    click.echo(f"opened release window {w['id']} for {w['key']}"
               + (f" ({w['label']})" if w.get("label") else "") + ": " + ", ".join(limits))
    if w["state"] == "pending":
        click.echo(f"it opens after {w['required_approvals']} approvals: signgate release "
                   f"approve {w['id']}")


@release.command("approve")
@click.argument("window_id", metavar="ID")
@click.option("--comment", help="Recorded with the approval.")
@client_options
@json_option
@handles_errors
def approve(window_id: str, comment: str | None, url: str, token_file: Path | None,
            as_json: bool) -> None:
    """Approve a release window that waits for approvals (approvers of its key, never its
    opener); the last approval needed opens it."""
    with make_client(url, token_file) as c:
        w = c.approve_window(window_id, comment)
    if as_json:
        emit_json(w)
    else:
        click.echo(f"release window {w['id']} of {w['key']}: {len(w['approvals'])} of "
                   f"{w['required_approvals']} approvals, {w['state']}")


@release.command("close")
@click.argument("window_id", metavar="ID")
@client_options
@json_option
@handles_errors
def close(window_id: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Close a release window now (admins of its key; recorded)."""
    with make_client(url, token_file) as c:
        w = c.close_window(window_id)
    if as_json:
        emit_json(w)
    else:
        click.echo(f"closed release window {w['id']} of {w['key']} after {w['signatures']} "
                   "signatures")


@release.command("list")
@click.argument("ref", metavar="[PROJECT/NAME]", required=False)
@click.option("--open", "open_only", is_flag=True, help="Only windows open now.")
@client_options
@json_option
@handles_errors
def list_(ref: str | None, open_only: bool, url: str, token_file: Path | None,
          as_json: bool) -> None:
    """Release windows (of PROJECT/NAME, or of every key you may see), newest first."""
    with make_client(url, token_file) as c:
        items = c.list_windows(ref, open_only)
    if as_json:
        emit_json(items)
    else:
        table([(w["id"], w["key"], w.get("label") or "", w["state"], w["until"], _count(w),
                ", ".join(w["signers"]) if w.get("signers") else "any signer")
               for w in items],
              ["window", "key", "label", "state", "until", "signatures", "signers"])
