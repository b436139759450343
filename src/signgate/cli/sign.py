"""signgate sign | verify"""

from __future__ import annotations

import base64
from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.files import hash_file, write_atomic
from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import InvalidInput, VerificationFailed

DIGESTS = click.Choice([d.value for d in DigestAlgorithm])
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise InvalidInput(f"--meta takes KEY=VALUE, got {pair!r}")
        out[k] = v
    return out


@click.command("sign")
@click.argument("file", type=FILE)
@click.option("--key", "ref", required=True, metavar="PROJECT/NAME", help="Key to sign with.")
@click.option("--format", "fmt", type=click.Choice(["raw", "cms"]), default="raw",
              show_default=True,
              help="raw: the signature value (DER for ECDSA, as 'openssl dgst -verify' reads), "
                   "written to FILE.sig; cms: detached CMS SignedData (DER) with the "
                   "certificate chain and a timestamp, written to FILE.p7s.")
@click.option("--digest", "digest_name", type=DIGESTS, default="sha256", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the signature (default: FILE.sig).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE",
              help="Metadata recorded with the signature (repeatable), e.g. commit=abc123.")
@click.option("--name", "artifact_name", help="Artifact name to record (default: file name).")
@click.option("--no-progress", is_flag=True, help="No progress bar while hashing.")
@click.option("--timestamp", is_flag=True,
              help="Add an RFC 3161 timestamp over the signature, written to OUT.tsr "
                   "(keys with a require-timestamp policy always get one).")
@client_options
@json_option
@handles_errors
def sign(file: Path, ref: str, fmt: str, digest_name: str, output: Path | None,
         meta: tuple[str, ...], artifact_name: str | None, no_progress: bool,
         timestamp: bool, url: str, token_file: Path | None, as_json: bool) -> None:
    """Sign FILE with a key held by signgate. The file is hashed here; only its digest is
    sent. Writes the signature to FILE.sig; --json prints the receipt."""
    metadata = _metadata(meta)
    algorithm = DigestAlgorithm(digest_name)
    digest = hash_file(file, algorithm, progress=not no_progress and not as_json)
    with make_client(url, token_file) as c:
        result = c.sign_digest(ref, algorithm.value, digest.hex(), artifact_name or file.name,
                               metadata, timestamp, fmt)
    out = output or file.with_name(file.name + (".p7s" if fmt == "cms" else ".sig"))
    write_atomic(out, base64.b64decode(result["signature"]))
    receipt = result["receipt"]
    extra: dict[str, str] = {"signature_file": str(out), "format": fmt}
    if result.get("certificate"):  # one-time key: the only place its certificate lives
        pem_path = out.with_name(out.name + ".pem")
        write_atomic(pem_path, result["certificate"].encode("ascii"))
        extra["certificate_file"] = str(pem_path)
    if result.get("timestamp") and fmt == "raw":  # CMS carries its token inside
        tsr = out.with_name(out.name + ".tsr")
        write_atomic(tsr, base64.b64decode(result["timestamp"]))
        extra["timestamp_file"] = str(tsr)
    if as_json:
        emit_json(receipt | extra)
    else:
        stamped = (f", timestamped {receipt['timestamp_time']} -> {extra['timestamp_file']}"
                   if "timestamp_file" in extra else "")
        click.echo(f"signed {file.name} with {receipt['key']} version {receipt['key_version']} "
                   f"-> {out} (signature {receipt['signature_id']}){stamped}")


@click.command("verify")
@click.argument("file", type=FILE)
@click.option("--signature", "sig_path", required=True, type=FILE, help="Signature file.")
@click.option("--key", "ref", metavar="PROJECT/NAME",
              help="Verify online against this key's versions and revocation state.")
@click.option("--public-key", type=FILE, help="Verify offline with this PEM public key.")
@click.option("--digest", "digest_name", type=DIGESTS, default="sha256", show_default=True)
@client_options
@json_option
@handles_errors
def verify(file: Path, sig_path: Path, ref: str | None, public_key: Path | None,
           digest_name: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Check a raw signature of FILE: online with --key (says which version signed and
    whether the key was compromised first) or offline with --public-key."""
    if (ref is None) == (public_key is None):
        raise InvalidInput("give exactly one of --key PROJECT/NAME or --public-key PEM")
    algorithm = DigestAlgorithm(digest_name)
    digest = hash_file(file, algorithm, progress=not as_json)
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
