"""signgate audit log | verify"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import Progress, emit_json, handles_errors, json_option, table
from signgate.cli.usage import Choice
from signgate.clock import parse_time
from signgate.errors import VerificationFailed

CSV_FIELDS = ["seq", "time", "actor", "action", "outcome", "subject", "project", "key",
              "details", "prev_hash", "entry_hash"]


@click.group("audit")
def audit() -> None:
    """The tamper-evident record of every decision."""


@audit.command("log")
@click.option("--identity", help="Only entries by this identity.")
@click.option("--key", "key_ref", metavar="PROJECT/NAME", help="Only entries about this key.")
@click.option("--project", help="Only entries about this project.")
@click.option("--action", help="Only this action, e.g. signature.create or key.rotate.")
@click.option("--outcome", type=Choice(["allowed", "refused"]),
              help="Only the entries allowed, or only those refused.")
@click.option("--since", metavar="TIME", help="From this time on (ISO 8601).")
@click.option("--until", metavar="TIME", help="Before this time (ISO 8601).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@client_options
@json_option
@handles_errors
def log(identity: str | None, key_ref: str | None, project: str | None, action: str | None,
        outcome: str | None, since: str | None, until: str | None, as_csv: bool, url: str,
        token_file: Path | None, as_json: bool) -> None:
    """List audit entries, oldest first."""
    params: dict[str, Any] = {
        "identity": identity, "key": key_ref, "project": project, "action": action,
        "outcome": outcome,
        "since": parse_time(since).isoformat() if since else None,
        "until": parse_time(until).isoformat() if until else None,
    }
    entries: list[dict[str, Any]] = []
    after = 0
    with make_client(url, token_file) as c:
        while True:
            page = c.audit_page(after=after, limit=5000, **params)
            entries.extend(page["entries"])
            if page["next_after"] is None:
                break
            after = page["next_after"]
    if as_json:
        emit_json(entries)
    elif as_csv:
        w = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
        w.writeheader()
        for e in entries:
            w.writerow({**e, "details": json.dumps(e["details"], sort_keys=True)})
    else:
        table([(e["seq"], e["time"], e["actor"], e["action"], e["outcome"], e["subject"],
                e["key"] or "", _summary(e)) for e in entries],
              ["seq", "time", "actor", "action", "outcome", "subject", "key", "details"])


def _summary(e: dict[str, Any]) -> str:
    """The gist of an entry's details for the table (--json and --csv have all of them)."""
    d = e["details"]
    if e["outcome"] == "refused" or (e["action"] == "key.rotate" and "reason" in d):
        return str(d.get("reason", ""))
    if "key_version" in d:
        digest = str(d.get("digest", ""))[:16]
        via = d.get("oidc")
        if isinstance(via, dict):  # a CI job's exchanged OIDC token: which run signed
            claims = via.get("claims", {})
            run = " ".join(f"{k}={claims[k]}" for k in ("repository", "project_path",
                                                        "workflow", "run_id", "pipeline_id")
                           if k in claims)
            return (f"v{d['key_version']} {d.get('digest_algorithm', '')}:{digest} "
                    f"via {via.get('issuer')} {run}").rstrip()
        return f"v{d['key_version']} {d.get('digest_algorithm', '')}:{digest}"
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()) if v is not None)[:80]


@audit.command("verify")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr from the start / never (default: once a check has "
                   "taken two seconds).")
@client_options
@json_option
@handles_errors
def verify(url: str, token_file: Path | None, as_json: bool, progress: bool | None) -> None:
    """Recompute the hash chain; exit 8 and name the first bad entry if it was tampered with.

    The server streams how far it is, so a long check never times out; progress goes to
    stderr once the check has taken two seconds (--progress: from the start)."""
    with make_client(url, token_file) as c:
        shown = None if progress is False else Progress(
            "audit verify", "entries checked", 0.0 if progress else 2.0)
        r = c.audit_verify(shown)
    if as_json:
        emit_json(r)
        if not r["ok"]:
            raise SystemExit(8)
        return
    if not r["ok"]:
        raise VerificationFailed(f"audit log BROKEN at entry {r['first_bad_seq']}: {r['problem']}")
    click.echo(f"audit log intact: {r['entries']} entries, head {r['head_seq']} {r['head_hash']}")
