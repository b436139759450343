"""signgate request list | show, signgate approve | deny: signing requests that wait for
quorum approvals (keys with 'signgate key policy P/N --approvals M')."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table


def _approved(r: Mapping[str, Any]) -> int:
    return sum(1 for a in r.get("approvals", []) if a.get("decision") == "approve")


def _describe(r: Mapping[str, Any]) -> None:
    click.echo(f"request    {r['request_id']}")
    click.echo(f"state      {r['state']}" + (f" ({r['reason']})" if r.get("reason") else ""))
    click.echo(f"key        {r['key']}")
    click.echo(f"artifact   {r['artifact_name']}")
    click.echo(f"digest     {r['digest_algorithm']}:{r['digest']}")
    click.echo(f"format     {r['format']}")
    click.echo(f"requester  {r['requester']}")
    click.echo(f"approvals  {_approved(r)} of {r['required']} (approver role on "
               f"{r['approver_scope']})")
    if r.get("builders_required"):
        click.echo(f"release    {r['release']}")
        click.echo(f"builders   {len(r.get('builders', []))} of {r['builders_required']} "
                   "agree")
    click.echo(f"created    {r['created_at']}")
    click.echo(f"expires    {r['expires_at']}")
    if r.get("signature_id"):
        click.echo(f"signature  {r['signature_id']}")
    if r.get("builders"):
        table([(b["identity"], b["at"], b["audit_seq"]) for b in r["builders"]],
              ["builder", "at", "audit seq"])
    if r.get("approvals"):
        table([(a["identity"], a["decision"], a["at"], a["audit_seq"], a.get("comment") or "")
               for a in r["approvals"]], ["identity", "decision", "at", "audit seq", "comment"])


@click.group("request")
def request() -> None:
    """Signing requests that wait for approvals."""


@request.command("list")
@click.option("--pending", is_flag=True, help="Only requests still awaiting approvals.")
@client_options
@json_option
@handles_errors
def list_(pending: bool, url: str, token_file: Path | None, as_json: bool) -> None:
    """Requests you asked for, may approve, administer or audit (newest first)."""
    with make_client(url, token_file) as c:
        items = c.list_requests(pending)
    if as_json:
        emit_json(items)
    else:
        table([(r["request_id"], r["state"], r["key"], r["artifact_name"], r["requester"],
                f"{_approved(r)}/{r['required']}", r["expires_at"]) for r in items],
              ["request", "state", "key", "artifact", "requester", "approvals", "expires"])


@request.command("show")
@click.argument("request_id", metavar="ID")
@client_options
@json_option
@handles_errors
def show(request_id: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """A request: what is to be signed, by whom, its approvals and state."""
    with make_client(url, token_file) as c:
        r = c.get_request(request_id)
    if as_json:
        emit_json(r)
    else:
        _describe(r)


@click.command("approve")
@click.argument("request_id", metavar="ID")
@click.option("--comment", help="Recorded with the approval (and listed in the receipt).")
@client_options
@json_option
@handles_errors
def approve(request_id: str, comment: str | None, url: str, token_file: Path | None,
            as_json: bool) -> None:
    """Approve a signing request (approver role; never your own request). The last
    approval the key's policy needs has it signed."""
    with make_client(url, token_file) as c:
        r = c.approve(request_id, comment)
    if as_json:
        emit_json(r)
    elif r["state"] == "signed":
        click.echo(f"approved {r['request_id']} ({_approved(r)} of {r['required']}): signed "
                   f"{r['artifact_name']} with {r['key']} (signature {r['signature_id']})")
    else:
        click.echo(f"approved {r['request_id']}: {_approved(r)} of {r['required']} approvals")


@click.command("deny")
@click.argument("request_id", metavar="ID")
@click.option("--reason", required=True, help="Why: recorded, and told to the requester.")
@client_options
@json_option
@handles_errors
def deny(request_id: str, reason: str, url: str, token_file: Path | None,
         as_json: bool) -> None:
    """Deny a signing request: it ends, whatever approvals it had."""
    with make_client(url, token_file) as c:
        r = c.deny(request_id, reason)
    if as_json:
        emit_json(r)
    else:
        click.echo(f"denied {r['request_id']}: {r['reason']}")
