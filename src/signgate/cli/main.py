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
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

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
