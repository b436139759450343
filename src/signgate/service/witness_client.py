"""Ask a witness to cosign a checkpoint (C2SP tlog-witness ``add-checkpoint``).

What a log calls after it signs a checkpoint, once per configured witness: the request is
built and the answer checked by ``transparency.witness_protocol``; only cosignatures that
verify with the witness's key are returned. Each refusal of the spec comes back as the
error of the family that says what to do next:

- 409 Conflict (``witness_size_mismatch``, ``details["size"]`` = the witness's size):
  send the consistency proof from that size instead;
- 422 VerificationFailed (``bad_merkle_proof``): the witness saw a history this one does
  not extend: a fork, to be investigated, never retried;
- 403 VerificationFailed (``note_not_verified``): the witness does not trust the log key;
- 404 NotFound (``unknown_log``): the witness is not configured for this origin;
- Unavailable: no answer (network, 5xx).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from signgate.errors import (
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    SigngateError,
    Unavailable,
    VerificationFailed,
)
from signgate.transparency.note import NoteVerifier, Signature
from signgate.transparency.witness_protocol import (
    PATH,
    format_add_checkpoint,
    parse_size,
    verify_cosignatures,
)


def add_checkpoint(url: str, witness: NoteVerifier, old_size: int, proof: Sequence[bytes],
                   checkpoint: bytes, *, http: httpx.Client | None = None,
                   timeout: float = 10.0) -> list[Signature]:
    """POST ``checkpoint`` (a signed note) with the consistency ``proof`` from
    ``old_size`` to the witness at ``url`` (its submission prefix) and return its verified
    cosignatures (at least one)."""
    body = format_add_checkpoint(old_size, proof, checkpoint)
    target = url.rstrip("/") + PATH
    try:
        if http is None:
            with httpx.Client(timeout=timeout) as client:
                answer = client.post(target, content=body)
        else:
            answer = http.post(target, content=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise Unavailable(f"witness {witness.name} at {url} did not answer: {exc}") from exc
    who = f"witness {witness.name}"
    status, text = answer.status_code, answer.text.strip()[:300]
    if status == 200:
        try:
            return verify_cosignatures(checkpoint, answer.content, [witness])
        except SigngateError as exc:
            raise VerificationFailed(f"{who} answered without a valid cosignature: {exc}",
                                     code=ErrorCode.NOTE_NOT_VERIFIED) from exc
    if status == 409:
        size = parse_size(answer.content)
        raise Conflict(f"{who} last cosigned size {size}, not {old_size}",
                       code=ErrorCode.WITNESS_SIZE_MISMATCH, size=size)
    if status == 422:
        raise VerificationFailed(f"{who} refused the checkpoint as inconsistent with what "
                                 f"it cosigned: {text}", code=ErrorCode.BAD_MERKLE_PROOF)
    if status == 403:
        raise VerificationFailed(f"{who} does not accept the log's signature: {text}",
                                 code=ErrorCode.NOTE_NOT_VERIFIED)
    if status == 404:
        raise NotFound(f"{who} does not know this log: {text}", code=ErrorCode.UNKNOWN_LOG)
    if status == 400:
        raise InvalidInput(f"{who} refused the request as malformed: {text}")
    raise Unavailable(f"{who} answered HTTP {status}: {text}")
