"""signgate sign: parse the arguments, make the client calls, render the results.

The signing protocol is ``client/sign_file.py``'s (one file) and ``client/sign_files.py``'s
(several: one batch request), shared with Python users of :class:`SigngateClient`.

This module is on the path of every CI job's signing, so it imports only what signing a
file needs: no httpx over ``http://`` (``client/lite.py``), no x509 or CMS code for raw.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from signgate.cli.common import client_options, make_signing_client
from signgate.cli.files import progress_bar
from signgate.cli.output import (
    EXIT_PENDING,
    emit_json,
    exit_code_for,
    handles_errors,
    json_option,
)
from signgate.cli.usage import Choice
from signgate.client.sign_file import SignedFile, SigningPending, sign_file
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput
from signgate.formats import registry as formats

if TYPE_CHECKING:
    from signgate.client.sign_files import FileOutcome

DIGESTS = Choice([d.value for d in DigestAlgorithm])
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise InvalidInput(f"--meta takes KEY=VALUE, got {pair!r}")
        out[k] = v
    return out


FORMAT_HELP = (
    "raw: the signature value (DER for ECDSA), as 'openssl dgst -verify' reads it -> FILE.sig. "
    "cms: detached CMS SignedData (DER) -> FILE.p7s. "
    "authenticode: the PE, CAB, MSI or PowerShell script (.ps1, .psm1, .psd1; the kind is "
    "detected), signed in place (or -o). "
    "jar: the JAR, signed in place (or -o). "
    "openpgp: detached ASCII-armored OpenPGP signature -> FILE.asc. "
    "dsse: an in-toto Statement in a DSSE envelope -> FILE.intoto.jsonl. "
    "sigstore: a Sigstore bundle v0.3 -> FILE.sigstore.json."
)


def _engines(scan: Mapping[str, Any]) -> str:
    return ", ".join(f"{e['engine']} {e['engine_version']}".strip()
                     for e in scan.get("engines", [])) or "no engine"


@click.command("sign")
@click.argument("files", nargs=-1, required=True, type=FILE, metavar="FILE...")
@click.option("--key", "ref", required=True, metavar="PROJECT/NAME", help="Key to sign with.")
@click.option("--format", "fmt", type=Choice(list(formats.NAMES)), default="raw",
              show_default=True, help=FORMAT_HELP)
@click.option("--digest", "digest_name", type=DIGESTS, default="sha256", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the result (default: next to FILE for detached formats, "
                   "FILE itself for authenticode and jar). One FILE only.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE",
              help="Metadata recorded with the signature (repeatable), e.g. commit=abc123.")
@click.option("--name", "artifact_name",
              help="Artifact name to record (default: file name). One FILE only.")
@click.option("--no-progress", is_flag=True, help="No progress on stderr.")
@click.option("--upload", is_flag=True,
              help="Upload FILE for signgate to scan and hash itself, even if the key does "
                   "not require it (keys with scan required always do).")
@click.option("--wait", is_flag=True,
              help="For a key that needs approvals: wait until the request is approved and "
                   "signed, then write the result as usual (progress on stderr). Without "
                   "it such a signing prints the request id and exits 11 (pending).")
@click.option("--timeout", type=click.FloatRange(min=0), default=3600, show_default=True,
              metavar="SECONDS", help="With --wait: give up (exit 11) after this long; a "
                                      "re-run picks up the same request.")
@click.option("--release", metavar="LABEL",
              help="The release this build belongs to: required by a key that needs "
                   "independent builders (it signs once N builders submit the same digest "
                   "for the artifact name and LABEL).")
@click.option("--timestamp/--no-timestamp", default=True, show_default=True,
              help="Add an RFC 3161 timestamp over the signature: inside the result for cms, "
                   "authenticode, jar and sigstore, else beside it as OUT.tsr. Keys with a "
                   "require-timestamp policy always get one.")
@client_options
@json_option
@handles_errors
def sign(files: tuple[Path, ...], ref: str, fmt: str, digest_name: str, output: Path | None,
         meta: tuple[str, ...], artifact_name: str | None, no_progress: bool, upload: bool,
         wait: bool, timeout: float, release: str | None, timestamp: bool, url: str,
         token_file: Path | None, as_json: bool) -> None:
    """Sign FILE with a key held by signgate. FILE is read here and only a digest is sent
    (for authenticode and jar, the digest of what those formats sign), unless the key
    requires a scan: then FILE is uploaded, scanned and hashed by signgate. The private key
    never leaves the server. --json prints the receipt. A key that needs approvals holds
    the signing as a request: exit 11 with its id, or --wait for the signature.

    Several FILEs are signed in one request (a batch: each file decided on its own, all
    in one commit), each written as for one FILE; a refused file gets one line on stderr
    and nothing written, and the exit code is the first refusal's. --json prints a list.
    authenticode, jar and uploads go one request per file."""
    metadata = _metadata(meta)
    show = not no_progress and not as_json
    if len(files) > 1:
        if output is not None or artifact_name is not None:
            raise InvalidInput("-o/--output and --name name one file's result: with several "
                               "files each result goes beside its file, named after it")
        _sign_many(files, ref, fmt, digest_name, metadata, upload, wait, timeout, release,
                   timestamp, url, token_file, as_json, show)
        return
    file = files[0]

    def scanned(scan: Mapping[str, Any]) -> None:
        if not as_json:
            click.echo(f"scanned {file.name}: {scan.get('verdict', '?')} "
                       f"({_engines(scan)})", err=True)

    seen: set[tuple[str, int]] = set()

    def pending(request: Mapping[str, Any]) -> None:
        if request.get("state") == "awaiting_builders":
            agree = len(request.get("builders", []))
            if (request["request_id"], -agree - 1) not in seen:
                seen.add((request["request_id"], -agree - 1))
                click.echo(f"waiting for builders of request {request['request_id']}: "
                           f"{agree} of {request.get('builders_required')} agree", err=True)
            return
        have = sum(1 for a in request.get("approvals", []) if a.get("decision") == "approve")
        if (request["request_id"], have) not in seen:  # once per change, not per poll
            seen.add((request["request_id"], have))
            click.echo(f"waiting for approvals of request {request['request_id']}: {have} of "
                       f"{request['required']} (expires {request['expires_at']})", err=True)

    try:
        with make_signing_client(url, token_file) as c:
            signed = sign_file(c, file, ref, fmt, digest=DigestAlgorithm(digest_name),
                               output=output, metadata=metadata,
                               artifact_name=artifact_name, upload=upload,
                               timestamp=timestamp,
                               progress=lambda stage, path: progress_bar(path, stage, show),
                               on_scan=scanned, wait=timeout if wait else None,
                               on_pending=pending if wait else None, release=release)
    except SigningPending as held:
        if as_json:
            emit_json(held.request)
        else:
            click.echo(held.request["request_id"])
            how = ("still waiting after --timeout" if held.timed_out else
                   "the other builders submit the same build with --release"
                   if held.request.get("state") == "awaiting_builders" else
                   "ask approvers to run 'signgate approve ID', then re-run with --wait")
            click.echo(f"signgate: {held}: {how}", err=True)
        raise SystemExit(EXIT_PENDING) from None
    if as_json:
        emit_json(signed.summary())
    else:
        click.echo(_signed_line(file, fmt, signed))


def _signed_line(file: Path, fmt: str, signed: SignedFile) -> str:
    """What ``sign`` prints for a signed file."""
    receipt = signed.receipt
    stamped = ""
    if receipt.get("timestamp_time"):
        where = str(signed.timestamp_path or "embedded")
        stamped = f", timestamped {receipt['timestamp_time']} ({where})"
    logged = ""
    if signed.proof_path is not None:
        logged = (f", log index {receipt['log_index']} (proof {signed.proof_path}, "
                  f"{receipt['log_cosignatures']} witness cosignatures)")
    return (f"signed {file.name} with {receipt['key']} version {receipt['key_version']} -> "
            f"{signed.signature_path} ({fmt}, signature {receipt['signature_id']})"
            f"{stamped}{logged}")


def _sign_many(files: tuple[Path, ...], ref: str, fmt: str, digest_name: str,
               metadata: dict[str, str], upload: bool, wait: bool, timeout: float,
               release: str | None, timestamp: bool, url: str, token_file: Path | None,
               as_json: bool, show: bool) -> None:
    """``sign FILE...``: one batch request (``client/sign_files.py``), one line per file."""
    from signgate.client.sign_files import sign_files

    last = [0.0]

    def counter(stage: str, done: int, total: int) -> None:
        # Progress for long runs only: a line a second at most, and the last one.
        import time

        now = time.monotonic()
        if show and total >= 50 and (done == total or now - last[0] >= 1.0):
            last[0] = now
            click.echo(f"{stage} {done} of {total} files", err=True)

    with make_signing_client(url, token_file) as c:
        outcomes = sign_files(c, list(files), ref, fmt, digest=DigestAlgorithm(digest_name),
                              metadata=metadata, upload=upload, timestamp=timestamp,
                              progress=lambda stage, path: progress_bar(path, stage, show),
                              wait=timeout if wait else None, release=release,
                              counter=counter)
    if as_json:
        emit_json([_as_json(o) for o in outcomes])
    for o in outcomes:
        if o.signed is not None and not as_json:
            click.echo(_signed_line(o.path, fmt, o.signed))
        elif o.pending is not None and not as_json:
            click.echo(f"{o.path.name}: {o.pending['request_id']}")
        elif o.error is not None:
            click.echo(f"signgate: {o.path}: {o.error}", err=True)
    refused = [o.error for o in outcomes if o.error is not None]
    if refused:
        sys.exit(exit_code_for(refused[0]))
    if any(o.pending is not None for o in outcomes):
        if not as_json:
            click.echo("signgate: some signings await approvals or builders: ask approvers "
                       "to run 'signgate approve ID', then re-run with --wait", err=True)
        sys.exit(EXIT_PENDING)


def _as_json(o: FileOutcome) -> dict[str, Any]:
    if o.signed is not None:
        return {"file": str(o.path), **o.signed.summary()}
    if o.pending is not None:
        return {"file": str(o.path), "pending": dict(o.pending)}
    assert o.error is not None
    return {"file": str(o.path), "error": {"code": str(o.error.code), "detail": str(o.error),
                                           "exit_code": exit_code_for(o.error)}}
