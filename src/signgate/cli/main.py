"""The 'signgate' command."""

from __future__ import annotations

import click

from signgate import __version__
from signgate.cli.audit import audit
from signgate.cli.ca import ca
from signgate.cli.grants import grant
from signgate.cli.identities import identity, whoami
from signgate.cli.keys import key
from signgate.cli.projects import project
from signgate.cli.scan import scan
from signgate.cli.server import db, init, serve
from signgate.cli.sign import sign, verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="signgate")
def cli() -> None:
    """signgate: a self-hosted code-signing service.

    Server: 'signgate init' then 'signgate serve'. Client commands talk to $SIGNGATE_URL
    (default http://127.0.0.1:8080) with the token in $SIGNGATE_TOKEN or --token-file.
    """


for command in (init, serve, db, project, key, identity, whoami, grant, sign, verify, scan,
                audit, ca):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="signgate")
