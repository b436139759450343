"""The bodies of C2SP tlog-witness ``POST <prefix>/add-checkpoint`` (c2sp.org/tlog-witness).

Request::

    old <size of the checkpoint the client believes the witness last cosigned>
    <consistency proof hash, base64>        (0 to 63 lines)
    <blank line>
    <the signed checkpoint>

Answers: 200 with one or more cosignature lines (``— <witness> <base64>``); 409 with the
witness's latest cosigned size in decimal and a newline, as ``text/x.tlog.size``; 400
malformed, 403 no trusted log signature (or a failing one), 404 unknown origin, 422 a
consistency proof that does not verify. Both the witness and its clients use this module,
so they cannot disagree on the format.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from signgate.errors import ErrorCode, InvalidInput
from signgate.transparency.merkle import HASH_SIZE
from signgate.transparency.note import (
    MAX_NOTE_SIZE,
    SIG_PREFIX,
    NoteVerifier,
    Signature,
    open_note,
    split_header,
    split_note,
)

PATH = "/add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY = MAX_NOTE_SIZE + (MAX_PROOF_LINES + 1) * 64
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")
_SIZE = re.compile(r"(0|[1-9][0-9]{0,18})\n")


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the old size, the consistency proof from it, and the
    signed checkpoint note (verbatim)."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


def _malformed(why: str) -> InvalidInput:
    return InvalidInput(f"malformed add-checkpoint request: {why}",
                        code=ErrorCode.MALFORMED_NOTE)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """The request body asking a witness to cosign ``checkpoint`` (a signed note), given
    the consistency ``proof`` from ``old_size``."""
    if old_size < 0 or len(proof) > MAX_PROOF_LINES:
        raise _malformed("a negative old size or more than 63 proof hashes")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("".join(line + "\n" for line in lines) + "\n").encode() + checkpoint


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body (strict); the checkpoint's signatures are not checked here."""
    lines, checkpoint = split_header(body, MAX_BODY, "add-checkpoint request")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise _malformed("the first line is not 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _malformed(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            raw = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            raise _malformed("a proof line is not base64") from None
        if len(raw) != HASH_SIZE or base64.b64encode(raw).decode() != line:
            raise _malformed("a proof line is not the base64 of a SHA-256 hash")
        proof.append(raw)
    split_note(checkpoint)
    return AddCheckpoint(int(match[1]), tuple(proof), checkpoint)


def format_cosignatures(signatures: Sequence[Signature]) -> bytes:
    """A 200 answer's body: the cosignature lines."""
    return "".join(s.line for s in signatures).encode()


def verify_cosignatures(checkpoint: bytes, body: bytes,
                        witnesses: Sequence[NoteVerifier]) -> list[Signature]:
    """The cosignatures of a 200 answer to ``checkpoint`` that verify with the trusted
    ``witnesses`` (lines of unknown keys are ignored, as the spec says). Raises if the
    body is not signature lines, or if a trusted witness's line does not verify."""
    text = body.decode("utf-8", errors="replace")
    if not text or not text.endswith("\n") or \
            any(not line.startswith(SIG_PREFIX) for line in text[:-1].split("\n")):
        raise _malformed("a witness answer that is not note signature lines")
    note = open_note(checkpoint + body, witnesses)
    return list(note.signatures)


def format_size(size: int) -> bytes:
    """A 409 answer's body (content type ``text/x.tlog.size``)."""
    return f"{size}\n".encode()


def parse_size(body: bytes) -> int:
    """The witness's latest cosigned size from a 409 answer's body."""
    match = _SIZE.fullmatch(body.decode("ascii", errors="replace"))
    if match is None:
        raise _malformed("a 409 answer whose body is not a decimal size and a newline")
    return int(match[1])


def add_signatures(note: bytes, signatures: Sequence[Signature]) -> bytes:
    """``note`` with ``signatures`` appended (those it carries already are skipped): how a
    log adds the cosignatures it collected to its checkpoint."""
    _, existing = split_note(note)
    new = [s for s in signatures if s not in existing]
    return note + "".join(s.line for s in new).encode()
