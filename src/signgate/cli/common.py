"""Options shared by the client commands: server URL, token, JSON output.

httpx and the full client are imported when a client is made, not with this module:
``signgate sign`` over ``http://`` signs without them (``client/lite.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from signgate.client.answers import DEFAULT_URL
from signgate.errors import AuthenticationFailed, ConfigError

if TYPE_CHECKING:
    import httpx

    from signgate.client.client import SigngateClient
    from signgate.client.lite import LiteClient

F = TypeVar("F", bound=Callable[..., Any])


_OIDC_FILE = "signgate.oidc_token_file"


def _remember_oidc_file(ctx: click.Context, _param: click.Parameter,
                        value: Path | None) -> None:
    if value is not None:
        ctx.meta[_OIDC_FILE] = value


def client_options(fn: F) -> F:
    # Not an argument of every command: make_client reads it from the click context.
    fn = click.option("--oidc-token-file", type=click.Path(dir_okay=False, path_type=Path),
                      expose_value=False, callback=_remember_oidc_file,
                      help="File holding a CI job's OIDC token, exchanged for a short-lived "
                           "signgate token (default: $SIGNGATE_OIDC_TOKEN).")(fn)
    fn = click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
                      help="File holding the API token (default: $SIGNGATE_TOKEN).")(fn)
    fn = click.option("--url", envvar="SIGNGATE_URL", default=DEFAULT_URL, show_default=True,
                      help="signgate server ($SIGNGATE_URL).")(fn)
    return fn


def witness_options(fn: F) -> F:
    """``--witness VKEY`` (repeatable) and ``--min-witnesses N``: which witnesses' cosignatures
    count on a checkpoint, and how many of them are required."""
    fn = click.option("--min-witnesses", type=click.IntRange(min=0), default=0,
                      show_default=True,
                      help="Fail unless this many of the --witness keys cosigned the "
                           "checkpoint.")(fn)
    fn = click.option("--witness", "witnesses", multiple=True, metavar="VKEY",
                      help="A witness's verifier key whose cosignature counts (repeat).")(fn)
    return fn


def read_token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read token file {token_file}: {exc.strerror}") from exc
    else:
        token = os.environ.get("SIGNGATE_TOKEN", "").strip()
    if not token:
        raise AuthenticationFailed(
            "no API token: set SIGNGATE_TOKEN or pass --token-file "
            "(the bootstrap admin's token is in DATA_DIR/admin.token)"
        )
    if not (token.isascii() and token.isprintable()):
        # Cannot be sent in an HTTP header and is no token signgate issued: fail exactly
        # like an unknown token instead of with a traceback or a transport error.
        raise AuthenticationFailed()
    return token


def check_url(url: str) -> str:
    """The server URL, if it is one: ``host:8080`` without a scheme is a configuration
    error (exit 10), not an unreachable server (exit 9)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"SIGNGATE_URL (or --url) {url!r} is not an http:// or https:// URL, "
                          "e.g. http://127.0.0.1:8080")
    return url


def injected_transport() -> httpx.BaseTransport | None:
    """An HTTP transport given as the click context's object (``CliRunner().invoke(cli,
    args, obj=transport)``): the CLI then talks to an in-process app. None when run."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.find_root().obj is None:
        return None  # run as a command: nothing injected (and httpx not imported for it)
    import httpx

    return ctx.find_object(httpx.BaseTransport)


def oidc_token() -> str | None:
    """The CI job's OIDC token to exchange: from --oidc-token-file, else
    $SIGNGATE_OIDC_TOKEN; None when neither is given."""
    ctx = click.get_current_context(silent=True)
    path = ctx.meta.get(_OIDC_FILE) if ctx is not None else None
    if isinstance(path, Path):
        try:
            token = path.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read OIDC token file {path}: {exc.strerror}") from exc
        if not token:
            raise AuthenticationFailed(f"OIDC token file {path} is empty")
        return token
    return os.environ.get("SIGNGATE_OIDC_TOKEN", "").strip() or None


def make_client(url: str, token_file: Path | None) -> SigngateClient:
    """A client with the API token of --token-file; else a CI job's OIDC token
    (--oidc-token-file, $SIGNGATE_OIDC_TOKEN) exchanged for a short-lived signgate token;
    else $SIGNGATE_TOKEN."""
    from signgate.client.client import SigngateClient

    return SigngateClient(check_url(url), _token(url, token_file),
                          transport=injected_transport())


def make_signing_client(url: str, token_file: Path | None) -> SigngateClient | LiteClient:
    """:func:`make_client` for ``signgate sign``: over ``http://`` the light client
    (``client/lite.py``: no httpx, no SSL context), which hands anything else it is asked
    to a full client; over ``https://``, or with a transport injected, the full client."""
    url = check_url(url)
    token = _token(url, token_file)
    transport = injected_transport()
    if transport is not None or urlsplit(url).scheme != "http":
        from signgate.client.client import SigngateClient

        return SigngateClient(url, token, transport=transport)
    from signgate.client.lite import LiteClient

    def full() -> SigngateClient:
        from signgate.client.client import SigngateClient

        return SigngateClient(url, token)

    return LiteClient(url, token, full)


def _token(url: str, token_file: Path | None) -> str:
    ci_token = None if token_file is not None else oidc_token()
    if ci_token is not None:
        if not (ci_token.isascii() and ci_token.isprintable()):
            raise AuthenticationFailed("the OIDC token is not a JWT")
        from signgate.client.oidc_exchange import signgate_token

        return signgate_token(check_url(url), ci_token, injected_transport())
    return read_token(token_file)
