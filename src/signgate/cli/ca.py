"""signgate ca cert, signgate ca tsa-cert, signgate ca trusted-root"""

from __future__ import annotations

import json
from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.files import write_atomic
from signgate.cli.output import emit_json, handles_errors, json_option


@click.group("ca")
def ca() -> None:
    """signgate's own certificate authority."""


@ca.command("cert")
@client_options
@json_option
@handles_errors
def cert(url: str, token_file: Path | None, as_json: bool) -> None:
    """Print the root CA certificate (PEM): the trust anchor for verifiers."""
    with make_client(url, token_file) as c:
        root = c.ca_certificate()
    if as_json:
        emit_json(root)
    else:
        click.echo(root["pem"], nl=False)


@ca.command("tsa-cert")
@client_options
@json_option
@handles_errors
def tsa_cert(url: str, token_file: Path | None, as_json: bool) -> None:
    """Print the time-stamp authority's certificate (PEM), issued by the root CA."""
    with make_client(url, token_file) as c:
        tsa = c.tsa_certificate()
    if as_json:
        emit_json(tsa)
    else:
        click.echo(tsa["pem"], nl=False)


@ca.command("trusted-root")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the trusted root to this file instead of printing it.")
@client_options
@json_option
@handles_errors
def trusted_root(output: Path | None, url: str, token_file: Path | None,
                 as_json: bool) -> None:
    """Print a Sigstore trusted_root.json: the project issuing CAs you may see (each
    chained to the root) and the time-stamp authority, with no transparency logs. Sigstore
    clients verify signgate's bundles offline against it (tlog and ctlog thresholds 0)."""
    with make_client(url, token_file) as c:
        document = c.trusted_root()
    if output is not None:
        write_atomic(output, json.dumps(document, indent=2).encode("utf-8") + b"\n")
    if as_json:
        emit_json(document)
    elif output is None:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(f"wrote {output}: {len(document['certificateAuthorities'])} certificate "
                   f"authorities, {len(document['timestampAuthorities'])} time-stamp "
                   "authority")
