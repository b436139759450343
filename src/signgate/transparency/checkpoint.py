"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed tree head of a log.

The note text is exactly::

    <origin>
    <tree size, ASCII decimal, no leading zeroes>
    <root hash, base64 of 32 bytes>
    [extension lines, each non-empty]

signed as a note (``note.py``) by the log's key, whose name should be the origin, and
cosigned by witnesses (``cosignature.py``). Parsing is strict, so one tree head has one
text: a verifier that compares two checkpoints' texts compares their tree heads.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from signgate.errors import ErrorCode, InvalidInput
from signgate.transparency.merkle import HASH_SIZE, MAX_SIZE
from signgate.transparency.note import (
    Note,
    NoteSigner,
    NoteVerifier,
    Signature,
    check_text,
    open_note,
    sign_note,
)

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and root hash, and optional extensions."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise _malformed("the origin must be one non-empty line")
        if not 0 <= self.size <= MAX_SIZE:
            raise _malformed(f"tree size {self.size} out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise _malformed("the root hash must be 32 bytes")
        if any(not e or "\n" in e for e in self.extensions):
            raise _malformed("extension lines must be single non-empty lines")

    @property
    def text(self) -> str:
        """The note text (with its final newline)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(),
                 *self.extensions]
        text = "".join(line + "\n" for line in lines)
        check_text(text)
        return text


def _malformed(why: str) -> InvalidInput:
    return InvalidInput(f"malformed checkpoint: {why}", code=ErrorCode.MALFORMED_NOTE)


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint of a note text (strict: three lines at least, each ending in a
    newline, a canonical decimal size and base64 hash, non-empty extension lines)."""
    if not text.endswith("\n"):
        raise _malformed("the text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise _malformed("fewer than three lines (origin, size, root hash)")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size) or int(size) > MAX_SIZE:
        raise _malformed(f"tree size {size!r} is not a decimal without leading zeroes")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except (ValueError, binascii.Error):
        raise _malformed("the root hash is not base64") from None
    if base64.b64encode(root_hash).decode() != root:
        raise _malformed("the root hash is not canonical base64")
    checkpoint = Checkpoint(origin, int(size), root_hash, tuple(extensions))
    if checkpoint.text != text:  # e.g. a control character in a line
        raise _malformed("not in canonical form")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner],
                    keep: Sequence[Signature] = ()) -> bytes:
    """The signed note of ``checkpoint`` (the log key first; ``keep``: cosignatures to
    carry along)."""
    return sign_note(checkpoint.text, signers, keep)


def open_checkpoint(msg: bytes, verifiers: Sequence[NoteVerifier],
                    origin: str | None = None) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint with ``verifiers`` (the log's keys) and parse it; with
    ``origin``, refuse a checkpoint of another log."""
    note = open_note(msg, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise InvalidInput(f"the checkpoint is of log {checkpoint.origin!r}, not {origin!r}",
                           code=ErrorCode.MALFORMED_NOTE)
    return checkpoint, note
