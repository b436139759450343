"""The checks of an add-checkpoint request, in the order c2sp.org/tlog-witness gives them.

Pure: given the request, the keys the witness trusts for the log and the latest checkpoint
it cosigned for it, either the checkpoint to cosign or the refusal, as an error whose class
and code say which answer the spec prescribes (see ``app.STATUS``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from signgate.errors import Conflict, ErrorCode, InvalidInput, NotFound, VerificationFailed
from signgate.transparency.checkpoint import Checkpoint, parse_checkpoint
from signgate.transparency.merkle import EMPTY_ROOT, verify_consistency
from signgate.transparency.note import Note, NoteVerifier, open_note, split_note
from signgate.transparency.witness_protocol import AddCheckpoint


def origin_of(request: AddCheckpoint) -> Checkpoint:
    """The checkpoint of the request, parsed but not verified (to find the log's keys)."""
    text, _ = split_note(request.checkpoint)
    return parse_checkpoint(text)


def check(request: AddCheckpoint, log_keys: Sequence[NoteVerifier] | None,
          latest: Checkpoint | None) -> tuple[Checkpoint, Note]:
    """The checkpoint to cosign and its opened note, or the refusal.

    404 (NotFound) an unknown origin; 403 (VerificationFailed, note_not_verified) no valid
    signature of a trusted log key; 400 (InvalidInput) an old size above the checkpoint's;
    409 (Conflict, ``details["size"]``) an old size that is not the latest cosigned one,
    which also refuses every rollback; 422 (VerificationFailed, bad_merkle_proof) a proof
    that does not verify from the latest cosigned root, or a fork at the same size.
    """
    checkpoint = origin_of(request)
    if log_keys is None:
        raise NotFound(f"this witness does not know the log {checkpoint.origin!r}",
                       code=ErrorCode.UNKNOWN_LOG)
    note = open_note(request.checkpoint, log_keys)
    old = request.old_size
    if old > checkpoint.size:
        raise InvalidInput(f"old size {old} is above the checkpoint's size {checkpoint.size}")
    latest_size = latest.size if latest is not None else 0
    if old != latest_size:
        raise Conflict(f"old size {old} is not the size this witness last cosigned for "
                       f"{checkpoint.origin!r}, {latest_size}",
                       code=ErrorCode.WITNESS_SIZE_MISMATCH, size=latest_size)
    if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        raise _bad_proof("an empty tree whose root hash is not SHA-256 of nothing")
    if old == 0:
        if request.proof:
            raise _bad_proof("a consistency proof from the empty tree must be empty")
        return checkpoint, note
    assert latest is not None  # old == latest_size > 0
    if old == checkpoint.size:
        if request.proof or not hmac.compare_digest(latest.root_hash, checkpoint.root_hash):
            raise _bad_proof(f"a different root hash at size {old}: the log forked")
        return checkpoint, note
    if not verify_consistency(old, checkpoint.size, latest.root_hash, checkpoint.root_hash,
                              request.proof):
        raise _bad_proof(f"the checkpoint of size {checkpoint.size} is not consistent with "
                         f"the one of size {old} this witness cosigned")
    return checkpoint, note


def _bad_proof(why: str) -> VerificationFailed:
    return VerificationFailed(why, code=ErrorCode.BAD_MERKLE_PROOF)


def origin_hash(origin: str) -> str:
    """The monitoring API's name of a log: SHA-256 of its origin, lowercase hex."""
    return hashlib.sha256(origin.encode()).hexdigest()
