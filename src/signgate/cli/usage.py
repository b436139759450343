"""Usage errors as one line: ``signgate: <what was wrong>``, with "did you mean" for a
mistyped command or choice.

Click prints a usage error as a usage block, a hint and the message on several lines;
scripts and people reading CI logs get one line starting ``signgate:``, like every other
error (exit code 2, as before). ``--help`` is not an error and prints as it always did.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import click

HINT = re.compile(r"\s*\(?Did you mean")


def suggest(word: str, candidates: list[str]) -> str:
    """`` Did you mean 'x'?`` for the closest candidate to a mistyped ``word``, or ""."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class Choice(click.Choice):  # type: ignore[type-arg]
    """A click choice whose refusal suggests the closest choices."""

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        message: str = super().get_invalid_choice_message(value, ctx)
        return message + suggest(str(value), [str(c) for c in self.choices])


def _command_suggestion(exc: click.UsageError) -> str:
    """Click suggests subcommands of plain groups itself; the top-level group loads its
    commands lazily, so its suggestions are made here."""
    found = re.match(r"No such command '(.+)'\.", exc.message)
    if found is None or exc.ctx is None or not isinstance(exc.ctx.command, click.Group):
        return ""
    return suggest(found.group(1), exc.ctx.command.list_commands(exc.ctx))


def one_line(exc: click.ClickException) -> str:
    """The error as one line starting ``signgate:``."""
    message = exc.format_message()
    if isinstance(exc, click.UsageError) and not HINT.search(message):
        message += _command_suggestion(exc)
    message = HINT.sub(" Did you mean", message).replace("?)", "?")
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return "signgate: " + " ".join(message.split())
