"""RFC 9162 Merkle trees over append-only stored hashes, and their proofs.

Hashing is RFC 9162 §2.1.1 (= RFC 6962 §2.1): a leaf is ``SHA-256(0x00 || data)``, an
interior node ``SHA-256(0x01 || left || right)``, the empty tree ``SHA-256("")``.

Storage follows the design of Go's golang.org/x/mod/sumdb/tlog: the log keeps, in the
order it computes them, every hash of a *complete* subtree, i.e. the hash at level L and
position n covers leaves ``[n * 2**L, (n + 1) * 2**L)``. Adding leaf n appends its leaf
hash and then one hash per level that the leaf completes, so the stored hashes form one
append-only sequence that a database table, a file or C2SP tiles (``tiles.py``) can keep
as it is; nothing is ever rewritten. Every other hash (a tree head, a proof element over an
incomplete range) is folded from at most log2(n) stored hashes, so a tree hash or a proof
costs O(log n) reads, whatever the size of the log.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) is the plain RFC 9162
§2.1.3.2 and §2.1.4.2 algorithms over (index or sizes, proof hashes, roots): what an offline
verifier that holds only a receipt and a checkpoint runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Protocol

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Sizes and indexes are uint64 on the wire (checkpoints, tiles); RFC 9162 proofs of such
# trees have at most 64 hashes per part.
MAX_SIZE = (1 << 63) - 1
MAX_PROOF_HASHES = 2 * 64


class HashReader(Protocol):
    """Where the stored hashes live (a table, tiles, a list).

    ``read_hashes`` returns the hashes at the given stored-hash indexes, in that order; it
    may raise if one is missing. Every function here asks for all the hashes it needs in
    one call, so that a database reader makes one query per proof.
    """

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]: ...


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of a leaf, ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: an interior node, ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# -- the stored-hash sequence --------------------------------------------------------------


def stored_hash_count(n: int) -> int:
    """How many hashes a tree of ``n`` leaves stores: one per complete subtree, which is
    ``n + n//2 + n//4 + ... = 2n - popcount(n)``."""
    _check_size(n)
    return 2 * n - n.bit_count()


def stored_hash_index(level: int, n: int) -> int:
    """The position in the stored sequence of the hash at ``level`` (0 = leaves) and
    position ``n`` within that level.

    That hash is stored right after the leaf that completes it, ``m = (n + 1) * 2**level
    - 1``, was added: after the ``stored_hash_count(m)`` hashes of the leaves before it,
    the leaf hash itself and the ``level - 1`` parents below it.
    """
    if level < 0 or n < 0 or level > 63:
        raise InvalidInput(f"no stored hash at level {level}, position {n}")
    last_leaf = ((n + 1) << level) - 1
    return stored_hash_count(last_leaf) + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The inverse of :func:`stored_hash_index`: ``(level, n)`` of a stored index."""
    if index < 0:
        raise InvalidInput(f"no stored hash at index {index}")
    # stored_hash_count(m) <= 2m, so the leaf m whose hashes hold ``index`` is at least
    # index // 2; it is at most log2(index) further on.
    leaf = index // 2
    while stored_hash_count(leaf + 1) <= index:
        leaf += 1
    while stored_hash_count(leaf) > index:
        leaf -= 1
    level = index - stored_hash_count(leaf)
    return level, leaf >> level


def stored_hashes(n: int, data: bytes, reader: HashReader) -> list[bytes]:
    """The hashes to append to the stored sequence when leaf ``n`` (holding ``data``) is
    added to a tree of ``n`` leaves: the leaf hash, then one parent for each level that
    this leaf completes (each trailing 1 bit of ``n``), whose left halves are read."""
    _check_size(n)
    levels = (~n & (n + 1)).bit_length() - 1  # the number of trailing 1 bits of n
    lefts = reader.read_hashes([stored_hash_index(level, (n >> level) - 1)
                                for level in range(levels)])
    _check_read(lefts, levels)
    hashes = [leaf_hash(data)]
    for left in lefts:
        hashes.append(node_hash(left, hashes[-1]))
    return hashes


# -- tree hashes and proofs over stored hashes ----------------------------------------------


def _complete_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The maximal complete subtrees ``(level, n)`` that cover leaves ``[lo, hi)``, left to
    right, for a range that starts on a boundary of its own size (RFC 9162 only ever asks
    for such ranges): at most log2(hi - lo) + 1 of them."""
    subtrees = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo % (1 << level):  # not aligned: a smaller subtree first
            level -= 1
        subtrees.append((level, lo >> level))
        lo += 1 << level
    return subtrees


class _Plan:
    """Ranges of leaves whose hashes one computation needs, read in one batch."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def add(self, lo: int, hi: int) -> None:
        self.ranges.append((lo, hi))

    def hashes(self, reader: HashReader) -> list[bytes]:
        parts = [_complete_subtrees(lo, hi) for lo, hi in self.ranges]
        indexes = [stored_hash_index(level, n) for part in parts for level, n in part]
        stored = reader.read_hashes(indexes)
        _check_read(stored, len(indexes))
        result, at = [], 0
        for part in parts:
            result.append(_fold(stored[at:at + len(part)]))
            at += len(part)
        return result


def _fold(subtree_hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from its maximal complete subtrees (left to right): folded from
    the right, because RFC 9162 splits every range at its largest power of two."""
    if not subtree_hashes:
        return EMPTY_ROOT
    h = subtree_hashes[-1]
    for left in reversed(subtree_hashes[:-1]):
        h = node_hash(left, h)
    return h


def tree_hash(n: int, reader: HashReader) -> bytes:
    """The root hash of the first ``n`` leaves (RFC 9162 §2.1.1 MTH), from popcount(n)
    stored hashes."""
    _check_size(n)
    plan = _Plan()
    plan.add(0, n)
    return plan.hashes(reader)[0]


def _split(size: int) -> int:
    """RFC 9162 §2.1.1: k, the largest power of two smaller than ``size`` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def prove_record(t: int, n: int, reader: HashReader) -> list[bytes]:
    """The inclusion proof of leaf ``n`` in the tree of size ``t`` (RFC 9162 §2.1.3.1
    PATH), leaf's sibling first, the root's child last."""
    return prove_records(t, [n], reader)[0]


def prove_records(t: int, leaves: Sequence[int], reader: HashReader) -> list[list[bytes]]:
    """:func:`prove_record` for each of ``leaves``, with one read of the stored hashes
    they need between them (a batch's entries share most of their paths)."""
    _check_size(t)
    plans: list[list[tuple[int, int]]] = []
    for n in leaves:
        if not 0 <= n < t:
            raise InvalidInput(f"leaf {n} is not in a tree of {t} leaves")
        ranges = []
        lo, hi = 0, t
        while hi - lo > 1:  # top-down; the proof lists these bottom-up
            k = _split(hi - lo)
            if n < lo + k:
                ranges.append((lo + k, hi))
                hi = lo + k
            else:
                ranges.append((lo, lo + k))
                lo += k
        plans.append(ranges)
    parts = {r: _complete_subtrees(*r) for ranges in plans for r in ranges}
    indexes = sorted({stored_hash_index(level, i) for part in parts.values()
                      for level, i in part})
    read = reader.read_hashes(indexes)
    _check_read(read, len(indexes))
    stored = dict(zip(indexes, read, strict=True))
    folded = {r: _fold([stored[stored_hash_index(level, i)] for level, i in part])
              for r, part in parts.items()}
    return [[folded[r] for r in reversed(ranges)] for ranges in plans]


def prove_tree(t: int, n: int, reader: HashReader) -> list[bytes]:
    """The consistency proof from the tree of size ``n`` to the tree of size ``t`` (RFC
    9162 §2.1.4.1 PROOF(n, D[t])); empty when ``n`` is 0 or ``t``."""
    _check_size(t)
    if not 0 <= n <= t:
        raise InvalidInput(f"no consistency proof from size {n} to size {t}")
    plan = _Plan()
    if 0 < n < t:
        # SUBPROOF(m, D[lo:hi], b), unrolled: ``whole`` is b, "m is the whole old tree".
        lo, hi, m, whole = 0, t, n, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                plan.add(lo + k, hi)
                hi = lo + k
            else:
                plan.add(lo, lo + k)
                lo, m, whole = lo + k, m - k, False
        if not whole:
            plan.add(lo, hi)
    return plan.hashes(reader)[::-1]


def check_record(proof: Sequence[bytes], t: int, root: bytes, n: int, leaf: bytes) -> None:
    """Raise VerificationFailed unless ``proof`` proves that the leaf hash ``leaf`` is leaf
    ``n`` of the tree of size ``t`` with root hash ``root``."""
    if not verify_inclusion(n, t, leaf, proof, root):
        raise VerificationFailed(f"the inclusion proof of entry {n} in the tree of size {t} "
                                 "does not verify", code=ErrorCode.BAD_MERKLE_PROOF)


def check_tree(proof: Sequence[bytes], t: int, root: bytes, n: int, old_root: bytes) -> None:
    """Raise VerificationFailed unless ``proof`` proves that the tree of size ``n`` with root
    ``old_root`` is a prefix of the tree of size ``t`` with root ``root``."""
    if not verify_consistency(n, t, old_root, root, proof):
        raise VerificationFailed(f"the tree of size {t} is not consistent with the tree of "
                                 f"size {n} (the consistency proof does not verify)",
                                 code=ErrorCode.BAD_MERKLE_PROOF)


# -- RFC 9162 verification -----------------------------------------------------------------


def _well_formed(hashes: Sequence[bytes], *roots: bytes) -> bool:
    return (len(hashes) <= MAX_PROOF_HASHES
            and all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in (*hashes, *roots)))


def root_from_inclusion(index: int, size: int, leaf: bytes,
                        proof: Sequence[bytes]) -> bytes | None:
    """The root that ``proof`` leads to from ``leaf`` at ``index`` in a tree of ``size``
    (RFC 9162 §2.1.3.2 steps 1-5), or None when the proof cannot belong to that position."""
    if not 0 <= index < size <= MAX_SIZE or not _well_formed(proof, leaf):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` prove the leaf hash ``leaf`` at ``index`` in the
    tree of ``size`` leaves whose root hash is ``root``?"""
    computed = root_from_inclusion(index, size, leaf, proof)
    return computed is not None and len(root) == HASH_SIZE and \
        hmac.compare_digest(computed, root)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` prove that the tree of ``old_size`` with
    ``old_root`` is a prefix of the tree of ``new_size`` with ``new_root``?

    Two sizes the algorithm leaves out: equal sizes need an empty proof and equal roots;
    an old size of 0 needs an empty proof (the empty tree is a prefix of every tree).
    """
    if not 0 <= old_size <= new_size <= MAX_SIZE or not _well_formed(proof, old_root,
                                                                     new_root):
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a proof node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


# -- helpers -------------------------------------------------------------------------------


class StreamingRoot:
    """The root hash (RFC 9162 MTH) of leaves given one by one, in O(log n) memory: for
    checking a whole log against a checkpoint without storing its tree."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # complete subtrees, left to right
        self.size = 0

    def add(self, leaf: bytes) -> None:
        """Add the next leaf's hash (``leaf_hash(data)``)."""
        self._push(0, leaf)

    def subtrees(self) -> list[tuple[int, bytes]]:
        """The complete subtrees so far, left to right, as (height, hash): what
        :meth:`extend` takes to add these leaves to another tree."""
        return list(self._stack)

    def extend(self, subtrees: Sequence[tuple[int, bytes]]) -> None:
        """Add the leaves of another streaming root's ``subtrees()``. The tree must hold a
        multiple of each subtree's size (its leaves start where a subtree of that size may
        start), or the hashes would pair differently than RFC 9162 pairs them."""
        for height, h in subtrees:
            if self.size % (1 << height):
                raise ValueError(f"a subtree of {1 << height} leaves cannot start at leaf "
                                 f"{self.size}")
            self._push(height, h)

    def _push(self, height: int, h: bytes) -> None:
        self.size += 1 << height
        while self._stack and self._stack[-1][0] == height:
            h = node_hash(self._stack.pop()[1], h)
            height += 1
        self._stack.append((height, h))

    def root(self) -> bytes:
        return _fold([h for _, h in self._stack])


class MemoryHashStore:
    """The stored-hash sequence in a list: a HashReader for tests and for small tools, and
    the model of what a persistent store does (append the hashes of
    :func:`stored_hashes`, never rewrite one)."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.size = 0

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        if any(not 0 <= i < len(self.hashes) for i in indexes):
            raise InvalidInput("a stored hash beyond the end of the log")
        return [self.hashes[i] for i in indexes]

    def append(self, data: bytes) -> int:
        """Add a leaf holding ``data``; return its index."""
        self.hashes.extend(stored_hashes(self.size, data, self))
        self.size += 1
        return self.size - 1

    def root(self) -> bytes:
        return tree_hash(self.size, self)


def _check_size(n: int) -> None:
    if not 0 <= n <= MAX_SIZE:
        raise InvalidInput(f"a tree size of {n} is out of range")


def _check_read(hashes: Sequence[bytes], expected: int) -> None:
    """A reader that answers with fewer hashes or ones of the wrong size is broken storage;
    stop here rather than compute a wrong root."""
    if len(hashes) != expected or any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidInput("the hash reader returned the wrong number or size of hashes")
