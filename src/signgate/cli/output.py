"""Rendering and the one place where errors become exit codes.

Exit codes: 0 ok, 1 other error, 2 usage, 3 authentication failed, 4 denied, 5 not found,
6 conflict, 7 invalid input, 8 verification failed, 9 server or database unavailable,
10 configuration error, 11 pending: a signing waits for approvals (``sign`` without
``--wait``, or its ``--timeout`` ran out).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import click

from signgate import errors

EXIT_CODES: list[tuple[type[errors.SigngateError], int]] = [
    (errors.AuthenticationFailed, 3),
    (errors.Denied, 4),
    (errors.NotFound, 5),
    (errors.Conflict, 6),
    (errors.InvalidInput, 7),
    (errors.VerificationFailed, 8),
    (errors.Unavailable, 9),
    (errors.KeyStoreUnavailable, 9),
    (errors.ConfigError, 10),
]

EXIT_PENDING = 11  # not an error: the signing request waits for its approvals

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(exc: errors.SigngateError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def handles_errors(fn: F) -> F:
    """Turn a SigngateError into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.SigngateError as exc:
            click.echo(f"signgate: {exc}", err=True)
            sys.exit(exit_code_for(exc))

    return cast(F, wrapper)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON instead of text.")(fn)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


class Progress:
    """How far a long server operation is (the server streams it), on stderr: stdout keeps
    the result alone. Quiet for the first ``quiet_for`` seconds (a quick answer prints
    nothing), then once a second at most, on one line when stderr is a terminal."""

    def __init__(self, label: str, unit: str, quiet_for: float = 2.0) -> None:
        self.label, self.unit, self.quiet_for = label, unit, quiet_for
        self.started = self.last = time.monotonic()
        self.printed = False
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total > 0
        if total == 0 or now - self.started < self.quiet_for or (
                self.printed and now - self.last < 1.0 and not finished):
            return
        self.last, self.printed = now, True
        end = "\r" if self.tty and not finished else "\n"
        print(f"{self.label}: {done:,} of {total:,} {self.unit}", end=end, file=sys.stderr,
              flush=True)

