"""C2SP tlog-checkpoint and tlog-cosignature: the specs' examples, strict parsing, and
cosignatures that bind the witness's time and the whole checkpoint text."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
from signgate.transparency.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from signgate.transparency.cosignature import (
    Ed25519Cosigner,
    cosignature_timestamp,
    cosigned_message,
    parse_cosigner_key,
)
from signgate.transparency.merkle import EMPTY_ROOT
from signgate.transparency.note import (
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    Signature,
    key_id,
    open_note,
    split_note,
)

# c2sp.org/tlog-checkpoint's example text
SPEC_TEXT = ("example.com/behind-the-sofa\n20852163\n"
             "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def keypair() -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes(serialization.Encoding.Raw,
                                              serialization.PublicFormat.Raw)


def log_signer(name: str = "example.com/behind-the-sofa") -> Ed25519NoteSigner:
    key, public = keypair()
    return Ed25519NoteSigner(name, public, key)


def cosigner(name: str = "witness.example.com/w1", now: int = 1679315147) -> Ed25519Cosigner:
    key, public = keypair()
    return Ed25519Cosigner(name, public, key, clock=lambda: now)


def test_the_spec_checkpoint_parses_and_formats_back() -> None:
    checkpoint = parse_checkpoint(SPEC_TEXT)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.text == SPEC_TEXT
    with_ext = parse_checkpoint(SPEC_TEXT + "ext one\next two\n")
    assert with_ext.extensions == ("ext one", "ext two")


@pytest.mark.parametrize("text", [
    SPEC_TEXT[:-1],  # no final newline
    "example.com/log\n20852163\n",  # two lines
    "\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
    SPEC_TEXT.replace("20852163", "020852163"),  # leading zero
    SPEC_TEXT.replace("20852163", "-1"),
    SPEC_TEXT.replace("20852163", "+5"),
    SPEC_TEXT.replace("20852163", "99999999999999999999"),  # over uint63
    SPEC_TEXT.replace("CsUY", "CsU"),  # not 32 bytes
    SPEC_TEXT.replace("q2I=", "q2I"),  # unpadded base64
    SPEC_TEXT.replace("q2I=", "q2J="),  # non-canonical trailing bits
    SPEC_TEXT + "\n",  # an empty extension line
])
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_checkpoint(text)
    assert exc.value.code == ErrorCode.MALFORMED_NOTE


def test_signed_checkpoint_round_trip_and_origin_check() -> None:
    signer = log_signer()
    checkpoint = Checkpoint("example.com/behind-the-sofa", 0, EMPTY_ROOT)
    note = sign_checkpoint(checkpoint, [signer])
    opened, _ = open_checkpoint(note, [signer.verifier], "example.com/behind-the-sofa")
    assert opened == checkpoint
    with pytest.raises(InvalidInput):
        open_checkpoint(note, [signer.verifier], "example.com/another-log")
    with pytest.raises(VerificationFailed):
        open_checkpoint(note, [log_signer().verifier])


def test_cosigned_message_is_the_specs() -> None:
    assert cosigned_message(1679315147, SPEC_TEXT) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def test_a_cosignature_is_a_timestamped_note_signature() -> None:
    log, witness = log_signer(), cosigner()
    checkpoint = parse_checkpoint(SPEC_TEXT)
    note = sign_checkpoint(checkpoint, [log, witness])
    _, lines = split_note(note)
    cosig = lines[1]
    assert cosig.name == "witness.example.com/w1"
    assert len(cosig.signature) == 72
    assert cosignature_timestamp(cosig) == 1679315147
    # the Ed25519 part signs the cosigned message, not the bare text
    raw = cosig.signature[8:]
    key = Ed25519NoteVerifier(witness.name, witness.public_key)
    assert key.verify(cosigned_message(1679315147, SPEC_TEXT), raw)
    assert not key.verify(SPEC_TEXT.encode(), raw)
    # the log key ID (type 0x01) and the cosignature key ID (type 0x04) differ
    assert witness.key_id == key_id(witness.name, 0x04, witness.public_key)
    assert witness.key_id != key_id(witness.name, 0x01, witness.public_key)
    opened = open_note(note, [witness.verifier])
    assert [s.name for s in opened.signatures] == ["witness.example.com/w1"]


def test_a_cosignature_with_a_changed_time_or_text_fails() -> None:
    witness = cosigner()
    note = sign_checkpoint(parse_checkpoint(SPEC_TEXT), [witness])
    text, [cosig] = split_note(note)
    later = (cosignature_timestamp(cosig) + 1).to_bytes(8, "big") + cosig.signature[8:]
    moved = sign_checkpoint(parse_checkpoint(text), [], [Signature(cosig.name, cosig.key_id,
                                                                   later)])
    with pytest.raises(VerificationFailed):
        open_note(moved, [witness.verifier])
    other = sign_checkpoint(parse_checkpoint(SPEC_TEXT + "extension\n"), [], [cosig])
    with pytest.raises(VerificationFailed):
        open_note(other, [witness.verifier])


def test_cosigner_keys_parse_and_vectors() -> None:
    witness = cosigner()
    assert witness.verifier_key.split("+")[2].startswith(
        base64.b64encode(b"\x04" + witness.public_key[:2]).decode()[:3])
    assert parse_cosigner_key(witness.verifier_key).key_id == witness.key_id
    # transparency-dev/formats note_cosigv1_test.go: a native 0x04 verifier key
    remora = parse_cosigner_key("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7"
                                "onlmtw2")
    assert remora.key_id == 0xDA77ADE7
    # and its timestamp vector: key ID, then 1727964367
    sig = base64.b64decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL"
                           "+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
    assert cosignature_timestamp(sig[4:]) == 1727964367
    with pytest.raises(InvalidInput):  # a 0x01 note key is no cosigner key
        parse_cosigner_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(InvalidInput):  # transparency-dev: incorrect key hash
        parse_cosigner_key("remora.n621.de+00000000+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onl"
                           "mtw2")
