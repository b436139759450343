"""C2SP tlog-proof@v1 receipts and the tlog-witness add-checkpoint bodies: formats, strict
parsing, and verification with a log key and a quorum of witnesses."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.transparency.checkpoint import Checkpoint, sign_checkpoint
from signgate.transparency.cosignature import Ed25519Cosigner
from signgate.transparency.merkle import MemoryHashStore, leaf_hash, prove_record, prove_tree
from signgate.transparency.note import Ed25519NoteSigner, Signature, split_note
from signgate.transparency.proof import (
    TlogProof,
    format_proof,
    format_proofs,
    parse_proof,
    verify_proof,
)
from signgate.transparency.witness_protocol import (
    add_signatures,
    format_add_checkpoint,
    format_cosignatures,
    format_size,
    parse_add_checkpoint,
    parse_size,
    verify_cosignatures,
)

ORIGIN = "signgate.test/log"


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def log_signer() -> Ed25519NoteSigner:
    key = Ed25519PrivateKey.generate()
    return Ed25519NoteSigner(ORIGIN, _public(key), key)


def witness(name: str) -> Ed25519Cosigner:
    key = Ed25519PrivateKey.generate()
    return Ed25519Cosigner(name, _public(key), key, clock=lambda: 1_800_000_000)


@pytest.fixture(scope="module")
def log() -> tuple[MemoryHashStore, list[bytes]]:
    entries = [f"entry {i}".encode() for i in range(21)]
    store = MemoryHashStore()
    for entry in entries:
        store.append(entry)
    return store, entries


def receipt(store: MemoryHashStore, index: int, signers: list[object],
            extra: bytes | None = None) -> TlogProof:
    checkpoint = Checkpoint(ORIGIN, store.size, store.root())
    note = sign_checkpoint(checkpoint, signers)  # type: ignore[arg-type]
    return TlogProof(index, tuple(prove_record(store.size, index, store)), note, extra)


def test_format_is_the_specs_and_round_trips(log: tuple[MemoryHashStore, list[bytes]]) -> None:
    store, _ = log
    proof = receipt(store, 7, [log_signer()], extra=b"artifact digest")
    text = format_proof(proof)
    lines = text.decode().split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra " + base64.b64encode(b"artifact digest").decode()
    assert lines[2] == "index 7"
    assert lines[3:3 + len(proof.hashes)] == [base64.b64encode(h).decode()
                                              for h in proof.hashes]
    assert lines[3 + len(proof.hashes)] == ""
    assert lines[4 + len(proof.hashes)] == ORIGIN
    assert parse_proof(text) == proof
    no_extra = receipt(store, 0, [log_signer()])
    assert parse_proof(format_proof(no_extra)) == no_extra


def test_a_batch_of_proofs_shares_its_checkpoint(
        log: tuple[MemoryHashStore, list[bytes]]) -> None:
    store, entries = log
    first = receipt(store, 3, [log_signer()], extra=entries[3])
    batch = [first, TlogProof(4, tuple(prove_record(store.size, 4, store)), first.checkpoint,
                              entries[4])]
    assert format_proofs(first.checkpoint, batch) == [format_proof(p) for p in batch]
    other = receipt(store, 5, [log_signer()])  # another signature: another note
    with pytest.raises(ValueError, match="not all in the given checkpoint"):
        format_proofs(first.checkpoint, [*batch, other])


def test_verify_counts_trusted_cosigners(log: tuple[MemoryHashStore, list[bytes]]) -> None:
    store, entries = log
    signer, w1, w2, w3 = log_signer(), witness("w1.test"), witness("w2.test"), witness("w3")
    proof = receipt(store, 12, [signer, w1, w2, w3])
    leaf = leaf_hash(entries[12])
    done = verify_proof(proof, leaf, [signer.verifier], ORIGIN, [w1.verifier, w2.verifier], 2)
    assert done.cosigned_by == ("w1.test", "w2.test")
    assert done.checkpoint.size == store.size
    assert verify_proof(proof, leaf, [signer.verifier], ORIGIN).cosigned_by == ()
    with pytest.raises(VerificationFailed) as exc:
        verify_proof(proof, leaf, [signer.verifier], ORIGIN,
                     [w1.verifier, witness("w4").verifier], 2)
    assert exc.value.code == ErrorCode.TOO_FEW_COSIGNATURES


def test_verify_refuses_what_does_not_hold(log: tuple[MemoryHashStore, list[bytes]]) -> None:
    store, entries = log
    signer, w1 = log_signer(), witness("w1.test")
    proof = receipt(store, 3, [signer, w1])
    leaf = leaf_hash(entries[3])
    with pytest.raises(VerificationFailed) as exc:  # another entry
        verify_proof(proof, leaf_hash(entries[4]), [signer.verifier], ORIGIN)
    assert exc.value.code == ErrorCode.BAD_MERKLE_PROOF
    with pytest.raises(VerificationFailed):  # another index
        verify_proof(TlogProof(4, proof.hashes, proof.checkpoint), leaf, [signer.verifier],
                     ORIGIN)
    flipped = bytearray(proof.hashes[1])
    flipped[5] ^= 1
    hashes = (proof.hashes[0], bytes(flipped), *proof.hashes[2:])
    with pytest.raises(VerificationFailed):
        verify_proof(TlogProof(3, hashes, proof.checkpoint), leaf, [signer.verifier], ORIGIN)
    with pytest.raises(VerificationFailed):  # another log key
        verify_proof(proof, leaf, [log_signer().verifier], ORIGIN)
    with pytest.raises(InvalidInput):  # another origin
        verify_proof(proof, leaf, [signer.verifier], "other.test/log")
    # a forged cosignature line of a trusted witness is refused, not just not counted
    _, lines = split_note(proof.checkpoint)
    cosig = lines[1]
    changed = cosig.signature[:-1] + bytes([cosig.signature[-1] ^ 1])
    forged = Signature(cosig.name, cosig.key_id, changed)
    note = sign_checkpoint(Checkpoint(ORIGIN, store.size, store.root()), [signer], [forged])
    with pytest.raises(VerificationFailed):
        verify_proof(TlogProof(3, proof.hashes, note), leaf, [signer.verifier], ORIGIN,
                     [w1.verifier], 1)


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"),
    lambda t: t.replace(b"index 5", b"index 05"),
    lambda t: t.replace(b"index 5", b"index -5"),
    lambda t: t.replace(b"index 5\n", b""),
    lambda t: t.replace(b"\n\n", b"\n"),
    lambda t: t.replace(b"=\n", b"\n", 1),  # unpadded hash
    lambda t: t.replace(b"index 5\n", b"index 5\nnot base64!\n"),
    lambda t: t.replace(b"index 5\n", b"index 5\nAAAA\n"),  # not 32 bytes
    lambda t: t + b"trailing line\n",
])
def test_malformed_proofs_are_refused(log: tuple[MemoryHashStore, list[bytes]],
                                      mangle: object) -> None:
    store, _ = log
    text = format_proof(receipt(store, 5, [log_signer()]))
    bad = mangle(text)  # type: ignore[operator]
    assert bad != text
    with pytest.raises(InvalidInput):
        parse_proof(bad)


def test_add_checkpoint_bodies_round_trip(log: tuple[MemoryHashStore, list[bytes]]) -> None:
    store, _ = log
    signer = log_signer()
    note = sign_checkpoint(Checkpoint(ORIGIN, store.size, store.root()), [signer])
    proof = prove_tree(store.size, 13, store)
    body = format_add_checkpoint(13, proof, note)
    assert body.startswith(b"old 13\n" + base64.b64encode(proof[0]) + b"\n")
    assert body.endswith(b"\n\n" + note)
    request = parse_add_checkpoint(body)
    assert (request.old_size, list(request.proof), request.checkpoint) == (13, proof, note)
    assert parse_add_checkpoint(format_add_checkpoint(0, [], note)).proof == ()
    for bad in (body.replace(b"old 13", b"old 013"), body.replace(b"old 13", b"new 13"),
                b"old 13\n", body.replace(b"\n\n", b"\n"),
                format_add_checkpoint(0, [], note).replace(b"old 0\n",
                                                           b"old 0\n" + b"AAAA\n"),
                b"old 1\n" + b"".join([base64.b64encode(bytes(32)) + b"\n"] * 64) + b"\n"
                + note):
        with pytest.raises(InvalidInput):
            parse_add_checkpoint(bad)


def test_cosignature_answers(log: tuple[MemoryHashStore, list[bytes]]) -> None:
    store, _ = log
    signer, w1, stranger = log_signer(), witness("w1.test"), witness("w9.test")
    checkpoint = Checkpoint(ORIGIN, store.size, store.root())
    note = sign_checkpoint(checkpoint, [signer])
    line = Signature(w1.name, w1.key_id, w1.sign(checkpoint.text.encode()))
    other = Signature(stranger.name, stranger.key_id, stranger.sign(checkpoint.text.encode()))
    answer = format_cosignatures([line, other])
    assert verify_cosignatures(note, answer, [w1.verifier]) == [line]
    with pytest.raises(VerificationFailed):  # nothing from the witness asked
        verify_cosignatures(note, format_cosignatures([other]), [w1.verifier])
    with pytest.raises(InvalidInput):
        verify_cosignatures(note, b"200 OK\n", [w1.verifier])
    merged = add_signatures(note, [line])
    assert add_signatures(merged, [line]) == merged
    assert split_note(merged)[1][-1] == line
    assert parse_size(format_size(42)) == 42
    for bad in (b"42", b"042\n", b"-1\n", b"forty-two\n"):
        with pytest.raises(InvalidInput):
            parse_size(bad)
