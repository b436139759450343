"""signgate's Merkle trees and proofs checked by an implementation signgate did not
write: pymerkle (PyPI), which builds RFC 9162 trees (0x00/0x01 prefixes, SHA-256) and
verifies proofs with its own code.

pymerkle's inclusion path is the leaf hash followed by RFC 9162's audit path, so its
verifier judges signgate's inclusion proofs as they are, against the roots pymerkle
computed itself.
"""

from __future__ import annotations

import random

import pymerkle  # type: ignore[import-untyped]
import pytest

from signgate.transparency.merkle import (
    MemoryHashStore,
    leaf_hash,
    prove_record,
    prove_tree,
    tree_hash,
    verify_consistency,
)

SIZE = 300


_rng = random.Random(6962)
entries = [_rng.randbytes(_rng.randrange(0, 64)) for _ in range(SIZE)]


@pytest.fixture(scope="module")
def trees() -> tuple[MemoryHashStore, object]:
    ours, theirs = MemoryHashStore(), pymerkle.InmemoryTree(algorithm="sha256")
    for entry in entries:
        ours.append(entry)
        theirs.append_entry(entry)
    return ours, theirs


def _sizes() -> list[int]:
    rng = random.Random(1)
    return sorted({1, 2, 3, 4, 5, 8, 13, 64, 255, 256, 257, SIZE, *rng.sample(range(1, SIZE), 12)})


@pytest.mark.parametrize("size", _sizes())
def test_roots_agree(trees: tuple[MemoryHashStore, object], size: int) -> None:
    ours, theirs = trees
    assert tree_hash(size, ours) == theirs.get_root(size)  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", _sizes())
def test_pymerkle_accepts_our_inclusion_proofs(trees: tuple[MemoryHashStore, object],
                                               size: int) -> None:
    ours, theirs = trees
    root = theirs.get_root(size)  # type: ignore[attr-defined]
    for index in sorted({0, size // 3, size - 1}):
        frame = theirs.prove_inclusion(index + 1, size)  # type: ignore[attr-defined]
        leaf = theirs.get_leaf(index + 1)  # type: ignore[attr-defined]
        assert leaf == leaf_hash(entries[index])
        ours_path = prove_record(size, index, ours)
        frame.path = [leaf, *ours_path]
        pymerkle.verify_inclusion(leaf, root, frame, index=index + 1, size=size)
        if ours_path:  # and it refuses a changed one
            bad = bytearray(ours_path[-1])
            bad[0] ^= 1
            frame.path = [leaf, *ours_path[:-1], bytes(bad)]
            with pytest.raises(pymerkle.InvalidProof):
                pymerkle.verify_inclusion(leaf, root, frame, index=index + 1, size=size)


@pytest.mark.parametrize("size", _sizes())
def test_pymerkle_proves_our_roots_consistent(trees: tuple[MemoryHashStore, object],
                                              size: int) -> None:
    """pymerkle's consistency paths are not RFC 9162's (it may split a subtree that RFC
    9162 sends whole), so its verifier cannot take our hashes; here it proves, with its
    own code, that the roots our tree computed at two sizes are consistent, and refuses
    a changed one. Our consistency proofs themselves are checked against the independent
    transparency-dev/merkle vectors (test_transparency_merkle.py)."""
    ours, theirs = trees
    new_root = tree_hash(size, ours)
    for old in sorted({1, size // 2 or 1, size - 1 or 1, size}):
        old_root = tree_hash(old, ours)
        frame = theirs.prove_consistency(old, size)  # type: ignore[attr-defined]
        pymerkle.verify_consistency(old_root, new_root, frame, prior_size=old,
                                    later_size=size)
        with pytest.raises(pymerkle.InvalidProof):
            pymerkle.verify_consistency(old_root, tree_hash(size - 1, ours) if size > old
                                        else bytes(32), frame, prior_size=old,
                                        later_size=size)
        # and our own proof between those roots verifies with our RFC 9162 verifier
        assert verify_consistency(old, size, old_root, new_root, prove_tree(size, old, ours))


def test_leaf_hashing_agrees() -> None:
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    tree.append_entry(b"signgate")
    assert tree.get_leaf(1) == leaf_hash(b"signgate")
