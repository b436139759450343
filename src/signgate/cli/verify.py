"""signgate verify: parse the arguments, make one client call, render the result.

The verification protocol is ``client/verify_file.py``'s, shared with Python users of
:class:`SigngateClient`. (A module of its own: ``signgate sign`` does not load the
verifiers' x509 and CMS code.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from signgate.cli.common import client_options, injected_transport, make_client, witness_options
from signgate.cli.files import progress_bar
from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.cli.usage import Choice
from signgate.client.offline_verify import Report
from signgate.client.receipt_check import CheckedReceipt, check_receipt, signature_beside
from signgate.client.verify_file import (
    http_getter,
    verify_raw_file,
    verify_signed_file,
    verify_ssh_file,
)
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput, SigngateError, VerificationFailed
from signgate.formats import registry as formats
from signgate.formats.sshsig import looks_like

DIGESTS = Choice([d.value for d in DigestAlgorithm])
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


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
@click.option("--public-key", type=FILE,
              help="raw and sshsig: just check the signature with this public key (PEM; for "
                   "sshsig also an OpenSSH line, 'signgate key public P/N --ssh'), no chain.")
@click.option("--namespace", metavar="NS",
              help="sshsig: fail unless the signature is for this namespace (ssh-keygen -n).")
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
           public_key: Path | None, namespace: str | None, digest_name: str,
           proof: Path | None,
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

    ssh = fmt == "sshsig" or (fmt is None and looks_like(
        sig_path or file.with_name(file.name + ".sig")))
    if namespace is not None and not ssh:
        raise InvalidInput("--namespace is for SSH signatures (sshsig) only")
    if ssh and ref is not None:
        raise InvalidInput("--key checks raw signatures; for an SSH signature give "
                           "--public-key (signgate key public P/N --ssh) or --certificate "
                           "(signgate key cert P/N)")
    if ssh and public_key is not None:
        _verify_ssh(file, sig_path or file.with_name(file.name + ".sig"), public_key,
                    namespace, as_json, in_log)
        return
    if ref is not None or public_key is not None:
        _verify_raw(file, sig_path, ref, public_key, digest_name, url, token_file, as_json,
                    in_log)
        return
    report = verify_signed_file(
        file, sig_path, fmt, ca_files=ca_files, root=lambda: _server_root(url, token_file),
        certificate_files=cert_files, crl_files=crl_files, server_url=url,
        get=http_getter(injected_transport()), check_revocation=not no_revocation_check,
        allow_untimestamped=allow_untimestamped)
    if report.valid and namespace is not None and report.details.get("namespace") != namespace:
        report = dataclasses.replace(
            report, valid=False, reason=f"the SSH signature is for namespace "
                                        f"{report.details.get('namespace')!r}, not {namespace!r}")
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


def _verify_ssh(file: Path, sig_path: Path, public_key: Path, namespace: str | None,
                as_json: bool, in_log: Callable[[], CheckedReceipt | None]) -> None:
    """Check an SSH signature of FILE with a bare public key (PEM or OpenSSH)."""
    verdict = verify_ssh_file(file, sig_path, public_key, namespace,
                              progress=lambda stage, path: progress_bar(path, stage,
                                                                        not as_json))
    logged = in_log() if verdict.valid else None
    if as_json:
        emit_json(dict(verdict.answer) | ({"log": dataclasses.asdict(logged)} if logged
                                          else {}))
        if not verdict.valid:
            raise SystemExit(8)
        return
    if not verdict.valid:
        raise VerificationFailed(f"INVALID {file.name}: {verdict.reason}")
    click.echo(f"{file.name}: {verdict.reason}")
    _print_logged(logged)


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
