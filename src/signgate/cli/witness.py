"""signgate witness serve | add-log | public-key: run a witness that cosigns checkpoints.

The witness keeps everything in its own data directory (``signgate.witness.store``) and
never opens signgate's configuration or database: it is meant for another machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.errors import InvalidInput

DEFAULT_DATA_DIR = "signgate-witness"
DEFAULT_LISTEN = "127.0.0.1:8380"

DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
    show_default=True, envvar="SIGNGATE_WITNESS_DATA_DIR",
    help="The witness's own directory: its key (0600), the logs it accepts and the latest "
         "checkpoint it cosigned for each. Created on first use "
         "[env: SIGNGATE_WITNESS_DATA_DIR].")
NAME = click.option(
    "--name", default=None, metavar="NAME",
    help="The witness's key name, set when the data directory is created (default: "
         "HOST/signgate-witness); it names the witness in every cosignature.")


@click.group("witness")
def witness() -> None:
    """Run a witness: a server, best on another machine, that cosigns a log's checkpoints
    (C2SP tlog-witness) only when they are consistent with what it cosigned before, so that
    a rewritten or forked log history cannot be cosigned.

    \b
    signgate witness public-key --data-dir D        its verifier key, for the log's config
    signgate witness add-log --data-dir D --origin ORIGIN --key LOG_VERIFIER_KEY
    signgate witness serve --data-dir D --listen 127.0.0.1:8380
    """


@witness.command("serve")
@DATA_DIR
@NAME
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to listen on (POST /add-checkpoint, GET /<origin hash>/checkpoint).")
@json_option
@handles_errors
def serve(data_dir: Path, name: str | None, listen: str, as_json: bool) -> None:
    """Serve add-checkpoint until stopped. Makes the key on first start."""
    import uvicorn

    from signgate.witness.app import create_app
    from signgate.witness.store import WitnessStore

    host, port = _split_listen(listen)
    store = WitnessStore.open(data_dir, name)
    cosigner = store.cosigner()
    info = {"listen": f"http://{host}:{port}", "name": cosigner.name,
            "verifier_key": cosigner.verifier_key, "logs": sorted(store.logs()),
            "data_dir": str(data_dir)}
    if as_json:
        emit_json(info)
    else:
        click.echo(f"witness {cosigner.name} on {info['listen']}, key {cosigner.verifier_key}")
        if not info["logs"]:
            click.echo("warning: no logs configured yet (signgate witness add-log)", err=True)
    sys.stdout.flush()  # the start line reaches a pipe before the server runs
    uvicorn.run(create_app(store), host=host, port=port, log_level="warning",
                server_header=False, access_log=False)


@witness.command("add-log")
@DATA_DIR
@NAME
@click.option("--origin", required=True, metavar="ORIGIN",
              help="The log's checkpoint origin line, e.g. signgate.example.com/log.")
@click.option("--key", "verifier_key", required=True, metavar="VERIFIER_KEY",
              help="The log's note verifier key, NAME+KEYID+BASE64 (an Ed25519 key).")
@json_option
@handles_errors
def add_log(data_dir: Path, name: str | None, origin: str, verifier_key: str,
            as_json: bool) -> None:
    """Accept checkpoints of the log ORIGIN signed by VERIFIER_KEY. A running witness sees
    the new log at its next request."""
    from signgate.witness.store import WitnessStore

    store = WitnessStore.open(data_dir, name)
    added = store.add_log(origin, verifier_key)
    if as_json:
        emit_json({"origin": origin, "verifier_key": verifier_key, "added": added})
    else:
        click.echo(f"{'added' if added else 'already accepted'}: log {origin} with key "
                   f"{verifier_key.split('+')[0]}+{verifier_key.split('+')[1]}")


@witness.command("public-key")
@DATA_DIR
@NAME
@json_option
@handles_errors
def public_key(data_dir: Path, name: str | None, as_json: bool) -> None:
    """Print the witness's verifier key (NAME+KEYID+BASE64, cosignature type 0x04): give
    it to the log that asks this witness to cosign, and to verifiers."""
    import base64

    from signgate.witness.store import WitnessStore

    cosigner = WitnessStore.open(data_dir, name).cosigner()
    if as_json:
        emit_json({"name": cosigner.name, "verifier_key": cosigner.verifier_key,
                   "public_key": base64.b64encode(cosigner.public_key).decode(),
                   "key_id": f"{cosigner.key_id:08x}"})
    else:
        click.echo(cosigner.verifier_key)


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(f"--listen {listen!r} is not HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]"), int(port)

