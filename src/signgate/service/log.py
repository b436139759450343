"""The transparency log as its readers see it: the latest signed checkpoint, inclusion and
consistency proofs, and the log's public key.

These are public, as in Rekor and Go's checksum database: a checkpoint and a proof reveal
hashes only, and whoever holds a receipt or monitors the log must be able to check it
without an account. The entries themselves keep the audit log's scoping
(``GET /api/v1/audit``: entry ``seq`` is leaf ``seq - 1``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from signgate.errors import InvalidInput, NotFound
from signgate.service.checkpoints import note_signer
from signgate.service.context import Context
from signgate.service.records.log import latest_checkpoint, log_key, log_tree


@dataclass(frozen=True)
class LogKeyView:
    origin: str
    verifier_key: str  # the C2SP signed-note verifier key string
    public_key_pem: str


@dataclass(frozen=True)
class ProofView:
    size: int
    hashes: list[str]  # base64, leaf's sibling (or the old tree's side) first
    index: int | None = None  # inclusion proofs
    old: int | None = None  # consistency proofs


def public_key(ctx: Context) -> LogKeyView:
    with ctx.db.read() as session:
        key = log_key(session)
    verifier = note_signer(ctx.keystores, key).verifier
    return LogKeyView(key.origin, verifier.verifier_key, key.public_key_pem)


def checkpoint(ctx: Context) -> bytes:
    """The latest signed checkpoint (with the witnesses' cosignatures it has)."""
    with ctx.db.read() as session:
        return latest_checkpoint(session).note.encode()


def _check_size(size: int, tree_size: int) -> None:
    if not 1 <= size <= tree_size:
        raise NotFound(f"the log has no tree of size {size} (its size is {tree_size})")


def inclusion(ctx: Context, index: int, size: int) -> ProofView:
    with ctx.db.read(snapshot=True) as session:
        tree = log_tree(ctx, session)
        _check_size(size, tree.size)
        if not 0 <= index < size:
            raise InvalidInput(f"entry {index} is not in the tree of size {size}")
        hashes = tree.inclusion(index, size)
    return ProofView(size, [base64.b64encode(h).decode() for h in hashes], index=index)


def consistency(ctx: Context, old: int, new: int) -> ProofView:
    with ctx.db.read(snapshot=True) as session:
        tree = log_tree(ctx, session)
        _check_size(new, tree.size)
        if not 1 <= old <= new:
            raise InvalidInput(f"no consistency proof from size {old} to size {new}")
        hashes = tree.consistency(old, new)
    return ProofView(new, [base64.b64encode(h).decode() for h in hashes], old=old)
