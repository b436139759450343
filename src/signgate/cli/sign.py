"""signgate sign | verify: parse the arguments, make one client call, render the result.

The signing protocol is ``client/sign_file.py``'s and the verification's is
``client/verify_file.py``'s, shared with Python users of :class:`SigngateClient`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from signgate.cli.common import client_options, injected_transport, make_client, witness_options
from signgate.cli.files import progress_bar
from signgate.cli.output import EXIT_PENDING, emit_json, handles_errors, json_option
from signgate.cli.usage import Choice
from signgate.client.offline_verify import Report
from signgate.client.receipt_check import CheckedReceipt, check_receipt, signature_beside
from signgate.client.sign_file import SigningPending
from signgate.client.verify_file import http_getter, verify_raw_file, verify_signed_file
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput, SigngateError, VerificationFailed
from signgate.formats import registry as formats

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
    "authenticode: the PE file, signed in place (or -o). "
    "jar: the JAR, signed in place (or -o). "
    "openpgp: detached ASCII-armored OpenPGP signature -> FILE.asc. "
    "dsse: an in-toto Statement in a DSSE envelope -> FILE.intoto.jsonl. "
    "sigstore: a Sigstore bundle v0.3 -> FILE.sigstore.json."
)


def _engines(scan: Mapping[str, Any]) -> str:
    return ", ".join(f"{e['engine']} {e['engine_version']}".strip()
                     for e in scan.get("engines", [])) or "no engine"


@click.command("sign")
@click.argument("file", type=FILE)
@click.option("--key", "ref", required=True, metavar="PROJECT/NAME", help="Key to sign with.")
@click.option("--format", "fmt", type=Choice(list(formats.NAMES)), default="raw",
              show_default=True, help=FORMAT_HELP)
@click.option("--digest", "digest_name", type=DIGESTS, default="sha256", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the result (default: next to FILE for detached formats, "
                   "FILE itself for authenticode and jar).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE",
              help="Metadata recorded with the signature (repeatable), e.g. commit=abc123.")
@click.option("--name", "artifact_name", help="Artifact name to record (default: file name).")
@click.option("--no-progress", is_flag=True, help="No progress bar while hashing.")
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
def sign(file: Path, ref: str, fmt: str, digest_name: str, output: Path | None,
         meta: tuple[str, ...], artifact_name: str | None, no_progress: bool, upload: bool,
         wait: bool, timeout: float, release: str | None, timestamp: bool, url: str,
         token_file: Path | None, as_json: bool) -> None:
    """Sign FILE with a key held by signgate. FILE is read here and only a digest is sent
    (for authenticode and jar, the digest of what those formats sign), unless the key
    requires a scan: then FILE is uploaded, scanned and hashed by signgate. The private key
    never leaves the server. --json prints the receipt. A key that needs approvals holds
    the signing as a request: exit 11 with its id, or --wait for the signature."""
    metadata = _metadata(meta)
    show = not no_progress and not as_json

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
        with make_client(url, token_file) as c:
            signed = c.sign_file(file, ref, fmt, digest=DigestAlgorithm(digest_name),
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
    receipt = signed.receipt
    if as_json:
        emit_json(signed.summary())
    else:
        stamped = ""
        if receipt.get("timestamp_time"):
            where = str(signed.timestamp_path or "embedded")
            stamped = f", timestamped {receipt['timestamp_time']} ({where})"
        logged = ""
        if signed.proof_path is not None:
            logged = (f", log index {receipt['log_index']} (proof {signed.proof_path}, "
                      f"{receipt['log_cosignatures']} witness cosignatures)")
        click.echo(f"signed {file.name} with {receipt['key']} version "
                   f"{receipt['key_version']} -> {signed.signature_path} ({fmt}, signature "
                   f"{receipt['signature_id']}){stamped}{logged}")


def _server_root(url: str, token_file: Path | None) -> bytes:
    """signgate's root, the trust anchor when no --ca is given."""
    try:
        with make_client(url, token_file) as c:
            return c.root_certificate()
    except SigngateError as exc:
        raise InvalidInput(f"no trust anchor: give --ca ROOT.pem (from 'signgate ca cert'); "
                           f"fetching signgate's root failed: {exc}") from None


def _print_report(file: Path, report: Report) -> None:
    click.echo(f"{file.name}: {report.reason}")
    rows = [("format", report.format), ("signer", report.signer),
            ("chain", " -> ".join(report.chain)),
            ("signing time", report.signing_time.isoformat() if report.signing_time else ""),
            ("timestamp", f"{report.timestamped_at.isoformat()} by "
                          f"{report.timestamp_authority}" if report.timestamped_at else "none"),
            ("revocation", "; ".join(report.crls)),
            ("revoked since", "; ".join(report.revoked_later))]
    rows += list(report.details.items())
    for label, value in rows:
        if value:
            click.echo(f"  {label}: {value}")


@click.command("verify")
@click.argument("file", type=FILE)
@click.option("--signature", "sig_path", type=FILE,
              help="The detached signature (default: FILE plus the format's suffix, e.g. "
                   "FILE.p7s); none for authenticode and jar, which are inside FILE.")
@click.option("--format", "fmt", type=Choice(list(formats.NAMES)),
              help="Default: from the signature file's name, or FILE's content.")
@click.option("--ca", "ca_files", multiple=True, type=FILE,
              help="Trust anchor certificate(s), PEM, or a Sigstore trusted_root.json "
                   "('signgate ca trusted-root', which also supplies the issuing CAs); "
                   "default: signgate's root, fetched from the server.")
@click.option("--certificate", "cert_files", multiple=True, type=FILE,
              help="More certificates, PEM: the signer's for formats that carry none (raw, "
                   "openpgp, dsse: 'signgate key cert P/N').")
@click.option("--crl", "crl_files", multiple=True, type=FILE,
              help="CRL files (DER or PEM); by default CRLs are fetched from the "
                   "certificates' distribution points.")
@click.option("--no-revocation-check", is_flag=True,
              help="Skip revocation (say so in the result); never the default.")
@click.option("--insecure-allow-untimestamped", "allow_untimestamped", is_flag=True,
              help="Accept a Sigstore bundle without an RFC 3161 timestamp, judging its "
                   "certificate by its validity at the current time instead of a proven "
                   "signing time (Sigstore verifiers refuse such bundles); never the "
                   "default.")
@click.option("--key", "ref", metavar="PROJECT/NAME",
              help="raw only: verify online against this key's versions and revocation "
                   "state (says which version and who signed).")
@click.option("--public-key", type=FILE, help="raw only: just check the signature with this "
                                              "PEM public key.")
@click.option("--digest", "digest_name", type=DIGESTS, default="sha256", show_default=True,
              help="With --key or --public-key: the digest the raw signature is over.")
@click.option("--proof", type=FILE,
              help="Also check this signing receipt (OUT.proof) offline against --log-key: "
                   "the signing is in the log (see 'signgate log verify-receipt').")
@click.option("--log-key", metavar="VKEY", help="With --proof: the log's verifier key.")
@click.option("--identity", metavar="NAME",
              help="With --proof: require the logged signing to have been asked for by "
                   "this identity (and, with --key, made with that key).")
@witness_options
@client_options
@json_option
@handles_errors
def verify(file: Path, sig_path: Path | None, fmt: str | None, ca_files: tuple[Path, ...],
           cert_files: tuple[Path, ...], crl_files: tuple[Path, ...],
           no_revocation_check: bool, allow_untimestamped: bool, ref: str | None,
           public_key: Path | None, digest_name: str, proof: Path | None,
           log_key: str | None, identity: str | None, witnesses: tuple[str, ...],
           min_witnesses: int, url: str,
           token_file: Path | None, as_json: bool) -> None:
    """Verify a signature of FILE in any format: the signature itself, its certificate chain
    to the trust anchor (codeSigning), its RFC 3161 timestamp and revocation (CRLs). Says
    which key version signed and when; with --proof, also that the signing is in the
    transparency log. Exit code 8 when it is not valid."""
    if identity is not None and proof is None:
        raise InvalidInput("--identity is checked in the signing receipt: give --proof too")
    if proof is not None and log_key is None:
        raise InvalidInput("--proof needs --log-key VKEY (the log's verifier key, from "
                           "'signgate log public-key')")

    def in_log() -> CheckedReceipt | None:
        if proof is None or log_key is None:
            return None
        return check_receipt(proof.read_bytes(), file, log_key,
                             sig_path or signature_beside(proof, file), witnesses,
                             min_witnesses, ref, identity)

    if ref is not None or public_key is not None:
        _verify_raw(file, sig_path, ref, public_key, digest_name, url, token_file, as_json,
                    in_log)
        return
    report = verify_signed_file(
        file, sig_path, fmt, ca_files=ca_files, root=lambda: _server_root(url, token_file),
        certificate_files=cert_files, crl_files=crl_files, server_url=url,
        get=http_getter(injected_transport()), check_revocation=not no_revocation_check,
        allow_untimestamped=allow_untimestamped)
    if report.valid and allow_untimestamped and report.timestamped_at is None:
        click.echo(f"signgate: warning: {file.name} has no timestamp; its certificate was "
                   "judged at the current time (--insecure-allow-untimestamped)", err=True)
    logged = in_log() if report.valid else None
    if as_json:
        answer = {k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v)
                  for k, v in dataclasses.asdict(report).items()}
        if logged is not None:
            answer["log"] = dataclasses.asdict(logged)
        emit_json(answer)
        if not report.valid:
            raise SystemExit(8)
        return
    if not report.valid:
        raise VerificationFailed(f"INVALID {file.name}: {report.reason}")
    _print_report(file, report)
    _print_logged(logged)


def _print_logged(logged: CheckedReceipt | None) -> None:
    if logged is not None:
        cosigned = f", cosigned by {', '.join(logged.cosigned_by)}" if logged.cosigned_by \
            else ""
        click.echo(f"  log: index {logged.log_index} of {logged.log_size}{cosigned} "
                   f"(bound by {logged.bound_by})")


def _verify_raw(file: Path, sig_path: Path | None, ref: str | None, public_key: Path | None,
                digest_name: str, url: str, token_file: Path | None, as_json: bool,
                in_log: Callable[[], CheckedReceipt | None]) -> None:
    """Check a raw signature of FILE: online with --key (says which version signed and
    whether the key was compromised first) or with a bare --public-key."""
    if ref is not None and public_key is not None:
        raise InvalidInput("give at most one of --key PROJECT/NAME or --public-key PEM")
    if sig_path is None:
        raise InvalidInput("--signature is required with --key or --public-key")
    verdict = verify_raw_file(
        file, sig_path, DigestAlgorithm(digest_name), key=ref,
        connect=lambda: make_client(url, token_file), public_key=public_key,
        progress=lambda stage, path: progress_bar(path, stage, not as_json))
    valid, reason = verdict.valid, verdict.reason
    logged = in_log() if valid else None
    if as_json:
        emit_json(dict(verdict.answer) | ({"log": dataclasses.asdict(logged)} if logged
                                          else {}))
        if not valid:
            raise SystemExit(8)
        return
    if not valid:
        raise VerificationFailed(f"INVALID {file.name}: {reason}")
    click.echo(f"{file.name}: {reason}")
    _print_logged(logged)
