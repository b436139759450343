"""signgate oidc issuer add | list | remove"""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table


@click.group("oidc")
def oidc() -> None:
    """CI identities from OIDC: the issuers whose tokens CI jobs exchange for short-lived
    signgate tokens (grants: 'signgate grant add --oidc ISSUER --claim NAME=VALUE ...')."""


@oidc.group("issuer")
def issuer() -> None:
    """The OIDC issuers signgate trusts (global admins)."""


@issuer.command("add")
@click.argument("name")
@click.option("--issuer", "issuer_url", required=True, metavar="URL",
              help="The issuer, exactly as its tokens' iss claim names it, e.g. "
                   "https://token.actions.githubusercontent.com")
@click.option("--audience", required=True, metavar="AUD",
              help="The audience its tokens must name (aud), exactly: one for signgate.")
@click.option("--jwks-url", metavar="URL",
              help="Where its signing keys are (default: the jwks_uri of its "
                   "/.well-known/openid-configuration).")
@client_options
@json_option
@handles_errors
def add(name: str, issuer_url: str, audience: str, jwks_url: str | None, url: str,
        token_file: Path | None, as_json: bool) -> None:
    """Trust the tokens of an OIDC issuer, as NAME (its exchanged tokens act as identity
    oidc-NAME)."""
    with make_client(url, token_file) as c:
        i = c.add_oidc_issuer(name, issuer_url, audience, jwks_url)
    if as_json:
        emit_json(i)
    else:
        click.echo(f"added OIDC issuer {i['name']} ({i['issuer']}, audience {i['audience']}, "
                   f"keys from {i['jwks_url']}); its tokens act as {i['identity']}")


@issuer.command("list")
@client_options
@json_option
@handles_errors
def list_(url: str, token_file: Path | None, as_json: bool) -> None:
    """List the OIDC issuers."""
    with make_client(url, token_file) as c:
        items = c.list_oidc_issuers()
    if as_json:
        emit_json(items)
    else:
        table([(i["name"], i["issuer"], i["audience"], i["jwks_url"], i["identity"])
               for i in items], ["name", "issuer", "audience", "jwks url", "identity"])


@issuer.command("remove")
@click.argument("name")
@client_options
@json_option
@handles_errors
def remove(name: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Stop trusting an issuer: its grants and unexpired tokens go at once."""
    with make_client(url, token_file) as c:
        i = c.remove_oidc_issuer(name)
    if as_json:
        emit_json(i)
    else:
        click.echo(f"removed OIDC issuer {i['name']} ({i['issuer']})")
