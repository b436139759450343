"""The part of gpg's command line that signing tools use, parsed for ``signgate-gpg``.

gpg's syntax: long options with their value as the next argument or after ``=``
(``--status-fd=2``), clusters of short options whose last may take a value (``-bsau KEY``,
``-sbo -``), ``--`` before file names, ``-`` for stdin or stdout. What the callers pass:

- git: ``--status-fd=2 -bsau KEY`` (data on stdin, armored signature on stdout; git looks
  for ``[GNUPG:] SIG_CREATED`` on fd 2); verification ``--keyid-format=long
  --status-fd=1 --verify SIG -`` (delegated to the real gpg);
- rpm 4.18's ``%__gpg_sign_cmd``: ``--no-verbose --no-armor --no-secmem-warning
  [--digest-algo=ALGO] [%_gpg_sign_cmd_extra_args] -u NAME -sbo OUT -- IN``;
- apt repositories: ``--clearsign -o InRelease Release``, ``-abs -o Release.gpg Release``;
  debsign adds ``--list-options no-show-policy-urls --armor --textmode``, aptly
  ``--no-auto-check-trustdb --batch --keyring K --no-default-keyring``, and scripts
  ``--pinentry-mode loopback --passphrase-fd N`` or ``--passphrase-file F``.

Options that only steer gpg's own keyring, agent or terminal are accepted and have no
effect (``IGNORED_*``); anything else is refused, naming it, rather than silently signing
something other than what the caller asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Options that change what is done or made: long name -> takes a value.
KNOWN: dict[str, bool] = {
    "sign": False, "detach-sign": False, "clearsign": False, "clear-sign": False,
    "verify": False, "verify-files": False, "help": False, "version": False,
    "armor": False, "no-armor": False, "textmode": False, "yes": False, "json": False,
    "local-user": True, "default-key": True, "output": True, "digest-algo": True,
    "status-fd": True, "passphrase-fd": True,
}
# Accepted and without effect here: how gpg finds keys, talks to its agent and terminal,
# prints (signgate-gpg prints one line on failure, nothing else on stderr).
IGNORED_FLAGS = frozenset({
    "batch", "no-batch", "no-tty", "no-verbose", "verbose", "quiet", "no-secmem-warning",
    "no-permission-warning", "no-auto-check-trustdb", "no-greeting", "use-agent",
    "no-use-agent", "no-default-keyring", "no-options", "always-trust", "no-emit-version",
    "no-comments", "utf8-strings", "lock-never", "lock-once", "lock-multiple", "expert",
    "no-expert", "no-random-seed-file", "no-sig-cache", "no-mdc-warning",
    "force-v4-certs", "no-textmode",
})
IGNORED_VALUES = frozenset({
    "homedir", "pinentry-mode", "passphrase", "passphrase-file", "passphrase-repeat",
    "keyid-format", "keyring", "secret-keyring", "primary-keyring", "trust-model",
    "trustdb-name", "list-options", "verify-options", "display-charset", "charset",
    "agent-program", "logger-fd", "logger-file", "log-file", "compress-algo",
    "personal-digest-preferences", "personal-cipher-preferences",
    "personal-compress-preferences", "cert-digest-algo", "options", "keyserver",
    "keyserver-options", "auto-key-locate", "trusted-key",
})
SHORT = {"s": "sign", "b": "detach-sign", "a": "armor", "t": "textmode", "u": "local-user",
         "o": "output", "h": "help", "v": "verbose", "q": "quiet"}


class UsageError(Exception):
    """A command line signgate-gpg does not take (exit 2)."""


@dataclass
class GpgArgs:
    """What a gpg command line asks for (flags by long name, last value of each option)."""

    flags: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        return self.values.get(name)


def _takes_value(name: str) -> bool | None:
    """True or False for an option signgate-gpg knows, None for one it does not."""
    if name in KNOWN:
        return KNOWN[name]
    if name in IGNORED_FLAGS:
        return False
    if name in IGNORED_VALUES:
        return True
    return None


def parse(argv: list[str]) -> GpgArgs:
    """Parse ``argv`` (without the program name); every unknown option is named in one
    UsageError."""
    out = GpgArgs()
    unknown: list[str] = []
    i = 0

    def take(name: str, shown: str) -> str:
        nonlocal i
        i += 1
        if i >= len(argv):
            raise UsageError(f"option {shown} needs a value")
        return argv[i]

    def record(name: str, value: str | None) -> None:
        if value is None:
            out.flags.add(name)
        else:
            out.values[name] = value

    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.files.extend(argv[i + 1:])
            break
        if arg.startswith("--"):
            name, eq, inline = arg[2:].partition("=")
            kind = _takes_value(name)
            if kind is None:
                unknown.append(f"--{name}")
            elif kind:
                record(name, inline if eq else take(name, arg))
            elif eq:
                raise UsageError(f"option --{name} takes no value")
            else:
                record(name, None)
        elif arg.startswith("-") and arg != "-":
            for j, char in enumerate(arg[1:], start=1):
                long = SHORT.get(char)
                if long is None:
                    unknown.append(f"-{char}")
                    continue
                if _takes_value(long):
                    rest = arg[j + 1:]
                    record(long, rest if rest else take(long, f"-{char}"))
                    break
                record(long, None)
        else:
            out.files.append(arg)
        i += 1
    if unknown:
        raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} (signgate-gpg speaks the signing part of "
                         "gpg's command line: signgate-gpg --help)")
    return out


def wants_verify(argv: list[str]) -> bool:
    """Is this a verification (``--verify``, ``--verify-files``) before any ``--``? Those
    are handed to the real gpg whole."""
    for arg in argv:
        if arg == "--":
            return False
        if arg in ("--verify", "--verify-files"):
            return True
    return False
