"""``signgate-ssh-keygen``: ``ssh-keygen -Y sign`` through signgate, for git's
``gpg.ssh.program`` (``gpg.format=ssh``).

git (gpg-interface.c, ``sign_buffer_ssh``) runs ``PROGRAM -Y sign -n git -f KEYFILE [-U]
BUFFERFILE`` and reads ``BUFFERFILE.sig``; KEYFILE is ``user.signingkey``, or a temporary
file holding the literal after ``key::`` (then ``-U``). Here KEYFILE is the OpenSSH public
key line of a signgate key (``signgate key public P/N --ssh``): FILE is hashed here, signed
by that key on the server, and ``FILE.sig`` written; no private key is anywhere near.

Every other use (``-Y verify``, ``-Y find-principals``, ``-Y check-novalidate``, ``-l``,
...) is the real ``ssh-keygen``'s ($SIGNGATE_SSH_KEYGEN, else the first on $PATH), run with
the same arguments. The server and token come from $SIGNGATE_URL and $SIGNGATE_TOKEN (or
$SIGNGATE_TOKEN_FILE, or a CI job's $SIGNGATE_OIDC_TOKEN), as for ``signgate``.
"""

from __future__ import annotations

import contextlib
import getopt
import os
import shutil
import sys
import tempfile
from pathlib import Path

from signgate.errors import ConfigError, InvalidInput, SigngateError

PROGRAM = "signgate-ssh-keygen"
# ssh-keygen's options (OpenSSH 9.x ssh-keygen.c getopt string): parsed only to find the
# verb; anything but -Y sign goes to the real program untouched.
OPTSTRING = "ABHKLQUXceghiklopquvyC:D:E:F:I:M:N:O:P:R:V:Y:Z:a:b:f:g:m:n:r:s:t:w:z:"
# What -Y sign takes here: -f -n -O hashalg= and the flags that do not change the output.
SIGN_FLAGS = {"-Y", "-f", "-n", "-O", "-U", "-q", "-v"}
USAGE = (f"usage: {PROGRAM} -Y sign -f KEY.pub -n NAMESPACE [-O hashalg=sha512|sha256] "
         "[-U] [-q] [FILE ...]   (any other use runs ssh-keygen itself)")


def real_ssh_keygen() -> str:
    """The ssh-keygen to delegate to (never this program itself)."""
    found = os.environ.get("SIGNGATE_SSH_KEYGEN") or shutil.which("ssh-keygen")
    if not found:
        raise ConfigError("ssh-keygen not found: install openssh-client or set "
                          "SIGNGATE_SSH_KEYGEN")
    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if me is not None and Path(found).resolve() == me:
        raise ConfigError("SIGNGATE_SSH_KEYGEN names signgate-ssh-keygen itself: point it at "
                          "OpenSSH's ssh-keygen")
    return found


def _sign_args(argv: list[str]) -> tuple[dict[str, str], list[str], list[str]] | None:
    """(options, -O values, files) when ``argv`` is a ``-Y sign``; None otherwise."""
    try:
        opts, files = getopt.getopt(argv, OPTSTRING)
    except getopt.GetoptError:
        return None
    verbs = [v for o, v in opts if o == "-Y"]
    if verbs != ["sign"]:
        return None
    unknown = sorted({o for o, _ in opts} - SIGN_FLAGS)
    if unknown:
        raise InvalidInput(f"-Y sign through signgate takes no {', '.join(unknown)}: {USAGE}")
    return ({o: v for o, v in opts if o != "-O"}, [v for o, v in opts if o == "-O"], files)


def _digest(values: list[str]) -> str:
    digest = "sha512"
    for value in values:
        name, _, arg = value.partition("=")
        if name != "hashalg" or arg not in ("sha256", "sha512"):
            raise InvalidInput(f"-O {value}: signgate-ssh-keygen takes -O hashalg=sha512 or "
                               "hashalg=sha256 only")
        digest = arg
    return digest


def sign(options: dict[str, str], option_values: list[str], files: list[str]) -> None:
    from signgate.cli.common import make_signing_client
    from signgate.client.answers import DEFAULT_URL
    from signgate.client.ssh_signing import sign_like_ssh_keygen
    from signgate.crypto.algorithms import DigestAlgorithm
    from signgate.formats.sshsig import parse_openssh_line

    if "-f" not in options:
        raise InvalidInput(f"-Y sign needs -f KEY.pub (signgate key public P/N --ssh): {USAGE}")
    if "-n" not in options:
        raise InvalidInput(f"-Y sign needs -n NAMESPACE: {USAGE}")
    digest = DigestAlgorithm(_digest(option_values))
    keyfile = Path(options["-f"])
    try:
        wanted = parse_openssh_line(keyfile.read_text("utf-8", "replace"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {keyfile}: {exc.strerror}") from exc
    except InvalidInput as exc:
        raise InvalidInput(f"{keyfile}: {exc} (signgate signs with the public key line of "
                           "a signgate key: signgate key public P/N --ssh)",
                           code=exc.code) from None
    token_file = os.environ.get("SIGNGATE_TOKEN_FILE")
    url = os.environ.get("SIGNGATE_URL") or DEFAULT_URL
    quiet = "-q" in options
    with make_signing_client(url, Path(token_file) if token_file else None) as client:
        if not files:  # standard input to standard output, as ssh-keygen
            with tempfile.TemporaryDirectory(prefix="signgate-ssh-") as tmp:
                data = Path(tmp) / "stdin"
                data.write_bytes(sys.stdin.buffer.read())
                sign_like_ssh_keygen(client, data, wanted, options["-n"], digest,
                                     data.with_name("stdin.sig"), artifact_name="(stdin)")
                sys.stdout.buffer.write(data.with_name("stdin.sig").read_bytes())
            return
        for name in files:
            path = Path(name)
            if not path.is_file():
                raise InvalidInput(f"cannot read {path}: no such file")
            out = path.with_name(path.name + ".sig")
            ref = sign_like_ssh_keygen(client, path, wanted, options["-n"], digest, out)
            if not quiet:
                print(f"Signed {path} with signgate key {ref}; wrote {out}", file=sys.stderr)


HELP = f"""{USAGE}

ssh-keygen -Y sign through signgate, for git's gpg.ssh.program (gpg.format=ssh):
KEY.pub is the OpenSSH line of a signgate key ('signgate key public P/N --ssh'); FILE is
hashed here (sha512 unless -O hashalg=sha256), signed by that key on the signgate server
and FILE.sig written (no FILE: standard input to standard output). -U (git's key::
literal) and -q are accepted. Server and token: $SIGNGATE_URL, $SIGNGATE_TOKEN or
$SIGNGATE_TOKEN_FILE (or a CI job's $SIGNGATE_OIDC_TOKEN).

Any other use (-Y verify, -Y find-principals, -Y check-novalidate, -l, ...) runs the real
ssh-keygen ($SIGNGATE_SSH_KEYGEN, else the first on $PATH) with the same arguments.

  git config gpg.format ssh
  git config gpg.ssh.program signgate-ssh-keygen
  git config user.signingkey ~/signgate.pub"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--help"]:  # ssh-keygen has no --help; -h is one of its options
        with contextlib.suppress(BrokenPipeError):
            print(HELP, flush=True)
        return
    try:
        parsed = _sign_args(args)
        if parsed is None:
            real = real_ssh_keygen()
            os.execv(real, [real, *args])  # noqa: S606 (ssh-keygen's own arguments)
        sign(*parsed)
    except SigngateError as exc:
        from signgate.cli.output import exit_code_for

        print(f"{PROGRAM}: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
