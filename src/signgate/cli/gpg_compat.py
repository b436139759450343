"""``signgate-gpg``: a gpg-compatible signer for the tools that run ``gpg`` themselves (git,
rpmsign, apt repository scripts), signing through signgate.

It takes gpg's signing command line (cli/gpg_options.py), signs with the signgate key that
``-u`` names (client/gpg_sign.py: only a digest leaves the machine, the signing is
authorized and audited like any other) and answers as gpg does: the signature on stdout or
in the output file, written whole or not at all, and on ``--status-fd`` the
``[GNUPG:] KEY_CONSIDERED``, ``BEGIN_SIGNING`` and ``SIG_CREATED`` lines that git parses.
A refusal is one line on stderr, ``[GNUPG:] FAILURE sign <code>`` on the status fd and the
exit code of ``signgate`` (cli/output.py), never a traceback. Verification
(``--verify``, ``--verify-files``) is not signgate's to answer: the whole command line goes
to the real gpg (``$SIGNGATE_GPG_VERIFIER``, else the first ``gpg`` on PATH that is not
this program), so ``git verify-commit`` works with ``gpg.program=signgate-gpg``.

The server and token are the CLI's: ``$SIGNGATE_URL``, ``$SIGNGATE_TOKEN`` (or a file
named by ``$SIGNGATE_TOKEN_FILE``), or a CI job's ``$SIGNGATE_OIDC_TOKEN``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from signgate import __version__
from signgate.cli.gpg_options import GpgArgs, UsageError, parse, wants_verify
from signgate.client.sign_file import SigningPending
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput, NotFound, SigngateError

PROG = "signgate-gpg"
EXIT_USAGE = 2
EXIT_PENDING = 11  # as `signgate sign`: the signing waits for approvals
# gpg's error values on FAILURE lines: source GPG (2) << 24 | code (libgpg-error).
GPG_ERR_GENERAL = (2 << 24) | 1
GPG_ERR_NO_SECKEY = (2 << 24) | 17
INV_SGNR_NO_SECRET_KEY = 9
DELEGATED = "SIGNGATE_GPG_DELEGATED"  # set for the gpg that --verify is handed to
DIGESTS = {"SHA256": DigestAlgorithm.SHA256, "SHA384": DigestAlgorithm.SHA384,
           "SHA512": DigestAlgorithm.SHA512}

HELP = f"""\
Usage: {PROG} [OPTIONS] -b|--detach-sign|--clearsign [FILE]

A gpg-compatible signer: signs with a key held by signgate, for tools that run gpg
(git, rpmsign, apt repository scripts). Only a digest leaves this machine; signgate
checks your grant, signs and records the signing in its audit log.

Commands:
  -b, --detach-sign        detached signature (git: -bsau KEY; rpm: -sbo OUT)
  --clearsign              cleartext-signed message (apt's InRelease)
  --verify, --verify-files handed, with every argument, to the real gpg
                           ($SIGNGATE_GPG_VERIFIER, else gpg on PATH)
  -h, --help / --version

Options:
  -u, --local-user KEY     the signgate key: PROJECT/NAME, or the OpenPGP fingerprint
                           or long key ID (0x optional) of its current version
                           (default: --default-key, else $SIGNGATE_GPG_KEY)
  -a, --armor / --no-armor ASCII-armored or binary detached signature (default binary)
  -o, --output FILE        write here (- is stdout); default: stdout for stdin input,
                           FILE.asc (armored, cleartext) or FILE.sig next to FILE
  --digest-algo ALGO       SHA256, SHA384 or SHA512 (default SHA256; SHA384 for P-384)
  --status-fd N            gpg status lines ([GNUPG:] SIG_CREATED ...) on fd N
  --passphrase-fd N        one line is read from fd N and ignored (no passphrase here)
  --yes                    overwrite an existing output file
  --json                   print signgate's receipt (log index, ...) on stdout
                           (needs -o FILE)
  gpg's keyring, agent and terminal options (--batch, --no-tty, --homedir,
  --pinentry-mode, --keyring, --no-verbose, --quiet, ...) are accepted and ignored;
  any other option is refused.

Environment: SIGNGATE_URL, SIGNGATE_TOKEN or SIGNGATE_TOKEN_FILE (or a CI job's
SIGNGATE_OIDC_TOKEN), SIGNGATE_GPG_KEY, SIGNGATE_GPG_WAIT (seconds to wait for
approvals), SIGNGATE_ARTIFACT_NAME (the name recorded in the audit log; default the
file's name, or "stdin").
Exit codes: 0 signed, 2 usage, then as signgate: 3 authentication, 4 denied, 5 not
found, 6 conflict, 7 invalid input, 9 unavailable, 10 configuration, 11 pending.
"""


class Status:
    """gpg's status lines on the file descriptor ``--status-fd`` names (none without)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def __call__(self, line: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, f"[GNUPG:] {line}\n".encode())
        except OSError as exc:
            raise InvalidInput(f"cannot write status lines to fd {self.fd}: "
                               f"{exc.strerror}") from exc


def main() -> None:
    """The console script."""
    sys.exit(run(sys.argv[1:]))


def run(argv: list[str]) -> int:
    """Do what ``argv`` (gpg's arguments, without the program name) asks; the exit code."""
    if wants_verify(argv):
        return _verify_with_gpg(argv)
    status = Status(None)
    try:
        args = parse(argv)
        if "help" in args.flags:
            sys.stdout.write(HELP)
            return 0
        if "version" in args.flags:
            sys.stdout.write(f"{PROG} (signgate) {__version__}\n")
            return 0
        status = Status(_fd(args, "status-fd"))
        return _sign(args, status)
    except UsageError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except SigningPending as pending:
        _say(f"{pending} (SIGNGATE_GPG_WAIT=SECONDS waits for it)")
        _failed(status, None)
        return EXIT_PENDING
    except SigngateError as exc:
        from signgate.cli.output import exit_code_for

        _say(str(exc))
        _failed(status, exc)
        return exit_code_for(exc)
    except OSError as exc:  # stdin or stdout gone (a closed pipe), a full disk
        _say(f"input or output failed: {exc.strerror or exc}")
        _failed(status, None)
        return 1


def _say(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _failed(status: Status, exc: SigngateError | None) -> None:
    try:
        if isinstance(exc, NotFound):
            status("FAILURE sign " + str(GPG_ERR_NO_SECKEY))
        else:
            status("FAILURE sign " + str(GPG_ERR_GENERAL))
    except SigngateError:
        pass  # the status fd itself failed: the line on stderr and the exit code remain


def _fd(args: GpgArgs, name: str) -> int | None:
    value = args.value(name)
    if value is None:
        return None
    if not value.isdigit():
        raise UsageError(f"--{name} takes a file descriptor number, not {value!r}")
    return int(value)


def _verify_with_gpg(argv: list[str]) -> int:
    """Replace this process with the real gpg, given the same arguments. Never this
    program again (were it installed as ``gpg`` too): not a candidate that resolves to it,
    and not twice in a row (``SIGNGATE_GPG_DELEGATED``)."""
    if os.environ.get(DELEGATED):
        _say("verification was handed to a gpg that is signgate-gpg again: set "
             "SIGNGATE_GPG_VERIFIER to the real gpg")
        return EXIT_USAGE
    called = shutil.which(sys.argv[0]) if sys.argv and sys.argv[0] else None
    me = {Path(p).resolve() for p in (called, sys.argv[0] if sys.argv else None) if p}
    wanted = os.environ.get("SIGNGATE_GPG_VERIFIER")
    candidates = [wanted] if wanted else [
        str(Path(d) / "gpg") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if found and Path(found).resolve() not in me:
            os.environ[DELEGATED] = "1"
            os.execv(found, [found, *argv])  # noqa: S606 (the real gpg, same arguments)
    _say("verification is done by gpg, and no gpg was found (install gnupg, or set "
         "SIGNGATE_GPG_VERIFIER to its path)")
    return EXIT_USAGE


def _mode(args: GpgArgs) -> tuple[bool, bool]:
    """(cleartext, armored) for the command asked."""
    clear = bool({"clearsign", "clear-sign"} & args.flags)
    detach = "detach-sign" in args.flags
    if clear and detach:
        raise UsageError("--clearsign and --detach-sign are two commands: give one")
    if not clear and not detach:
        if "sign" in args.flags:
            raise UsageError("-s alone makes an inline signed message, which signgate-gpg "
                             "does not make: add -b (detached) or use --clearsign")
        raise UsageError("no command: give -b (detached signature) or --clearsign "
                         "(signgate-gpg --help)")
    if detach and "textmode" in args.flags:
        raise UsageError("--textmode detached signatures are not made: sign the file as "
                         "binary (without --textmode), or use --clearsign")
    return clear, clear or ("armor" in args.flags and "no-armor" not in args.flags)


def _digest(args: GpgArgs) -> DigestAlgorithm | None:
    name = args.value("digest-algo")
    if name is None:
        return None
    found = DIGESTS.get(name.upper().replace("-", ""))
    if found is None:
        raise InvalidInput(f"--digest-algo {name}: signgate signs with SHA256, SHA384 or "
                           "SHA512", code=ErrorCode.UNKNOWN_DIGEST_ALGORITHM)
    return found


def _output(args: GpgArgs, source: str | None, armored: bool) -> Path | None:
    """Where the result goes: a file, or None for stdout."""
    out = args.value("output")
    if out is None:
        if source is None:
            return None
        return Path(source + (".asc" if armored else ".sig"))
    if out == "-":
        return None
    return Path(out)


def _skip_passphrase(fd: int | None) -> None:
    """Read one line from ``fd`` and forget it, as gpg reads a passphrase there."""
    if fd is None:
        return
    try:
        while (byte := os.read(fd, 1)) and byte != b"\n":
            pass
    except OSError as exc:
        raise UsageError(f"--passphrase-fd {fd}: {exc.strerror}") from exc


@contextmanager
def _input(source: str | None, copy: bool) -> Iterator[Path]:
    """The data to sign as a file: FILE itself, or a copy in a private temporary directory
    (removed afterwards) of stdin, or of FILE when ``copy`` (a cleartext message is read
    twice, to sign and to show: both reads must see the same bytes). A key that signs only
    what signgate scanned gets this file uploaded."""
    if source is not None and not copy:
        yield Path(source)
        return
    with tempfile.TemporaryDirectory(prefix="signgate-gpg-") as tmp:
        spooled = Path(tmp) / "data"
        with spooled.open("wb") as f:
            if source is None:
                with os.fdopen(0, "rb", closefd=False) as stdin:
                    shutil.copyfileobj(stdin, f)
            else:
                try:
                    with Path(source).open("rb") as original:
                        shutil.copyfileobj(original, f)
                except OSError as exc:
                    raise InvalidInput(f"cannot read {source}: {exc.strerror}") from exc
        yield spooled


def _sign(args: GpgArgs, status: Status) -> int:
    from signgate.cli.common import make_signing_client
    from signgate.client.answers import DEFAULT_URL
    from signgate.client.gpg_sign import resolve_key, sign_data
    from signgate.formats.files import write_atomic
    from signgate.formats.openpgp.cleartext import cleartext_message

    clear, armored = _mode(args)
    if len(args.files) > 1:
        raise UsageError(f"one file at a time, not {len(args.files)}: "
                         f"{' '.join(args.files)}")
    source = args.files[0] if args.files and args.files[0] != "-" else None
    output = _output(args, source, armored)
    if "json" in args.flags and output is None:
        raise UsageError("--json prints the receipt on stdout, where the signature goes: "
                         "give -o FILE")
    if output is not None and output.exists() and "yes" not in args.flags:
        raise InvalidInput(f"{output} exists: give --yes to overwrite it")
    name = (args.value("local-user") or args.value("default-key")
            or os.environ.get("SIGNGATE_GPG_KEY"))
    if not name:
        raise UsageError("no key: give -u KEY (PROJECT/NAME or its OpenPGP fingerprint), "
                         "or set SIGNGATE_GPG_KEY")
    digest = _digest(args)
    _skip_passphrase(_fd(args, "passphrase-fd"))
    wait_env = os.environ.get("SIGNGATE_GPG_WAIT")
    try:
        wait = float(wait_env) if wait_env else None
    except ValueError:
        raise UsageError(f"SIGNGATE_GPG_WAIT {wait_env!r} is not a number of seconds") \
            from None
    token_file = os.environ.get("SIGNGATE_TOKEN_FILE")
    with make_signing_client(os.environ.get("SIGNGATE_URL") or DEFAULT_URL,
                             Path(token_file) if token_file else None) as api, \
            _input(source, copy=clear) as path:
        try:
            ref = resolve_key(api, name)
        except NotFound:
            status(f"INV_SGNR {INV_SGNR_NO_SECRET_KEY} {name}")
            raise
        artifact = (os.environ.get("SIGNGATE_ARTIFACT_NAME")
                    or (Path(source).name if source else "stdin"))
        sig = sign_data(api, ref, path, text=clear, digest=digest, artifact_name=artifact,
                        metadata={"tool": PROG, "mode": "cleartext" if clear else "detached"},
                        wait=wait)
        if clear:
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
            result = cleartext_message(text, _named(sig.hash_algorithm), sig.armored)
        else:
            result = sig.armored if armored else sig.packet
    status(f"KEY_CONSIDERED {sig.fingerprint} 0")
    status(f"BEGIN_SIGNING H{sig.hash_algorithm}")
    if output is None:
        with os.fdopen(1, "wb", closefd=False) as stdout:
            stdout.write(result)
    else:
        write_atomic(output, result)
    status(f"SIG_CREATED {'C' if clear else 'D'} {sig.pk_algorithm} {sig.hash_algorithm} "
           f"{sig.sig_class:02X} {sig.created} {sig.fingerprint}")
    if "json" in args.flags:
        sys.stdout.write(json.dumps({**sig.receipt, "key": ref, "fingerprint": sig.fingerprint,
                                     "signature_file": str(output)}, indent=2,
                                    sort_keys=True, default=str) + "\n")
    return 0


def _named(hash_id: int) -> DigestAlgorithm:
    from signgate.formats.openpgp import DIGESTS as BY_ID

    return BY_ID[hash_id]
