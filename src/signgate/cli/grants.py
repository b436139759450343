"""signgate grant add | remove | list"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import emit_json, handles_errors, json_option, table
from signgate.cli.usage import Choice
from signgate.errors import InvalidInput

ROLES = Choice(["admin", "signer", "approver", "auditor"])
ROLE_ARGUMENT = click.Argument(["role"], type=ROLES)

_OIDC_OPTIONS = (
    click.option("--oidc", "issuer", metavar="ISSUER",
                 help="Grant to the tokens of this OIDC issuer whose claims match every "
                      "--claim (then no IDENTITY)."),
    click.option("--claim", "claims", multiple=True, metavar="NAME=VALUE[,VALUE]",
                 help="With --oidc: a claim the token must have with exactly this value "
                      "(or one of these; repeat for more claims)."),
)


def _oidc_options(fn: Any) -> Any:
    for option in reversed(_OIDC_OPTIONS):
        fn = option(fn)
    return fn


def _parse(args: tuple[str, ...], issuer: str | None,
           claims: tuple[str, ...]) -> tuple[str | None, str, str]:
    """(identity or None, role, scope) from IDENTITY ROLE SCOPE, or ROLE SCOPE with --oidc."""
    if issuer is not None:
        if len(args) != 2:
            raise click.UsageError("with --oidc, give ROLE SCOPE (no IDENTITY)")
        identity, (role, scope) = None, args
    else:
        if len(args) != 3:
            raise click.UsageError("give IDENTITY ROLE SCOPE (or --oidc ISSUER --claim "
                                   "NAME=VALUE ... ROLE SCOPE)")
        if claims:
            raise InvalidInput("--claim binds OIDC grants only: add --oidc ISSUER")
        identity, role, scope = args
    # Checked as the ROLE argument would be, with the same message.
    ROLE_ARGUMENT.type.convert(role, ROLE_ARGUMENT, click.get_current_context())
    return identity, role, scope


def _who(g: dict[str, Any]) -> str:
    if g.get("oidc_issuer"):
        claims = " ".join(f"{k}={','.join(v)}" for k, v in sorted(g["claims"].items()))
        return f"oidc:{g['oidc_issuer']} [{claims}]"
    return str(g["identity"])


@click.group("grant")
def grant() -> None:
    """Who may do what: IDENTITY gets ROLE on SCOPE ('*', PROJECT or PROJECT/KEY); or, with
    --oidc, the CI jobs whose OIDC tokens have the given claims."""


@grant.command("add")
@click.argument("args", nargs=-1, metavar="[IDENTITY] ROLE SCOPE")
@_oidc_options
@client_options
@json_option
@handles_errors
def add(args: tuple[str, ...], issuer: str | None, claims: tuple[str, ...], url: str,
        token_file: Path | None, as_json: bool) -> None:
    """Give IDENTITY the ROLE on SCOPE; or, with --oidc ISSUER --claim NAME=VALUE ..., give
    it to every token of ISSUER whose claims all match (exactly; a list is any of)."""
    identity, role, scope = _parse(args, issuer, claims)
    with make_client(url, token_file) as c:
        if issuer is not None:
            g = c.add_oidc_grant(issuer, list(claims), role, scope)
        else:
            assert identity is not None
            g = c.add_grant(identity, role, scope)
    if as_json:
        emit_json(g)
    else:
        click.echo(f"granted {g['role']} on {g['scope']} to {_who(g)}")


@grant.command("remove")
@click.argument("args", nargs=-1, metavar="[IDENTITY] ROLE SCOPE")
@_oidc_options
@client_options
@json_option
@handles_errors
def remove(args: tuple[str, ...], issuer: str | None, claims: tuple[str, ...], url: str,
           token_file: Path | None, as_json: bool) -> None:
    """Take the ROLE on SCOPE away from IDENTITY (or from an OIDC grant: the same --oidc
    and --claim arguments it was added with)."""
    identity, role, scope = _parse(args, issuer, claims)
    with make_client(url, token_file) as c:
        if issuer is not None:
            g = c.remove_oidc_grant(issuer, list(claims), role, scope)
        else:
            assert identity is not None
            g = c.remove_grant(identity, role, scope)
    if as_json:
        emit_json(g)
    else:
        click.echo(f"removed {g['role']} on {g['scope']} from {_who(g)}")


@grant.command("list")
@click.option("--identity", help="Only this identity's grants (oidc-NAME: an issuer's).")
@client_options
@json_option
@handles_errors
def list_(identity: str | None, url: str, token_file: Path | None, as_json: bool) -> None:
    """List grants you may see, OIDC grants with their claims."""
    with make_client(url, token_file) as c:
        items = c.list_grants(identity)
    if as_json:
        emit_json(items)
    else:
        table([(_who(g), g["role"], g["scope"], g["created_at"]) for g in items],
              ["identity", "role", "scope", "granted at"])
