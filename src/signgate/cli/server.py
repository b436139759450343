"""Server-side commands: signgate init | serve | db upgrade (these touch the data directory)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.config import (
    ADMIN_TOKEN_FILE,
    CONFIG_FILE,
    DEFAULT_DATA_DIR,
    DEFAULT_PUBLIC_URL,
    MASTER_KEY_FILE,
    SOFT_STORE,
    check_public_url,
    default_config_text,
    load_settings,
    read_config,
)
from signgate.errors import ConfigError, Conflict, SigngateError
from signgate.keystore.soft import encode_master_key, new_master_key

if TYPE_CHECKING:
    from signgate.clock import Clock
    from signgate.config import Settings
    from signgate.service.context import Context

F = TypeVar("F", bound=Callable[..., Any])

DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR, show_default=True, envvar="SIGNGATE_DATA_DIR",
    help="Where signgate keeps its configuration, database and master key.",
)


def _public_url_option(help_text: str) -> Callable[[F], F]:
    return click.option("--public-url", default=None, metavar="URL", help=help_text)


def _write_secret(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as f:
        f.write(text)


@click.command("init")
@DATA_DIR
@click.option("--admin", "admin_name", default="admin", show_default=True,
              help="Name of the bootstrap admin identity.")
@_public_url_option("Where clients and verifiers reach the server, named in the CRL URLs "
                    "of its certificates; written to config.toml [env: SIGNGATE_PUBLIC_URL; "
                    "default: the configured one, else http://127.0.0.1:8080].")
@click.option("--store", metavar="NAME",
              help="Make the root CA, the issuing CAs, the TSA and the log key (and new keys) "
                   "in this key store: a [stores.NAME] table of DATA_DIR/config.toml, written "
                   "before init; sets default_store there.")
@json_option
@handles_errors
def init(data_dir: Path, admin_name: str, public_url: str | None, store: str | None,
         as_json: bool) -> None:
    """Create the data directory: config, database, master key (0600) and the bootstrap
    admin, whose token goes to DATA_DIR/admin.token (0600)."""
    settings, token_path, revision, url = initialise(data_dir, admin_name, public_url, store)
    if as_json:
        emit_json({"data_dir": str(settings.data_dir), "admin": admin_name,
                   "admin_token_file": str(token_path), "schema_revision": revision,
                   "database": url})
    else:
        click.echo(f"initialised {settings.data_dir}")
        click.echo(f"admin token: {token_path} (export SIGNGATE_TOKEN=$(cat {token_path}))")


def initialise(data_dir: Path, admin_name: str = "admin", public_url: str | None = None,
               store: str | None = None, clock: Clock | None = None,
               ) -> tuple[Settings, Path, str, str]:
    """What 'signgate init' does (``clock``: when it is recorded, for 'signgate demo
    seed'); the settings, the admin token's file, the schema revision, the database URL."""
    from signgate.service.bootstrap import bootstrap_admin, ensure_all
    from signgate.service.factory import build_context

    os.umask(0o077)  # the database holds sealed keys: owner only
    if (data_dir / ADMIN_TOKEN_FILE).exists():
        raise Conflict(f"{data_dir} is already initialised ({ADMIN_TOKEN_FILE} exists)")
    public_url = public_url or os.environ.get("SIGNGATE_PUBLIC_URL") or None
    if public_url is not None:
        public_url = check_public_url(public_url, "--public-url")
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {data_dir}: {exc.strerror}") from exc
    config = data_dir / CONFIG_FILE
    if not config.exists():
        config.write_text(default_config_text(public_url or DEFAULT_PUBLIC_URL), "utf-8")
    elif public_url is not None:
        _set_public_url(data_dir, public_url)
    if store is not None:
        _set_default_store(data_dir, store)
    if not os.environ.get("SIGNGATE_MASTER_KEY") and not (data_dir / MASTER_KEY_FILE).exists():
        _write_secret(data_dir / MASTER_KEY_FILE, encode_master_key(new_master_key()) + "\n")
    settings = load_settings(data_dir)
    ctx = build_context(settings, clock=clock)
    try:
        revision = ctx.db.upgrade()
        token = bootstrap_admin(ctx, admin_name)
        ensure_all(ctx)  # the root CA
    finally:
        ctx.close()
    token_path = settings.data_dir / ADMIN_TOKEN_FILE
    _write_secret(token_path, token + "\n")
    return settings, token_path, revision, ctx.db.url.render_as_string(hide_password=True)


@click.command("serve")
@DATA_DIR
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes.")
@click.option("--access-log/--no-access-log", default=None,
              help="One JSON line per request on standard error, with its request id "
                   "[default: config.toml's access_log, else off].")
@_public_url_option("Replaces config.toml's public_url for this run [env: "
                    "SIGNGATE_PUBLIC_URL]; certificates naming another are re-issued.")
@handles_errors
def serve(data_dir: Path, host: str, port: int, workers: int, access_log: bool | None,
          public_url: str | None) -> None:
    """Run the API server (applies database migrations first)."""
    import uvicorn

    from signgate.service import ui_oidc
    from signgate.service.bootstrap import check_vault, ensure_all, reissue_for_public_url
    from signgate.service.factory import build_context

    os.umask(0o077)
    if access_log is not None:  # for this run; the workers read it from the environment
        os.environ["SIGNGATE_ACCESS_LOG"] = "true" if access_log else "false"
    settings = load_settings(data_dir, public_url)
    ctx = build_context(settings)  # reads the master key: fail now, not on the first signing
    try:
        ctx.db.upgrade()
        check_vault(ctx)  # a master key that does not open this vault stops us here
        made = ensure_all(ctx)  # CAs and certificates missing from older databases
        reissued = reissue_for_public_url(ctx)  # public_url changed since they were issued
        _check_scanners(ctx)
        ui_oidc.from_settings(settings)  # the console's OIDC client secret: before workers
        # Uploads left by a server that stopped mid-request (no request is running yet).
        shutil.rmtree(settings.data_dir / "spool", ignore_errors=True)
    finally:
        ctx.close()
    if made:
        click.echo(f"issued {made} missing CA or key certificates", err=True)
    if reissued:
        click.echo(f"re-issued {reissued} certificates for public_url {settings.public_url}",
                   err=True)
    _metrics_dir(settings.data_dir, workers)
    os.environ["SIGNGATE_DATA_DIR"] = str(settings.data_dir)
    # The worker processes (and the app factory) load the settings again: same URL.
    os.environ["SIGNGATE_PUBLIC_URL"] = settings.public_url
    # http: uvicorn's httptools protocol with a header deadline (api/protocol.py); the body
    # deadline is ASGI middleware (api/limits.py). timeout_keep_alive stays uvicorn's 5 s.
    uvicorn.run("signgate.api.asgi:create", factory=True, host=host, port=port,
                # signgate's own access log (api/observe.py) has request ids, route
                # templates and identities; uvicorn's is never on.
                workers=workers, access_log=False, log_level="info",
                server_header=False, http="signgate.api.protocol:DeadlineProtocol",
                # Requests still running after this are cancelled (their spool removed).
                timeout_graceful_shutdown=settings.shutdown_grace_seconds)


def _metrics_dir(data_dir: Path, workers: int) -> None:
    """Several workers keep their metrics in files of DATA_DIR/metrics, which any of them
    sums when scraped (prometheus_client's multiprocess mode: api/metrics.py). It is
    emptied at every start: the counters of a new server begin at zero, as Prometheus
    expects of a restarted process. It must be set before the workers import
    prometheus_client; one worker is this process, which keeps them in memory."""
    directory = data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    if workers > 1:
        try:
            directory.mkdir(mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create {directory}: {exc.strerror}") from exc
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _set_public_url(data_dir: Path, public_url: str) -> None:
    """Write ``public_url`` into an existing config.toml that does not set another one."""
    config = data_dir / CONFIG_FILE
    current = read_config(data_dir).get("public_url")
    if current is not None:
        if check_public_url(current, str(config)) != public_url:
            raise ConfigError(f"{config} sets public_url = {current!r}; edit it there or "
                              f"leave out --public-url")
        return
    text = config.read_text("utf-8")
    with config.open("a", encoding="utf-8") as f:
        f.write(("" if text.endswith("\n") or not text else "\n")
                + f"public_url = \"{public_url}\"\n")
    if read_config(data_dir).get("public_url") != public_url:  # e.g. after a [table]
        config.write_text(text, "utf-8")
        raise ConfigError(f"cannot add public_url to {config}: set it there by hand")


def _set_default_store(data_dir: Path, store: str) -> None:
    """Make ``store`` the default store of config.toml (which must define it), unless the
    file names it already; another default_store there is a conflict to settle by hand."""
    config = data_dir / CONFIG_FILE
    values = read_config(data_dir)
    stores = values.get("stores")
    if store != SOFT_STORE and (not isinstance(stores, dict) or store not in stores):
        raise ConfigError(f"--store {store}: {config} has no [stores.{store}] table (write it "
                          "before 'signgate init': see README, 'Keys in an HSM')")
    current = values.get("default_store")
    if current == store:
        return
    if current is not None:
        raise ConfigError(f"{config} sets default_store = {current!r}; edit it there or "
                          f"leave out --store")
    # A top-level key goes before the first [table]: at the top of the file.
    text = config.read_text("utf-8")
    config.write_text(f"default_store = \"{store}\"  # signgate init --store\n" + text,
                      "utf-8")


def _check_scanners(ctx: Context) -> None:
    """YARA rules that do not compile stop the server now (ConfigError); a clamd that does
    not answer is only reported: signings are refused until it does (fail closed)."""
    from signgate.scan.clamd import ClamdScanner
    for engine in ctx.scanners.engines:
        if isinstance(engine, ClamdScanner):
            try:
                engine.ping()
            except SigngateError as exc:
                click.echo(f"warning: {exc}; scanned signings are refused until it answers",
                           err=True)


@click.group("db")
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@DATA_DIR
@json_option
@handles_errors
def upgrade(data_dir: Path, as_json: bool) -> None:
    """Apply database migrations up to the newest schema."""
    from signgate.service.bootstrap import upgrade_database

    revision = upgrade_database(load_settings(data_dir).database_url)
    if as_json:
        emit_json({"schema_revision": revision})
    else:
        click.echo(f"database schema at revision {revision}")
