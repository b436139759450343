"""signgate sign | verify"""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import httpx
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.serialization import Encoding

from signgate.cli.common import client_options, make_client
from signgate.cli.files import progress_bar, write_atomic
from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.cli.usage import Choice
from signgate.client.client import SigngateClient
from signgate.client.offline_verify import (
    Report,
    default_signature,
    detect_format,
    load_crls,
    server_fallback,
    sigstore_trust,
    verify_file,
)
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import ErrorCode, InvalidInput, SigngateError, VerificationFailed
from signgate.formats import registry as formats
from signgate.formats.base import PublicKeyInfo
from signgate.formats.files import hash_path

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


def _engines(scan: dict[str, Any]) -> str:
    return ", ".join(f"{e['engine']} {e['engine_version']}".strip()
                     for e in scan.get("engines", [])) or "no engine"


def _key_info(c: SigngateClient, ref: str, one_time: bool) -> PublicKeyInfo:
    """The key's current version, for formats whose signed data names the key."""
    if one_time:
        raise InvalidInput(f"{ref} is a one-time key: its key pair does not exist until it "
                           "signs, and this format must name the key before that; use "
                           "another format or key", code=ErrorCode.UNSUPPORTED_FORMAT)
    view = c.public_key(ref)
    return PublicKeyInfo(
        ref=ref, version=int(view["version"]), algorithm=KeyAlgorithm(view["algorithm"]),
        rsa_padding=RsaPadding(view["rsa_padding"]) if view.get("rsa_padding") else None,
        public_key_pem=str(view["public_key_pem"]),
        created_at=datetime.fromisoformat(view["created_at"]),
    )


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
@click.option("--timestamp/--no-timestamp", default=True, show_default=True,
              help="Add an RFC 3161 timestamp over the signature: inside the result for cms, "
                   "authenticode, jar and sigstore, else beside it as OUT.tsr. Keys with a "
                   "require-timestamp policy always get one.")
@client_options
@json_option
@handles_errors
def sign(file: Path, ref: str, fmt: str, digest_name: str, output: Path | None,
         meta: tuple[str, ...], artifact_name: str | None, no_progress: bool, upload: bool,
         timestamp: bool, url: str, token_file: Path | None, as_json: bool) -> None:
    """Sign FILE with a key held by signgate. FILE is read here and only a digest is sent
    (for authenticode and jar, the digest of what those formats sign), unless the key
    requires a scan: then FILE is uploaded, scanned and hashed by signgate. The private key
    never leaves the server. --json prints the receipt."""
    metadata = _metadata(meta)
    algorithm = DigestAlgorithm(digest_name)
    side = formats.client(fmt)
    show = not no_progress and not as_json
    with make_client(url, token_file) as c:
        # Refused here exactly as the signing would be, before any hashing or uploading.
        policy = c.sign_policy(ref, artifact_name or file.name)
        upload = upload or bool(policy["scan_required"])
        with progress_bar(file, "hashing", show) as progress:
            prepared = side.prepare(file, algorithm, progress,
                                    lambda: _key_info(c, ref, bool(policy["one_time"])))
        name = artifact_name or file.name
        request: dict[str, Any] = {"artifact_name": name, "format": fmt,
                   "digest_algorithm": prepared.digest_algorithm.value,
                   "digest": prepared.digest.hex(), "metadata": metadata,
                   "params": prepared.params, "timestamp": timestamp}
        if upload:
            with progress_bar(file, "uploading", show) as progress:
                result = c.sign_upload(ref, file, request, progress)
            scan = result["receipt"].get("scan") or {}
            if not as_json:
                click.echo(f"scanned {file.name}: {scan.get('verdict', '?')} "
                           f"({_engines(scan)})", err=True)
        else:
            result = c.sign_digest(ref, prepared.digest_algorithm.value,
                                   prepared.digest.hex(), name, metadata, timestamp, fmt,
                                   prepared.params)
    out = output or (file if side.embedded else file.with_name(file.name + side.suffix))
    side.finish(file, prepared, base64.b64decode(result["signature"]), out)
    receipt = result["receipt"]
    extra: dict[str, str] = {"signature_file": str(out), "format": fmt}
    if result.get("certificate"):  # one-time key: the only place its certificate lives
        pem_path = out.with_name(out.name + ".pem")
        write_atomic(pem_path, result["certificate"].encode("ascii"))
        extra["certificate_file"] = str(pem_path)
    if result.get("timestamp") and not formats.builder(fmt).embeds_timestamp:
        tsr = out.with_name(out.name + ".tsr")
        write_atomic(tsr, base64.b64decode(result["timestamp"]))
        extra["timestamp_file"] = str(tsr)
    if as_json:
        emit_json(receipt | extra)
    else:
        stamped = ""
        if receipt.get("timestamp_time"):
            where = extra.get("timestamp_file", "embedded")
            stamped = f", timestamped {receipt['timestamp_time']} ({where})"
        click.echo(f"signed {file.name} with {receipt['key']} version "
                   f"{receipt['key_version']} -> {out} ({fmt}, signature "
                   f"{receipt['signature_id']}){stamped}")


def _pem_certificates(paths: tuple[Path, ...]) -> tuple[bytes, ...]:
    out: list[bytes] = []
    for path in paths:
        try:
            data = path.read_bytes()
            certs = (cx509.load_pem_x509_certificates(data) if b"-----BEGIN" in data
                     else [cx509.load_der_x509_certificate(data)])
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        except ValueError:
            raise InvalidInput(f"{path} holds no certificate (PEM or DER)") from None
        out += [c.public_bytes(Encoding.DER) for c in certs]
    return tuple(out)


def _anchors(ca_files: tuple[Path, ...], url: str, token_file: Path | None
             ) -> tuple[list[bytes], list[bytes]]:
    """Trust anchors, and intermediates that came with them (a Sigstore trusted root)."""
    if ca_files:
        anchors: list[bytes] = []
        intermediates: list[bytes] = []
        for path in ca_files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
            if data.lstrip().startswith(b"{"):
                more, between = sigstore_trust(data)
                anchors += more
                intermediates += between
            else:
                anchors += _pem_certificates((path,))
        return anchors, intermediates
    try:
        with make_client(url, token_file) as c:
            pem = c.ca_certificate()["pem"]
    except SigngateError as exc:
        raise InvalidInput(f"no trust anchor: give --ca ROOT.pem (from 'signgate ca cert'); "
                           f"fetching signgate's root failed: {exc}") from None
    return [cx509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)], []


def _http_get(url: str) -> bytes:
    try:
        response = httpx.get(url, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise OSError(str(exc)) from exc
    if response.status_code != 200:
        raise OSError(f"{url}: HTTP {response.status_code}")
    return response.content


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
@client_options
@json_option
@handles_errors
def verify(file: Path, sig_path: Path | None, fmt: str | None, ca_files: tuple[Path, ...],
           cert_files: tuple[Path, ...], crl_files: tuple[Path, ...],
           no_revocation_check: bool, allow_untimestamped: bool, ref: str | None,
           public_key: Path | None, digest_name: str, url: str, token_file: Path | None,
           as_json: bool) -> None:
    """Verify a signature of FILE in any format: the signature itself, its certificate chain
    to the trust anchor (codeSigning), its RFC 3161 timestamp and revocation (CRLs). Says
    which key version signed and when. Exit code 8 when it is not valid."""
    if ref is not None or public_key is not None:
        _verify_raw(file, sig_path, ref, public_key, digest_name, url, token_file, as_json)
        return
    fmt = fmt or detect_format(file, sig_path)
    signature = sig_path or default_signature(file, fmt)
    if signature is not None and not signature.exists():
        raise InvalidInput(f"no signature {signature}; give --signature")
    crls = []
    for path in crl_files:
        try:
            crls += load_crls(path.read_bytes())
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        except InvalidInput:
            raise InvalidInput(f"{path} is not a CRL (DER or PEM)") from None
    anchors, intermediates = _anchors(ca_files, url, token_file)
    report = verify_file(
        file, signature, fmt, anchors, (*_pem_certificates(cert_files), *intermediates), crls,
        server_fallback(url, _http_get),
        check_revocation=not no_revocation_check, allow_untimestamped=allow_untimestamped)
    if report.valid and allow_untimestamped and report.timestamped_at is None:
        click.echo(f"signgate: warning: {file.name} has no timestamp; its certificate was "
                   "judged at the current time (--insecure-allow-untimestamped)", err=True)
    if as_json:
        emit_json({k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v)
                   for k, v in dataclasses.asdict(report).items()})
        if not report.valid:
            raise SystemExit(8)
        return
    if not report.valid:
        raise VerificationFailed(f"INVALID {file.name}: {report.reason}")
    _print_report(file, report)


def _verify_raw(file: Path, sig_path: Path | None, ref: str | None, public_key: Path | None,
                digest_name: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Check a raw signature of FILE: online with --key (says which version signed and
    whether the key was compromised first) or with a bare --public-key."""
    if ref is not None and public_key is not None:
        raise InvalidInput("give at most one of --key PROJECT/NAME or --public-key PEM")
    if sig_path is None:
        raise InvalidInput("--signature is required with --key or --public-key")
    algorithm = DigestAlgorithm(digest_name)
    with progress_bar(file, "hashing", not as_json) as progress:
        digest = hash_path(file, algorithm, progress)
    signature = sig_path.read_bytes()
    if ref is not None:
        with make_client(url, token_file) as c:
            result = c.verify_digest(ref, algorithm.value, digest.hex(),
                                     base64.b64encode(signature).decode())
        valid, reason = bool(result["valid"]), str(result["reason"])
    else:
        assert public_key is not None
        key = load_public_key(public_key.read_bytes())
        valid = verify_digest(key, None, algorithm, digest, signature)
        reason = (f"valid: signed by the holder of {public_key.name}" if valid
                  else f"the signature does not match {public_key.name} for this file")
        result = {"valid": valid, "reason": reason, "public_key": str(public_key)}
    if as_json:
        emit_json(result)
        if not valid:
            raise SystemExit(8)
        return
    if not valid:
        raise VerificationFailed(f"INVALID {file.name}: {reason}")
    click.echo(f"{file.name}: {reason}")
