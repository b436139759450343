"""C2SP signed notes: the spec's example, Go's golang.org/x/mod/sumdb/note vectors (the
PeterNeumann and EnochRoot keys), and the strict rules of keys, lines and signatures."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.transparency.note import (
    MAX_SIGNATURES,
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    Signature,
    format_verifier_key,
    key_id,
    open_note,
    parse_verifier_key,
    sign_note,
    split_note,
)

# golang.org/x/mod/sumdb/note/note_test.go
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
             "dngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTG"
             "wnWLox33WWd1RvMc+QQ=\n")
# c2sp.org/signed-note's example
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6T"
             "fXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")


def peter_signer() -> Ed25519NoteSigner:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[-1])[1:]
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return Ed25519NoteSigner("PeterNeumann", public, key)


def new_signer(name: str) -> Ed25519NoteSigner:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return Ed25519NoteSigner(name, public, key)


def test_the_spec_example_verifies() -> None:
    note = open_note(SPEC_NOTE.encode(), [parse_verifier_key(SPEC_VKEY)])
    assert note.text == "This is an example message.\n"
    assert [s.name for s in note.signatures] == ["example.com/foo"]


def test_go_signing_vector_is_reproduced() -> None:
    signer = peter_signer()
    assert f"{signer.key_id:08x}" == "c74f20a3"
    assert signer.verifier.verifier_key == PETER_VKEY
    assert sign_note(TEXT, [signer]) == (TEXT + "\n" + PETER_SIG).encode()
    # an existing signature of the same key is replaced, not repeated
    stale = Signature("PeterNeumann", 0xC74F20A3, b"BADSIGN")
    assert sign_note(TEXT, [signer], keep=[stale]) == (TEXT + "\n" + PETER_SIG).encode()


def test_go_open_vectors() -> None:
    peter, enoch = parse_verifier_key(PETER_VKEY), parse_verifier_key(ENOCH_VKEY)
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    one = open_note(msg, [peter])
    assert one.text == TEXT
    assert [s.name for s in one.signatures] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in one.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(msg, [peter, enoch])
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]
    assert both.unverified == ()
    with pytest.raises(VerificationFailed) as exc:
        open_note(msg, [])
    assert exc.value.code == ErrorCode.NOTE_NOT_VERIFIED
    # a duplicated verifier is ambiguous once a signature needs it
    with pytest.raises(InvalidInput, match="ambiguous key EnochRoot"):
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), [enoch, peter, enoch])
    open_note((TEXT + "\n" + PETER_SIG).encode(), [enoch, peter, enoch])
    # an invalid signature by a trusted key refuses the whole note
    forged = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(VerificationFailed, match="invalid signature for key PeterNeumann"):
        open_note((TEXT + "\n" + forged).encode(), [peter])
    # repeated signatures count once; a forged unknown one is only unverified
    enoch_forged = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = open_note((TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG +
                      enoch_forged).encode(), [peter])
    assert len(note.signatures) == 1
    assert len(note.unverified) == 2


@pytest.mark.parametrize("msg", [
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + TEXT + "\n" + PETER_SIG,
    TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
                  "KvqfqdngotpRZb6KE6RyyBwJnAM=",
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than a key ID and one byte
    TEXT + "\n" + "— PeterNeumann not*base64\n",
    TEXT + "\n" + "— PeterNeumann\n",
    TEXT + "\n" + "— a+b x08go/ZJkuBS9UG/SffcvIAQ==\n",
    TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1),
])
def test_malformed_notes_are_refused(msg: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        open_note(msg.encode(), [parse_verifier_key(PETER_VKEY)])
    assert exc.value.code == ErrorCode.MALFORMED_NOTE


def test_invalid_utf8_and_oversized_notes_are_refused() -> None:
    with pytest.raises(InvalidInput):
        split_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())
    with pytest.raises(InvalidInput):
        split_note(b"a" * (1 << 20) + b"\n\n" + PETER_SIG.encode())


def test_verifier_key_manglings_are_refused() -> None:
    parse_verifier_key(PETER_VKEY)
    key = PETER_VKEY.encode()
    for i in range(len(key)):  # every one-byte change
        changed = bytearray(key)
        changed[i] = (changed[i] + 1) % 128
        with pytest.raises(InvalidInput):
            parse_verifier_key(changed.decode())
    for cut in range(1, len(PETER_VKEY)):  # every truncation from either end
        for bad in (PETER_VKEY[:cut], PETER_VKEY[cut:]):
            with pytest.raises(InvalidInput):
                parse_verifier_key(bad)
    # Go's: wrong key length and unknown algorithm, each with a matching key ID
    with pytest.raises(InvalidInput):
        parse_verifier_key("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
                           "BADKEY==")
    with pytest.raises(InvalidInput):
        parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    verifier = parse_verifier_key(PETER_VKEY)
    assert key_id("PeterNeumann", 0x01, verifier.public_key) == 0xC74F20A3
    assert key_id("PeterNeumann", 0x04, verifier.public_key) != 0xC74F20A3
    assert format_verifier_key("PeterNeumann", 0x01, verifier.public_key) == PETER_VKEY


def test_a_signature_under_another_key_with_the_same_name_is_ignored() -> None:
    """Name and ID must both match a trusted key; same name, other key: unknown."""
    mallory = new_signer("PeterNeumann")
    note = sign_note(TEXT, [mallory]) + PETER_SIG.encode()
    opened = open_note(note, [parse_verifier_key(PETER_VKEY)])
    assert [s.key_id for s in opened.unverified] == [mallory.key_id]


def test_sign_refuses_bad_text_and_names() -> None:
    signer = new_signer("log.example/a")
    with pytest.raises(InvalidInput):
        sign_note("no final newline", [signer])
    with pytest.raises(InvalidInput):
        sign_note("tab\there\n", [signer])
    with pytest.raises(InvalidInput):
        Ed25519NoteVerifier("a b", signer.public_key)
    with pytest.raises(InvalidInput):
        sign_note(TEXT, [new_signer("a+b")])


def test_every_byte_of_a_signed_note_matters() -> None:
    signer = new_signer("log.example/a")
    note = sign_note("origin\n1\nhash\n", [signer])
    text_end = note.index(b"\n\n")
    for i in range(text_end):
        changed = bytearray(note)
        changed[i] ^= 0x20 if changed[i] != ord("\n") else 0
        if bytes(changed) == note:
            continue
        with pytest.raises((InvalidInput, VerificationFailed)):
            open_note(bytes(changed), [signer.verifier])
