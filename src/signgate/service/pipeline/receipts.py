"""The receipts' log proofs, and the witness policy, once a signing batch committed.

Inside the batch's transaction (:func:`prove`), each signature's audit entry gets its
inclusion proof in the tree of the batch's final size: the size of the checkpoint that
``Context.transaction`` signs at the commit, so one checkpoint serves the whole batch.
Proofs read O(log n) stored hashes, most from the shared ``HashCache``.

After the commit (:func:`deliver`), the configured witnesses are asked to cosign that
checkpoint (``log_witnesses``), and ``log_witness_policy`` decides when fewer than
``log_witness_quorum`` of them did: 'refuse' withholds every signature of the batch (503
``witness_unavailable``, one refusal entry each, in a transaction of its own: the
signatures stay on the record as made but never delivered); 'catch-up' delivers them with
the cosignatures gathered so far (``log_cosignatures``) and leaves the background
catch-up asking for the newest checkpoint. Each result then carries its C2SP
tlog-proof@v1 text, with the entry itself as the proof's ``extra`` so that it verifies
offline, alone (``signgate log verify-receipt``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from signgate.audit.log import AuditWriter
from signgate.audit.tree import LogTree
from signgate.errors import ErrorCode, Unavailable
from signgate.service.context import Context, refusal_record
from signgate.service.sign_request import SignOutcome, SignRequest
from signgate.service.views import Receipt, SignResult
from signgate.transparency.note import split_note
from signgate.transparency.proof import TlogProof, format_proofs

log = logging.getLogger("signgate.sign")


@dataclass(frozen=True)
class Inclusion:
    """One entry's leaf data and inclusion proof, in the tree of ``size`` leaves."""

    index: int
    leaf: bytes
    hashes: tuple[bytes, ...]
    size: int


def prove(writer: AuditWriter, outcomes: Sequence[SignOutcome | Exception],
          ) -> dict[int, Inclusion]:
    """The inclusion of each signature of ``outcomes`` (by position) in the writer's tree
    as it is now: call it after the batch's last append, inside its transaction."""
    size = writer.tree.size
    signed = {at: outcome.receipt.audit_seq for at, outcome in enumerate(outcomes)
              if isinstance(outcome, SignResult)}
    paths = writer.tree.inclusions([seq - 1 for seq in signed.values()], size)
    return {at: Inclusion(seq - 1, writer.leaves[seq], tuple(path), size)
            for (at, seq), path in zip(signed.items(), paths, strict=True)}


def reprove(ctx: Context, proofs: dict[int, Inclusion], size: int) -> dict[int, Inclusion]:
    """The same entries' inclusion in the log's tree of ``size`` (a later checkpoint)."""
    with ctx.db.read(snapshot=True) as session:
        tree = LogTree(session.connection(), size, ctx.log_hashes)
        paths = tree.inclusions([i.index for i in proofs.values()], size)
        return {at: Inclusion(i.index, i.leaf, tuple(path), size)
                for (at, i), path in zip(proofs.items(), paths, strict=True)}


def deliver(ctx: Context, requests: Sequence[SignRequest],
            outcomes: list[SignOutcome | Exception], proofs: dict[int, Inclusion],
            checkpoint: bytes | None) -> list[SignOutcome | Exception]:
    """The batch's outcomes as the callers get them, with ``checkpoint`` (the note signed
    at the commit; None before the log has a key) witnessed as the policy says."""
    if checkpoint is None or not proofs:
        return outcomes
    witnessing = ctx.witnessing
    cosignatures = 0
    if witnessing.enabled:
        size = next(iter(proofs.values())).size
        cosigned = witnessing.cosign(size, checkpoint)
        checkpoint, cosignatures = cosigned.note, len(cosigned.witnesses)
        if cosigned.size != size:  # a later checkpoint was witnessed: prove in its tree
            proofs = reprove(ctx, proofs, cosigned.size)
        if cosignatures < witnessing.quorum:
            why = "; ".join(cosigned.problems) or "no cosignature"
            if witnessing.refuse:
                return _withhold(ctx, requests, outcomes, cosignatures, witnessing.quorum, why)
            log.warning("checkpoint %d cosigned by %d of %d witnesses required (%s): "
                        "delivering and catching up", size, cosignatures, witnessing.quorum,
                        why)
            witnessing.catch_up()
    split_note(checkpoint)  # well-formed, checked once for the batch's proofs
    texts = format_proofs(checkpoint, [
        TlogProof(i.index, i.hashes, checkpoint, extra=i.leaf) for i in proofs.values()])
    delivered = list(outcomes)
    for (at, inclusion), text in zip(proofs.items(), texts, strict=True):
        result = outcomes[at]
        assert isinstance(result, SignResult)
        # Built directly: dataclasses.replace costs more than the rest of this loop.
        receipt = Receipt(**{**vars(result.receipt), "log_index": inclusion.index,
                             "log_size": inclusion.size, "log_cosignatures": cosignatures})
        delivered[at] = SignResult(**{**vars(result), "receipt": receipt,
                                      "log_proof": text.decode("utf-8")})
    return delivered


def _withhold(ctx: Context, requests: Sequence[SignRequest],
              outcomes: list[SignOutcome | Exception], cosignatures: int, quorum: int,
              why: str) -> list[SignOutcome | Exception]:
    """'refuse': every signature of the batch becomes a 503, each refusal recorded."""
    error = Unavailable(
        f"signed and recorded, but the log's checkpoint could not be witnessed "
        f"({cosignatures} of {quorum} required cosignatures: {why}): the signature is "
        "withheld", code=ErrorCode.WITNESS_UNAVAILABLE)
    withheld = [(request, result) for request, result in zip(requests, outcomes, strict=True)
                if isinstance(result, SignResult)]
    try:
        with ctx.transaction() as session:
            for request, result in withheld:
                entry = refusal_record(request.caller, request.target(),
                                       result.receipt.identity, error)
                entry.details["signature_id"] = result.receipt.signature_id
                entry.details["withheld_seq"] = result.receipt.audit_seq
                ctx.record(session, entry)
    except Exception:  # the signatures are withheld all the same
        log.exception("recording %d withheld signatures failed", len(withheld))
    return [error if isinstance(result, SignResult) else result for result in outcomes]
