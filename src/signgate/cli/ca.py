"""signgate ca cert, signgate ca tsa-cert"""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
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
