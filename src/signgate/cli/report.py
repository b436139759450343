"""signgate report signatures"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import handles_errors, json_option, table
from signgate.client.client import SigngateClient
from signgate.clock import parse_time

FIELDS = ["signed_at", "key", "key_version", "identity", "artifact_name", "digest_algorithm",
          "digest", "format", "timestamp_time", "scan", "log_index", "audit_seq",
          "signature_id", "oidc", "outcome", "reason"]


@click.group("report")
def report() -> None:
    """Reports on the record: who signed what, when, with which key."""


def _pages(c: SigngateClient, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        page = c.signature_page(after=after, limit=5000, **params)
        yield from page["signatures"]
        if page["next_after"] is None:
            return
        after = page["next_after"]


@report.command("signatures")
@click.option("--project", help="Only signatures made with this project's keys.")
@click.option("--key", "key_ref", metavar="PROJECT/NAME", help="Only this key's signatures.")
@click.option("--identity", help="Only signatures this identity asked for.")
@click.option("--since", metavar="TIME", help="Signed at or after this time (ISO 8601).")
@click.option("--until", metavar="TIME", help="Signed before this time (ISO 8601).")
@click.option("--signature-format", "signature_format", metavar="FORMAT",
              help="Only signatures in this format: raw, cms, authenticode, jar, openpgp, "
                   "dsse, sigstore or sshsig.")
@click.option("--outcome", type=click.Choice(["allowed", "refused"]), default="allowed",
              show_default=True,
              help="allowed: the signatures made; refused: the refused signings, each with "
                   "its reason (no signature, digest or format).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True,
              help="table: rows then totals; csv: one row per signature (header first); "
                   "json: {signatures, totals}.")
@client_options
@json_option
@handles_errors
def signatures(project: str | None, key_ref: str | None, identity: str | None,
               since: str | None, until: str | None, signature_format: str | None,
               outcome: str, fmt: str, url: str,
               token_file: Path | None, as_json: bool) -> None:
    """One row per signature (time, key and version, identity, artifact, digest, format,
    timestamp, scan verdict, log index), oldest first, then totals per key and identity.

    --signature-format keeps the signatures of one format; --outcome refused lists the
    refused signings instead (who asked, for what, and the reason).

    Scoped like 'audit log': an auditor of a project or key sees only its signatures.
    Rows are streamed page by page, so a report over millions of signatures runs in
    constant memory (csv, json)."""
    params: dict[str, Any] = {
        "project": project, "key": key_ref, "identity": identity,
        "since": parse_time(since).isoformat() if since else None,
        "until": parse_time(until).isoformat() if until else None,
        "format": signature_format, "outcome": outcome,
    }
    fmt = "json" if as_json else fmt
    with make_client(url, token_file) as c:
        totals = c.signature_totals(**params)  # before the rows: fails fast when refused
        if fmt == "csv":
            w = csv.DictWriter(sys.stdout, fieldnames=FIELDS, lineterminator="\n",
                               extrasaction="ignore")
            w.writeheader()
            for row in _pages(c, params):
                w.writerow(row)
        elif fmt == "json":
            out = sys.stdout
            out.write('{"signatures": [')
            for n, row in enumerate(_pages(c, params)):
                out.write((",\n  " if n else "\n  ") + json.dumps(row, sort_keys=True))
            out.write('\n],\n"totals": ' + json.dumps(totals, sort_keys=True, indent=2) + "}\n")
        elif outcome == "refused":
            refusals = [(r["signed_at"], r["key"], r["identity"], r["artifact_name"],
                         r["reason"], r["log_index"]) for r in _pages(c, params)]
            table(refusals, ["refused at", "key", "identity", "artifact", "reason", "log index"])
            _totals(totals, "refused signing")
        else:
            rows = [(r["signed_at"], f"{r['key']} v{r['key_version']}", r["identity"],
                     r["artifact_name"], f"{r['digest_algorithm']}:{r['digest'][:16]}",
                     r["format"], r["timestamp_time"] or "", r["scan"] or "", r["log_index"],
                     r.get("oidc") or "")
                    for r in _pages(c, params)]
            table(rows, ["signed at", "key", "identity", "artifact", "digest", "format",
                         "timestamp", "scan", "log index", "oidc (CI job)"])
            _totals(totals)


def _totals(totals: dict[str, Any], noun: str = "signature") -> None:
    n = totals["signatures"]
    click.echo(f"\n{n} {noun}{'' if n == 1 else 's'}")
    for title, group in (("key", totals["by_key"]), ("identity", totals["by_identity"])):
        click.echo("")
        table([(t["name"], t["signatures"], t["first"], t["last"]) for t in group],
              [title, "signatures", "first", "last"])
