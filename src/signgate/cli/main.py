"""The 'signgate' command.

Command groups are imported when used, not all at start-up: a CI job runs ``signgate sign``
once per artifact, and the server-side groups (database, key store) cost it nothing then.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from signgate import __version__
from signgate.cli.usage import one_line

# command name -> "module:attribute"
COMMANDS = {
    "init": "signgate.cli.server:init",
    "serve": "signgate.cli.server:serve",
    "db": "signgate.cli.server:db",
    "project": "signgate.cli.projects:project",
    "key": "signgate.cli.keys:key",
    "identity": "signgate.cli.identities:identity",
    "whoami": "signgate.cli.identities:whoami",
    "grant": "signgate.cli.grants:grant",
    "oidc": "signgate.cli.oidc:oidc",
    "sign": "signgate.cli.sign:sign",
    "request": "signgate.cli.requests:request",
    "approve": "signgate.cli.requests:approve",
    "deny": "signgate.cli.requests:deny",
    "release": "signgate.cli.release:release",
    "verify": "signgate.cli.verify:verify",
    "scan": "signgate.cli.scan:scan",
    "audit": "signgate.cli.audit:audit",
    "report": "signgate.cli.report:report",
    "log": "signgate.cli.log:log",
    "ca": "signgate.cli.ca:ca",
    "witness": "signgate.cli.witness:witness",
    "demo": "signgate.cli.demo:demo",
}


# Each command's one-line summary (its help's first sentence), for the command list of
# 'signgate --help': importing every command module to list them (the server's with its
# database and web framework among them) cost seconds. tests/unit/test_cli_help.py checks
# that each matches the command's own help.
SUMMARIES = {
    "init": (
        "Create the data directory: config, database, master key (0600) and the bootstrap "
        "admin, whose token goes to DATA_DIR/admin.token (0600)."),
    "serve": "Run the API server (applies database migrations first).",
    "db": "Database maintenance.",
    "project": "Projects (product lines) own keys.",
    "key": "Signing keys: each belongs to one project, has versions, and never leaves signgate.",
    "identity": "People and CI services that authenticate with API tokens.",
    "whoami": "Show the identity the token belongs to, and its grants.",
    "grant": (
        "Who may do what: IDENTITY gets ROLE on SCOPE ('*', PROJECT or PROJECT/KEY); or, with "
        "--oidc, the CI jobs whose OIDC tokens have the given claims."),
    "oidc": (
        "CI identities from OIDC: the issuers whose tokens CI jobs exchange for short-lived "
        "signgate tokens (grants: 'signgate grant add --oidc ISSUER --claim NAME=VALUE ...')."),
    "sign": "Sign FILE with a key held by signgate.",
    "request": "Signing requests that wait for approvals.",
    "approve": "Approve a signing request (approver role; never your own request).",
    "deny": "Deny a signing request: it ends, whatever approvals it had.",
    "release": "Release windows: when an offline key may sign, how often, and for whom.",
    "verify": (
        "Verify a signature of FILE in any format: the signature itself, its certificate chain "
        "to the trust anchor (codeSigning), its RFC 3161 timestamp and revocation (CRLs)."),
    "scan": (
        "Scanning before signing: 'signgate scan FILE' asks signgate for a verdict on FILE "
        "without signing it (a pre-flight for CI); 'scan deny' manages the hash deny-list."),
    "audit": "The tamper-evident record of every decision.",
    "report": "Reports on the record: who signed what, when, with which key.",
    "log": (
        "The transparency log: every audit entry is a leaf of a Merkle tree whose signed "
        "checkpoints witnesses cosign, so that no one, the server's owner included, can rewrite"
        " the record unseen."),
    "ca": "signgate's own certificate authority.",
    "witness": (
        "Run a witness: a server, best on another machine, that cosigns a log's checkpoints "
        "(C2SP tlog-witness) only when they are consistent with what it cosigned before, so "
        "that a rewritten or forked log history cannot be cosigned."),
    "demo": "A demonstration data directory for the web console.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, with the summaries above instead of imported commands."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            summary = SUMMARIES.get(name)
            command = (click.Command(name, help=summary) if summary is not None
                       else self.get_command(ctx, name))
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="signgate")
def cli() -> None:
    """signgate: a self-hosted code-signing service.

    Server: 'signgate init' then 'signgate serve'. Client commands talk to $SIGNGATE_URL
    (default http://127.0.0.1:8080) with the token in $SIGNGATE_TOKEN or --token-file.
    """


def main() -> None:
    try:
        result = cli.main(prog_name="signgate", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # A group run without a command: its help, as before (not an error line).
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(one_line(exc), err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("signgate: aborted", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # The reader went away ('signgate audit log | head'): quiet, as click's own main
        # is; stdout goes to /dev/null so that the final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    # Not standalone, click returns the code of an explicit exit (--help, --version); no
    # command returns a value of its own.
    sys.exit(result if isinstance(result, int) else 0)
