"""Check a blast-radius file offline (``signgate log check``): every listed signature is an
entry of the log the signed checkpoint commits to, and that entry is an allowed signing
with the key the file is about, of the digest and by the identity the file says."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.transparency.checkpoint import open_checkpoint
from signgate.transparency.cosignature import parse_cosigner_key
from signgate.transparency.merkle import leaf_hash, verify_inclusion
from signgate.transparency.note import NoteVerifier, open_note, parse_verifier_key


@dataclass(frozen=True)
class Checked:
    key: str
    signatures: int
    size: int
    cosigned_by: tuple[str, ...]


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not base64") from None


def check_blast_radius(data: bytes, log_key: str, witnesses: Sequence[str] = (),
                       min_witnesses: int = 0) -> Checked:
    try:
        doc = json.loads(data)
        ref, note, rows = str(doc["key"]), str(doc["checkpoint"]).encode(), doc["signatures"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("not a signgate blast-radius file") from None
    verifier = parse_verifier_key(log_key)
    checkpoint, _ = open_checkpoint(note, [verifier], verifier.name)
    cosigners: list[NoteVerifier] = [parse_cosigner_key(w) for w in witnesses]
    cosigned: tuple[str, ...] = ()
    if cosigners:
        try:
            cosigned = tuple(sorted({s.name for s in open_note(note, cosigners).signatures}))
        except VerificationFailed:
            cosigned = ()
    if len(cosigned) < min_witnesses:
        raise VerificationFailed(f"the checkpoint is cosigned by {len(cosigned)} trusted "
                                 f"witnesses; {min_witnesses} required",
                                 code=ErrorCode.TOO_FEW_COSIGNATURES)
    for n, row in enumerate(rows, 1):
        try:
            index = int(row["log_index"])
            leaf = _b64(row["entry"], f"signature {n}'s entry")
            proof = [_b64(h, f"signature {n}'s proof") for h in row["proof"]]
            entry = json.loads(leaf)
            claims = (row["digest"], row["identity"], row["signature_id"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"signature {n} of the file is malformed") from None
        what = f"signature {n} ({row.get('artifact_name')!r}, log index {index})"
        if not verify_inclusion(index, checkpoint.size, leaf_hash(leaf), proof,
                                checkpoint.root_hash):
            raise VerificationFailed(f"{what}: its entry is not in the log at that index "
                                     f"(the inclusion proof in the tree of size "
                                     f"{checkpoint.size} fails)",
                                     code=ErrorCode.BAD_MERKLE_PROOF)
        details = entry.get("details") or {}
        if (entry.get("action"), entry.get("outcome"), entry.get("key")) != (
                "signature.create", "allowed", ref) or entry.get("seq") != index + 1 or (
                details.get("digest"), entry.get("actor"),
                details.get("signature_id")) != claims:
            raise VerificationFailed(f"{what}: the logged entry is not this signing with "
                                     f"{ref} (digest, identity or signature id differ)")
    return Checked(ref, len(rows), checkpoint.size, cosigned)
