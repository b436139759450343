"""The witness's checks, pure, in the order c2sp.org/tlog-witness gives them: unknown
origin (404) before signature (403) before old size above the size (400) before a stale
old size (409) before the proof (422)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signgate.errors import Conflict, ErrorCode, InvalidInput, NotFound, VerificationFailed
from signgate.transparency.checkpoint import Checkpoint, sign_checkpoint
from signgate.transparency.merkle import EMPTY_ROOT, MemoryHashStore, prove_tree, tree_hash
from signgate.transparency.note import Ed25519NoteSigner
from signgate.transparency.witness_protocol import AddCheckpoint
from signgate.witness.decide import check

ORIGIN = "decide.test/log"


def signer() -> Ed25519NoteSigner:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return Ed25519NoteSigner(ORIGIN, public, key)


LOG, STRANGER = signer(), signer()
STORE = MemoryHashStore()
for i in range(10):
    STORE.append(bytes([i]))


def cp(size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, tree_hash(size, STORE))


def request(old: int, size: int, by: Ed25519NoteSigner = LOG,
            proof: list[bytes] | None = None, root: bytes | None = None) -> AddCheckpoint:
    checkpoint = Checkpoint(ORIGIN, size, root or tree_hash(size, STORE))
    return AddCheckpoint(old, tuple(prove_tree(size, old, STORE) if proof is None else proof),
                         sign_checkpoint(checkpoint, [by]))


def test_accepts_first_growth_same_size_and_consistent_growth() -> None:
    assert check(request(0, 4), [LOG.verifier], None)[0] == cp(4)
    assert check(request(4, 4), [LOG.verifier], cp(4))[0] == cp(4)
    assert check(request(4, 9), [LOG.verifier], cp(4))[0] == cp(9)
    assert check(request(0, 0, root=EMPTY_ROOT), [LOG.verifier], None)[0].size == 0


def test_refusals_in_the_specs_order() -> None:
    bad = request(7, 5, by=STRANGER, proof=[bytes(32)])
    with pytest.raises(NotFound) as nf:
        check(bad, None, cp(4))
    assert nf.value.code == ErrorCode.UNKNOWN_LOG
    with pytest.raises(VerificationFailed) as vf:
        check(bad, [LOG.verifier], cp(4))
    assert vf.value.code == ErrorCode.NOTE_NOT_VERIFIED
    with pytest.raises(InvalidInput):
        check(request(7, 5, proof=[bytes(32)]), [LOG.verifier], cp(4))
    with pytest.raises(Conflict) as conflict:
        check(request(3, 5, proof=[bytes(32)]), [LOG.verifier], cp(4))
    assert conflict.value.details["size"] == 4
    with pytest.raises(Conflict):  # a rollback is a stale old size too
        check(request(3, 3), [LOG.verifier], cp(4))
    with pytest.raises(VerificationFailed) as proof:
        check(request(4, 9, proof=[bytes(32)] * 3), [LOG.verifier], cp(4))
    assert proof.value.code == ErrorCode.BAD_MERKLE_PROOF


def test_forks_and_odd_proofs_are_422() -> None:
    for req, latest in [
        (request(4, 4, root=bytes(32)), cp(4)),  # same size, other root
        (request(4, 4, proof=[bytes(32)]), cp(4)),  # same size with a proof
        (request(0, 4, proof=[bytes(32)]), None),  # a proof from the empty tree
        (request(0, 0, root=bytes(32)), None),  # an empty tree with a root
    ]:
        with pytest.raises(VerificationFailed) as exc:
            check(req, [LOG.verifier], latest)
        assert exc.value.code == ErrorCode.BAD_MERKLE_PROOF
