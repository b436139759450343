"""RFC 9162 Merkle trees over stored hashes: the canonical vectors, proofs that verify and
fail when any byte changes, and proofs and tree hashes that read O(log n) hashes."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from signgate.errors import InvalidInput, VerificationFailed
from signgate.transparency.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    check_record,
    check_tree,
    leaf_hash,
    node_hash,
    prove_record,
    prove_records,
    prove_tree,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
    stored_hashes,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "transparency" /
                      "rfc6962_proofs.json").read_text())

# The 8-leaf tree of the Certificate Transparency / trillian test data
# (transparency-dev/merkle testonly/constants.go) and its root at every size.
LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [bytes.fromhex(h) for h in [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]]
# NodeHashes(): every complete subtree, by level.
NODES = [[bytes.fromhex(h) for h in level] for level in [
    ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]]]


def b64(values: Sequence[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def tree(leaves: Sequence[bytes]) -> MemoryHashStore:
    store = MemoryHashStore()
    for leaf in leaves:
        store.append(leaf)
    return store


class CountingReader:
    """A HashReader that counts the hashes asked for and the calls made."""

    def __init__(self, inner: MemoryHashStore) -> None:
        self.inner = inner
        self.hashes = 0
        self.calls = 0

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        self.calls += 1
        self.hashes += len(indexes)
        return self.inner.read_hashes(indexes)


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert tree_hash(0, MemoryHashStore()) == EMPTY_ROOT == ROOTS[0]


def test_the_eight_leaf_tree_has_the_canonical_roots_and_nodes() -> None:
    store = MemoryHashStore()
    for size, leaf in enumerate(LEAVES, start=1):
        store.append(leaf)
        assert store.root() == ROOTS[size]
        assert tree_hash(size, store) == ROOTS[size]
    # Every stored hash is exactly one complete subtree's node hash.
    assert len(store.hashes) == stored_hash_count(8) == 15
    for level, nodes in enumerate(NODES):
        for n, node in enumerate(nodes):
            assert store.hashes[stored_hash_index(level, n)] == node


def test_stored_hash_index_is_the_append_order_and_inverts() -> None:
    # Appending leaves 0..3 stores: L0/0, L0/1, L1/0, L0/2, L0/3, L1/1, L2/0.
    order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
    assert [stored_hash_index(level, n) for level, n in order] == list(range(7))
    for index in range(5000):
        assert stored_hash_index(*split_stored_hash_index(index)) == index
    assert split_stored_hash_index(stored_hash_index(40, 12345)) == (40, 12345)


def test_stored_hashes_are_what_the_next_leaf_appends() -> None:
    store = tree(LEAVES[:7])
    added = stored_hashes(7, LEAVES[7], store)
    # leaf 7 completes levels 1, 2 and 3 (7 = 0b111)
    assert added == [NODES[0][7], NODES[1][3], NODES[2][1], NODES[3][0]]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: c["file"])
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    ok = verify_inclusion(case["leafIdx"], case["treeSize"], base64.b64decode(case["leafHash"]),
                          b64(case["proof"]), base64.b64decode(case["root"]))
    assert ok is not case["wantErr"], case["desc"]


# Where signgate is deliberately stricter than transparency-dev/merkle: a root hash is a
# SHA-256 hash, so a 12-byte placeholder root ("don't care 2") never verifies.
STRICTER = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: c["file"])
def test_consistency_vectors(case: dict[str, Any]) -> None:
    ok = verify_consistency(case["size1"], case["size2"], base64.b64decode(case["root1"]),
                            base64.b64decode(case["root2"]), b64(case["proof"]))
    want_ok = not case["wantErr"] and case["file"] not in STRICTER
    assert ok is want_ok, case["desc"]


def test_proofs_over_stored_hashes_are_the_vectors_proofs() -> None:
    store = tree(LEAVES)
    happy_inclusion = [c for c in VECTORS["inclusion"] if c["desc"] == "happy path"]
    happy_consistency = [c for c in VECTORS["consistency"] if c["desc"] == "happy path"]
    assert happy_inclusion
    assert happy_consistency
    for case in happy_inclusion:
        if case["treeSize"] <= len(LEAVES):
            assert prove_record(case["treeSize"], case["leafIdx"], store) == b64(case["proof"])
    for case in happy_consistency:
        if case["size2"] <= len(LEAVES):
            assert prove_tree(case["size2"], case["size1"], store) == b64(case["proof"])


def _flips(values: Sequence[bytes]) -> list[list[bytes]]:
    """Every proof with one bit of one hash flipped (a few bits per hash)."""
    out = []
    for i, value in enumerate(values):
        for bit in (0, 7, 8 * len(value) - 1):
            changed = bytearray(value)
            changed[bit // 8] ^= 1 << (bit % 8)
            out.append([*values[:i], bytes(changed), *values[i + 1:]])
    return out


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_every_proof_verifies_and_any_change_fails() -> None:
    rng = random.Random(9162)
    leaves = [rng.randbytes(rng.randrange(0, 40)) for _ in range(300)]
    store = tree(leaves)
    roots = [tree_hash(size, store) for size in range(len(leaves) + 1)]
    sizes = sorted({1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 255, 256, 257, 300,
                    *rng.sample(range(1, 301), 20)})
    for size in sizes:
        for index in sorted({0, size - 1, *rng.sample(range(size), min(size, 6))}):
            proof = prove_record(size, index, store)
            leaf = leaf_hash(leaves[index])
            assert verify_inclusion(index, size, leaf, proof, roots[size])
            check_record(proof, size, roots[size], index, leaf)
            for bad in _flips(proof):
                assert not verify_inclusion(index, size, leaf, bad, roots[size])
            assert not verify_inclusion(index, size, _flip(leaf), proof, roots[size])
            assert not verify_inclusion(index, size, leaf, proof, _flip(roots[size]))
            assert not verify_inclusion(index, size, leaf, [*proof, roots[size]], roots[size])
            if proof:
                assert not verify_inclusion(index, size, leaf, proof[:-1], roots[size])
            for other in {index ^ 1, index + 1, size}:
                if other != index and proof:
                    assert not verify_inclusion(other, size, leaf, proof, roots[size])
            with pytest.raises(VerificationFailed):
                check_record(proof, size, _flip(roots[size]), index, leaf)
        for old in sorted({0, 1, size - 1, size, *rng.sample(range(size + 1),
                                                               min(size + 1, 6))}):
            proof = prove_tree(size, old, store)
            assert verify_consistency(old, size, roots[old], roots[size], proof)
            check_tree(proof, size, roots[size], old, roots[old])
            for bad in _flips(proof):
                assert not verify_consistency(old, size, roots[old], roots[size], bad)
            if old > 0:
                assert not verify_consistency(old, size, _flip(roots[old]), roots[size], proof)
                assert not verify_consistency(old, size, roots[old], _flip(roots[size]), proof)
                with pytest.raises(VerificationFailed):
                    check_tree(proof, size, _flip(roots[size]), old, roots[old])
            if proof:
                assert not verify_consistency(old, size, roots[old], roots[size], proof[:-1])


def test_a_different_history_is_not_consistent() -> None:
    """A log that rewrote entry 3 cannot prove its new tree consistent with the old."""
    honest = tree(LEAVES)
    forged = tree([*LEAVES[:3], b"rewritten", *LEAVES[4:]])
    proof = prove_tree(8, 5, forged)
    assert not verify_consistency(5, 8, ROOTS[5], forged.root(), proof)
    assert verify_consistency(5, 8, tree_hash(5, forged), forged.root(), proof)
    assert honest.root() != forged.root()


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 1000, 65_537, 100_000])
def test_tree_hashes_and_proofs_read_log_n_stored_hashes(size: int,
                                                         big_tree: MemoryHashStore) -> None:
    bound = size.bit_length()  # log2(size) + 1
    rng = random.Random(size)
    for n in sorted({0, size - 1, size // 2, *rng.sample(range(size), min(size, 5))}):
        reader = CountingReader(big_tree)
        tree_hash(size, reader)
        assert reader.calls == 1
        assert reader.hashes <= bound
        reader = CountingReader(big_tree)
        prove_record(size, n, reader)
        assert reader.calls == 1
        assert reader.hashes <= 2 * bound, (size, n, reader.hashes)
        reader = CountingReader(big_tree)
        prove_tree(size, n, reader)
        assert reader.calls == 1
        assert reader.hashes <= 2 * bound, (size, n, reader.hashes)
        reader = CountingReader(big_tree)
        stored_hashes(size, b"next", reader)
        assert reader.hashes <= bound


@pytest.mark.parametrize(("size", "batch"), [(1, 1), (7, 3), (256, 64), (65_537, 256),
                                             (100_000, 100)])
def test_a_batchs_proofs_are_read_at_once_and_verify(size: int, batch: int,
                                                     big_tree: MemoryHashStore) -> None:
    """A signing batch's entries are the last ``batch`` leaves of the tree its checkpoint
    signs: their proofs, made together, read the stored hashes once, and each verifies
    against the root like a proof made alone (RFC 9162 §2.1.3.2)."""
    root = tree_hash(size, big_tree)
    leaves = [*range(size - batch, size), 0]
    reader = CountingReader(big_tree)
    proofs = prove_records(size, leaves, reader)
    assert reader.calls == 1
    assert reader.hashes <= 2 * batch + 2 * size.bit_length()
    for n, proof in zip(leaves, proofs, strict=True):
        assert verify_inclusion(n, size, leaf_hash(n.to_bytes(4, "big")), proof, root)
        assert proof == prove_record(size, n, big_tree)


@pytest.fixture(scope="module")
def big_tree() -> MemoryHashStore:
    return tree([i.to_bytes(4, "big") for i in range(100_000)])


def test_out_of_range_requests_are_refused() -> None:
    store = tree(LEAVES)
    with pytest.raises(InvalidInput):
        prove_record(8, 8, store)
    with pytest.raises(InvalidInput):
        prove_tree(5, 6, store)
    with pytest.raises(InvalidInput):
        tree_hash(9, store)  # beyond the stored hashes
    with pytest.raises(InvalidInput):
        stored_hash_index(-1, 0)
    assert not verify_inclusion(8, 8, NODES[0][0], [], ROOTS[8])
    assert not verify_consistency(9, 8, ROOTS[8], ROOTS[8], [])
    assert not verify_consistency(3, 8, ROOTS[3], ROOTS[8], [])  # empty proof
    assert not verify_consistency(3, 8, ROOTS[3][:31], ROOTS[8], prove_tree(8, 3, store))


def test_node_hash_is_domain_separated_from_leaf_hash() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) != leaf_hash(left + right)


def test_the_streaming_root_is_the_tree_hash_at_every_size() -> None:
    from signgate.transparency.merkle import StreamingRoot

    store, streaming = MemoryHashStore(), StreamingRoot()
    assert streaming.root() == tree_hash(0, store)
    for n in range(300):
        data = n.to_bytes(4, "big")
        store.append(data)
        streaming.add(leaf_hash(data))
        assert streaming.root() == store.root(), n


@pytest.mark.parametrize("length", [1, 4, 32])
def test_streaming_roots_of_aligned_ranges_fold_into_the_whole(length: int) -> None:
    """Ranges of a power-of-two length starting at its multiples (how audit verify splits
    the log among worker processes): their subtrees extend one tree to the whole's root."""
    from signgate.transparency.merkle import StreamingRoot

    for size in (1, length, length + 1, 3 * length - 1, 100):
        store, whole = MemoryHashStore(), StreamingRoot()
        for start in range(0, size, length):
            part = StreamingRoot()
            for n in range(start, min(start + length, size)):
                store.append(n.to_bytes(4, "big"))
                part.add(leaf_hash(n.to_bytes(4, "big")))
            whole.extend(part.subtrees())
        assert whole.size == size
        assert whole.root() == store.root(), (length, size)


def test_a_subtree_where_it_cannot_start_is_refused() -> None:
    from signgate.transparency.merkle import StreamingRoot

    tree, part = StreamingRoot(), StreamingRoot()
    tree.add(leaf_hash(b"a"))
    part.add(leaf_hash(b"b"))
    part.add(leaf_hash(b"c"))
    with pytest.raises(ValueError, match="cannot start at leaf 1"):
        tree.extend(part.subtrees())


def test_proofs_computed_together_are_each_leafs_own_proof() -> None:
    """``prove_records`` (a signing batch's receipts) answers exactly what
    ``prove_record`` answers leaf by leaf, with one read of the stored hashes."""
    from signgate.transparency.merkle import prove_records

    rng = random.Random(3)
    leaves = [rng.randbytes(rng.randrange(0, 40)) for _ in range(300)]
    store = tree(leaves)
    reads = []

    class Counting:
        def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
            reads.append(len(indexes))
            return store.read_hashes(indexes)

    for size in (1, 2, 7, 8, 100, 255, 256, 257, 300):
        for ns in ([0], [size - 1], list(range(max(0, size - 100), size)),
                   sorted(rng.sample(range(size), min(size, 9))), [size - 1, 0, size - 1]):
            reads.clear()
            together = prove_records(size, ns, Counting())
            assert together == [prove_record(size, n, store) for n in ns]
            assert len(reads) == 1
    with pytest.raises(InvalidInput):
        prove_records(8, [3, 8], store)
    assert prove_records(5, [], store) == []
