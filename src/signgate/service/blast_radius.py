"""What a key signed since a time, with the log's proof of each: the list to act on, and
to send to customers, after a key is compromised (``signgate key blast-radius``).

Every signature of the key at or after ``since`` is listed with who asked for it and its
audit entry (the leaf's bytes), each with an inclusion proof in the tree of the newest
checkpoint, all read in one snapshot. Whoever receives the file checks it with
``signgate log check FILE --log-key VKEY`` (or any RFC 6962 library): each entry is in the
log the checkpoint commits to, and names this key. Since the checkpoint is signed (and
cosigned by witnesses), the list cannot later be shortened without that showing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, entry_bytes, time_text
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.checkpoints import note_signer
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.keys import split_ref, visible_key
from signgate.service.records.log import latest_checkpoint, log_key, log_tree
from signgate.store.models import AuditEntry, SignatureRecord

MAX_SIGNATURES = 100_000
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BlastRadiusEntry:
    signed_at: datetime
    artifact_name: str
    digest_algorithm: str
    digest: str
    format: str
    identity: str
    key_version: int
    signature_id: str
    log_index: int
    entry: str  # base64 of the leaf: the audit entry's canonical bytes
    proof: list[str]  # base64 inclusion proof in the checkpoint's tree


@dataclass(frozen=True)
class BlastRadius:
    key: str
    since: datetime
    origin: str
    log_key: str  # the note verifier key the checkpoint is signed with
    checkpoint: str  # the signed checkpoint note the proofs are against
    signatures: list[BlastRadiusEntry]


def blast_radius(ctx: Context, caller: Caller, ref: str, since: datetime,
                 progress: Progress | None = None) -> BlastRadius:
    """``progress`` (signatures proven, signatures found) is told as the proofs are made,
    first once the caller is allowed (0 of 0): a hundred thousand take a while."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> BlastRadius:
        d = decide.may_read_audit_of(actor, project, ref)
        require(d.allowed, d.reason)
        visible_key(session, actor, project, name)  # exists, and the actor may see it
        if progress is not None:
            progress(0, 0)
        checkpoint = latest_checkpoint(session)
        signer = note_signer(ctx.keystores, log_key(session))
        tree = log_tree(ctx, session)
        # The key's signing entries (ix_audit_key_seq), each with its signature row.
        rows = session.execute(
            select(AuditEntry)
            .join(SignatureRecord, SignatureRecord.audit_seq == AuditEntry.seq)
            .where(AuditEntry.key_ref == ref, AuditEntry.action == Action.SIGN.value,
                   AuditEntry.time >= since, AuditEntry.seq <= checkpoint.size)
            .order_by(AuditEntry.seq).limit(MAX_SIGNATURES)).scalars().all()
        found = []
        for n, e in enumerate(rows):
            if progress is not None and n % 1000 == 0:
                progress(n, len(rows))
            leaf = entry_bytes(e.seq, time_text(e.time), e.actor, e.action, e.outcome,
                               e.subject, e.project, e.key_ref, e.details, e.prev_hash)
            proof = tree.inclusion(e.seq - 1, checkpoint.size)
            d = json.loads(e.details)  # what the leaf says, which the proof covers
            found.append(BlastRadiusEntry(
                e.time, e.subject, d["digest_algorithm"], d["digest"], d["format"], e.actor,
                d["key_version"], d["signature_id"], e.seq - 1,
                base64.b64encode(leaf).decode(),
                [base64.b64encode(h).decode() for h in proof]))
        if progress is not None:
            progress(len(rows), len(rows))
        return BlastRadius(ref, since, signer.name, signer.verifier.verifier_key,
                           checkpoint.note, found)

    return ctx.read(caller, Target(Action.AUDIT_READ, f"blast radius of {ref}", project, ref),
                    run, snapshot=True)

