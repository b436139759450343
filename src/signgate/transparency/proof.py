"""C2SP tlog-proof@v1 (c2sp.org/tlog-proof): an offline-verifiable receipt.

::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <zero-based entry index>
    <inclusion proof hash, base64>      (zero or more, leaf's sibling first)
    <blank line>
    <the signed checkpoint, verbatim, with the log's signature and cosignatures>

Verifying it needs what the proof does not carry: the leaf hash (from the entry that the
verifier rebuilds from the artifact), the log's key for the expected origin, and the
witness keys the verifier trusts with how many of them must have cosigned.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.transparency.checkpoint import Checkpoint, open_checkpoint
from signgate.transparency.merkle import HASH_SIZE, MAX_PROOF_HASHES, check_record
from signgate.transparency.note import (
    INVALID_SIGNATURE,
    MAX_NOTE_SIZE,
    NoteVerifier,
    open_note,
    split_header,
    split_note,
)

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True)
class TlogProof:
    """Entry ``index``'s inclusion proof in the tree of the signed ``checkpoint`` note."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, verbatim
    extra: bytes | None = None


@dataclass(frozen=True)
class VerifiedProof:
    """What a verified proof established: the checkpoint, the log key and the witnesses
    (names of the trusted cosigners whose cosignatures verified)."""

    checkpoint: Checkpoint
    index: int
    cosigned_by: tuple[str, ...]


def _malformed(why: str) -> InvalidInput:
    return InvalidInput(f"malformed tlog proof: {why}", code=ErrorCode.MALFORMED_NOTE)


def format_proof(proof: TlogProof) -> bytes:
    """The text form of ``proof``."""
    split_note(proof.checkpoint)  # a well-formed note, or nothing is written
    return format_proofs(proof.checkpoint, [proof])[0]


def format_proofs(checkpoint: bytes, proofs: Sequence[TlogProof]) -> list[bytes]:
    """The text forms of ``proofs``, all in the tree of the one signed note
    ``checkpoint`` (checked by the caller, once: a batch of receipts shares it)."""
    out = []
    for proof in proofs:
        if proof.checkpoint is not checkpoint and proof.checkpoint != checkpoint:
            raise ValueError("the proofs are not all in the given checkpoint")
        lines = [HEADER]
        if proof.extra is not None:
            lines.append("extra " + base64.b64encode(proof.extra).decode())
        lines.append(f"index {proof.index}")
        lines += [base64.b64encode(h).decode() for h in proof.hashes]
        out.append(("".join(line + "\n" for line in lines) + "\n").encode() + checkpoint)
    return out


def parse_proof(data: bytes) -> TlogProof:
    """Parse the text form (strict; the checkpoint is not verified here)."""
    lines, checkpoint = split_header(data, MAX_NOTE_SIZE + 16 * 1024, "tlog proof")
    if lines[0] != HEADER:
        raise _malformed(f"the first line is not {HEADER}")
    at, extra = 1, None
    if at < len(lines) and lines[at].startswith("extra "):
        extra = _b64(lines[at][len("extra "):], "the extra data")
        at += 1
    match = _INDEX.fullmatch(lines[at]) if at < len(lines) else None
    if match is None:
        raise _malformed("no 'index N' line (a decimal without leading zeroes)")
    hashes = tuple(_b64(line, "a proof hash") for line in lines[at + 1:])
    if any(len(h) != HASH_SIZE for h in hashes) or len(hashes) > MAX_PROOF_HASHES:
        raise _malformed("a proof line is not a base64 SHA-256 hash, or too many")
    split_note(checkpoint)
    return TlogProof(int(match[1]), hashes, checkpoint, extra)


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise _malformed(f"{what} is not base64") from None
    if not text or base64.b64encode(raw).decode() != text:
        raise _malformed(f"{what} is not canonical base64")
    return raw


def verify_proof(proof: TlogProof, leaf_hash: bytes, log_keys: Sequence[NoteVerifier],
                 origin: str, witnesses: Sequence[NoteVerifier] = (),
                 min_cosignatures: int = 0) -> VerifiedProof:
    """Check ``proof`` as c2sp.org/tlog-proof says: the checkpoint is of ``origin`` and
    signed by one of ``log_keys``; the cosignatures of the trusted ``witnesses`` verify
    and there are at least ``min_cosignatures`` of them; the inclusion proof binds
    ``leaf_hash`` at the proof's index to the checkpoint's root hash."""
    checkpoint, _ = open_checkpoint(proof.checkpoint, log_keys, origin)
    cosigned: tuple[str, ...] = ()
    if witnesses:
        try:
            note = open_note(proof.checkpoint, witnesses)
        except VerificationFailed as exc:
            if exc.details.get("reason") == INVALID_SIGNATURE:
                raise  # a trusted witness's cosignature that fails: a forged line
            note = None
        if note is not None:
            cosigned = tuple(sorted({s.name for s in note.signatures}))
    if len(cosigned) < min_cosignatures:
        raise VerificationFailed(
            f"the checkpoint is cosigned by {len(cosigned)} trusted witness(es) "
            f"({', '.join(cosigned) or 'none'}); {min_cosignatures} required",
            code=ErrorCode.TOO_FEW_COSIGNATURES)
    check_record(list(proof.hashes), checkpoint.size, checkpoint.root_hash, proof.index,
                 leaf_hash)
    return VerifiedProof(checkpoint, proof.index, cosigned)
