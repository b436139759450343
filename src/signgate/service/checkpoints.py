"""Signing the log's checkpoint at the end of every write transaction that added entries.

The checkpoint (C2SP tlog-checkpoint: origin, tree size, root hash) is signed as a C2SP
signed note by the log key, an Ed25519 key in the key store like every other signgate key,
inside the same transaction as the entries it covers: a committed entry is always covered
by a committed signed checkpoint, never more than one batch behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from signgate.audit.tree import LogTree
from signgate.clock import Clock
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.crypto.signatures import load_public_key
from signgate.errors import KeyStoreError
from signgate.keystore.base import KeyRef
from signgate.keystore.registry import KeyStoreRegistry
from signgate.store.models import LogCheckpoint, LogKey, table
from signgate.transparency.checkpoint import Checkpoint, sign_checkpoint
from signgate.transparency.note import Ed25519NoteSigner

INSERT_CHECKPOINT = insert(table(LogCheckpoint))


@dataclass(frozen=True)
class _StoreSigner:
    """Ed25519 over the message, by the key store (a RawSigner for transparency.note)."""

    keystores: KeyStoreRegistry
    ref: KeyRef

    def sign(self, message: bytes) -> bytes:
        # Pure Ed25519 signs the bytes given; the digest algorithm is not used for it.
        return self.keystores.sign(self.ref, DigestAlgorithm.SHA512, message)


def note_signer(keystores: KeyStoreRegistry, key: LogKey) -> Ed25519NoteSigner:
    public = load_public_key(key.public_key_pem)
    if not isinstance(public, Ed25519PublicKey):
        raise KeyStoreError(f"the log key of {key.origin} is not an Ed25519 key")
    return Ed25519NoteSigner(key.origin, public.public_bytes_raw(),
                             _StoreSigner(keystores, KeyRef(key.key_uri, KeyAlgorithm.ED25519)))


class Checkpointer:
    """Signs and stores a checkpoint for a transaction's tree; holds the log key's signer
    once it has been read (a log key never changes)."""

    def __init__(self, keystores: KeyStoreRegistry, clock: Clock) -> None:
        self._keystores = keystores
        self._clock = clock
        self._signer: Ed25519NoteSigner | None = None

    def signer(self, session: Session) -> Ed25519NoteSigner | None:
        if self._signer is None:
            key = session.execute(select(LogKey).order_by(LogKey.id)).scalars().first()
            if key is None:
                return None  # before 'init' made the log key: the tree grows, unsigned
            self._signer = note_signer(self._keystores, key)
        return self._signer

    def sign(self, session: Session, tree: LogTree) -> bytes | None:
        """Sign and store the checkpoint of ``tree`` (its current size) in ``session``."""
        signer = self.signer(session)
        if signer is None:
            return None
        root = tree.root()
        note = sign_checkpoint(Checkpoint(signer.name, tree.size, root), [signer])
        session.connection().execute(INSERT_CHECKPOINT, {
            "size": tree.size, "root_hash": root, "note": note.decode(),
            "created_at": self._clock.now(), "cosignatures": 0})
        return note
