"""signgate log public-key | checkpoint | monitor: the transparency log from outside."""

from __future__ import annotations

from pathlib import Path

import click

from signgate.cli.common import check_url, injected_transport, witness_options
from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.client.client import SigngateClient

URL = click.option("--url", envvar="SIGNGATE_URL", default="http://127.0.0.1:8080",
                   show_default=True, help="signgate server ($SIGNGATE_URL); no token needed.")


def _client(url: str) -> SigngateClient:
    return SigngateClient(check_url(url), None, transport=injected_transport())


@click.group("log")
def log() -> None:
    """The transparency log: every audit entry is a leaf of a Merkle tree whose signed
    checkpoints witnesses cosign, so that no one, the server's owner included, can rewrite
    the record unseen.

    \b
    signgate log public-key                 the log's origin and verifier key
    signgate log checkpoint                 the newest signed checkpoint
    signgate log monitor --state FILE       check that the log only grew since last time
    signgate log check FILE --log-key VKEY  check a blast-radius file offline
    signgate log verify-receipt PROOF --log-key VKEY --artifact FILE
                                            check a signing receipt offline
    """


@log.command("public-key")
@URL
@json_option
@handles_errors
def public_key(url: str, as_json: bool) -> None:
    """The log's origin, its note verifier key (for 'log monitor --log-key', receipts and
    witnesses) and its Ed25519 public key. Fetch it once where you trust the answer and
    keep it: a verifier that asks the server it checks for the key checks nothing."""
    with _client(url) as c:
        key = c.log_public_key()
    if as_json:
        emit_json(key)
        return
    click.echo(f"origin: {key['origin']}")
    click.echo(f"verifier key: {key['verifier_key']}")
    click.echo(key["public_key_pem"].rstrip())


@log.command("checkpoint")
@URL
@json_option
@handles_errors
def checkpoint(url: str, as_json: bool) -> None:
    """Print the newest checkpoint (a C2SP signed note), as served, unverified."""
    with _client(url) as c:
        note = c.log_checkpoint()
    if as_json:
        origin, size, root = note.decode().split("\n")[:3]
        emit_json({"origin": origin, "size": int(size), "root_hash": root,
                   "note": note.decode()})
        return
    click.echo(note.decode(), nl=False)


@log.command("monitor")
@click.option("--state", "state_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="File with the last verified checkpoint (created on the first run, 0600).")
@click.option("--log-key", metavar="VKEY",
              help="The log's verifier key: needed on the first run, then pinned in --state.")
@witness_options
@URL
@json_option
@handles_errors
def monitor(state_path: Path, log_key: str | None, witnesses: tuple[str, ...],
            min_witnesses: int, url: str, as_json: bool) -> None:
    """Verify the newest checkpoint: signed by the log key, cosigned by enough witnesses,
    and an extension of the tree verified last time (a consistency proof). Exits 8 on a
    rollback, a fork or a bad signature, keeping the offending checkpoint beside the state
    file; the state moves only when everything verified."""
    from signgate.client.log_monitor import monitor as run

    with _client(url) as c:
        result = run(c, state_path, log_key, witnesses, min_witnesses)
    if as_json:
        emit_json(result.__dict__)
        return
    grew = ("first run: pinned" if result.previous_size is None
            else f"grew from {result.previous_size} to" if result.size > result.previous_size
            else "unchanged at")
    cosigned = f", cosigned by {', '.join(result.cosigned_by)}" if result.cosigned_by else ""
    click.echo(f"log {result.origin} consistent: {grew} {result.size} entries{cosigned}")


@log.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--log-key", required=True, metavar="VKEY",
              help="The log's verifier key, as you got it from a source you trust.")
@witness_options
@json_option
@handles_errors
def check(file: Path, log_key: str, witnesses: tuple[str, ...], min_witnesses: int,
          as_json: bool) -> None:
    """Check a blast-radius file ('key blast-radius') offline: its checkpoint is signed by
    the log key (and cosigned by enough witnesses), every listed signature's audit entry
    is in that tree at its index, and is an allowed signing with the file's key, of the
    listed digest, by the listed identity. Exit 8 if anything does not verify."""
    from signgate.client.log_check import check_blast_radius

    checked = check_blast_radius(file.read_bytes(), log_key, witnesses, min_witnesses)
    if as_json:
        emit_json(checked.__dict__)
        return
    cosigned = f", cosigned by {', '.join(checked.cosigned_by)}" if checked.cosigned_by else ""
    click.echo(f"{checked.signatures} signatures of {checked.key} verified in the log's tree "
               f"of size {checked.size}{cosigned}")


@log.command("verify-receipt")
@click.argument("proof", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--artifact", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The signed artifact (for authenticode and jar: the signed file).")
@click.option("--signature", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The detached signature (raw, openpgp); default: PROOF without its "
                   ".proof suffix, as 'signgate sign' wrote them.")
@click.option("--log-key", required=True, metavar="VKEY",
              help="The log's verifier key, as you got it from a source you trust "
                   "('signgate log public-key').")
@click.option("--key", "ref", metavar="PROJECT/NAME",
              help="Require the logged signing to have been made with this key.")
@click.option("--identity", metavar="NAME",
              help="Require the logged signing to have been asked for by this identity.")
@witness_options
@json_option
@handles_errors
def verify_receipt(proof: Path, artifact: Path, signature: Path | None, log_key: str,
                   ref: str | None, identity: str | None, witnesses: tuple[str, ...],
                   min_witnesses: int, as_json: bool) -> None:
    """Check a signing receipt (PROOF, the OUT.proof that 'signgate sign' writes) offline:
    its checkpoint is signed by the log key and cosigned by enough trusted witnesses, the
    audit entry it carries is in that tree at its index, and the entry is an allowed
    signing of this artifact (README, "Transparency log", says what binds it for each
    format). Nothing is asked of the server. Exit 8 if anything does not verify."""
    from signgate.client.receipt_check import check_receipt, signature_beside

    checked = check_receipt(proof.read_bytes(), artifact, log_key,
                            signature or signature_beside(proof, artifact), witnesses,
                            min_witnesses, ref, identity)
    if as_json:
        emit_json(checked.__dict__)
        return
    cosigned = f", cosigned by {', '.join(checked.cosigned_by)}" if checked.cosigned_by else ""
    click.echo(f"{artifact.name}: in the log at index {checked.log_index} of "
               f"{checked.log_size}{cosigned}: signed by {checked.key} version "
               f"{checked.key_version} for {checked.identity} at {checked.signed_at} "
               f"({checked.format}, bound by {checked.bound_by})")
