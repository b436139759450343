"""C2SP signed notes (c2sp.org/signed-note): text signed by one or more named keys.

::

    <text, ending in a newline>
    <blank line>
    — <key name> base64(4-byte key ID || signature)
    ...

A key is named by (name, key ID); the key ID of an Ed25519 note key is the first four
bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``, its verifier key string
``<name>+<hex key ID>+base64(0x01 || public key)``. Opening a note verifies the
signatures of the keys the caller trusts, ignores every other signature (a log's
checkpoint carries witness cosignatures a client may not know), and fails unless at least
one trusted signature verifies or if any trusted one fails.

Signing goes through :class:`RawSigner` (``sign(message) -> bytes``), the shape of
``Ed25519PrivateKey`` and of a key store's signing call, so that the log key can live in
signgate's key store like any other key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signgate.errors import ErrorCode, InvalidInput, VerificationFailed

SIG_ED25519 = 0x01
SIG_PREFIX = "— "  # U+2014 EM DASH, space
# Verifiers MUST accept 16 signatures; post-quantum ones are up to ~5 kB each.
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1 << 20
# ``details["reason"]`` of open_note's refusals: a forged line, or only unknown signers.
INVALID_SIGNATURE = "invalid_signature"
NO_TRUSTED_SIGNATURE = "no_trusted_signature"


class RawSigner(Protocol):
    """Signs a message with a key that never leaves its owner (Ed25519: the message
    itself, not a digest)."""

    def sign(self, message: bytes) -> bytes: ...


class NoteSigner(Protocol):
    """A signer of notes: its key name and ID, and the signature bytes (after the key ID)
    over a note's text."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes: ...


class NoteVerifier(Protocol):
    """A trusted key: its name and ID, and whether ``signature`` is its over ``text``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the ID."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text (with the final newline), the signatures that verified
    with a trusted key, and the others (unknown keys), kept so that they can be passed on.
    """

    text: str
    signatures: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = ()

    def signed_by(self, verifier: NoteVerifier) -> bool:
        return any(s.name == verifier.name and s.key_id == verifier.key_id
                   for s in self.signatures)


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || type || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def valid_name(name: str) -> bool:
    """Key names are non-empty and contain no Unicode space and no ``+``."""
    return bool(name) and "+" not in name and not any(
        c.isspace() or unicodedata.category(c) == "Zs" for c in name)


def format_verifier_key(name: str, sig_type: int, public_key: bytes) -> str:
    """``<name>+<hex key ID>+base64(type || public key)``."""
    if not valid_name(name):
        raise InvalidInput(f"{name!r} is not a valid note key name (no spaces, no '+')",
                           code=ErrorCode.BAD_VERIFIER_KEY)
    return (f"{name}+{key_id(name, sig_type, public_key):08x}+"
            f"{base64.b64encode(bytes([sig_type]) + public_key).decode()}")


def split_verifier_key(vkey: str) -> tuple[str, int, int, bytes]:
    """``(name, key ID, signature type, public key)`` of a verifier key string, after
    checking its form and that the key ID is the one its name and key give."""
    name, sep1, rest = vkey.partition("+")
    hex_id, sep2, b64 = rest.partition("+")
    bad = InvalidInput(f"not a note verifier key: {vkey!r}", code=ErrorCode.BAD_VERIFIER_KEY)
    if not (sep1 and sep2) or not valid_name(name) or len(hex_id) != 8 or \
            hex_id != hex_id.lower():
        raise bad
    try:
        kid = int(hex_id, 16)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise bad from None
    if not raw or base64.b64encode(raw).decode() != b64:
        raise bad
    sig_type, public_key = raw[0], raw[1:]
    if key_id(name, sig_type, public_key) != kid:
        raise InvalidInput(f"the key ID of verifier key {name}+{hex_id} does not match its "
                           "name and public key", code=ErrorCode.BAD_VERIFIER_KEY)
    return name, kid, sig_type, public_key


def ed25519_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes", code=ErrorCode.BAD_VERIFIER_KEY)
    return Ed25519PublicKey.from_public_bytes(raw)


class Ed25519NoteVerifier:
    """A trusted Ed25519 note key (signature type 0x01)."""

    sig_type = SIG_ED25519

    def __init__(self, name: str, public_key: bytes) -> None:
        if not valid_name(name):
            raise InvalidInput(f"{name!r} is not a valid note key name",
                               code=ErrorCode.BAD_VERIFIER_KEY)
        self.name = name
        self.public_key = public_key
        self._key = ed25519_public_key(public_key)
        self.key_id = key_id(name, SIG_ED25519, public_key)

    @property
    def verifier_key(self) -> str:
        return format_verifier_key(self.name, SIG_ED25519, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Ed25519NoteSigner:
    """Signs notes with an Ed25519 key held by ``raw`` (a key store, or an
    ``Ed25519PrivateKey``); ``public_key`` is its raw 32-byte public key."""

    sig_type = SIG_ED25519

    def __init__(self, name: str, public_key: bytes, raw: RawSigner) -> None:
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, SIG_ED25519, public_key)
        self._raw = raw
        self.verifier = Ed25519NoteVerifier(name, public_key)

    def sign(self, text: bytes) -> bytes:
        return self._raw.sign(text)


def typed_verifier_key(vkey: str, sig_type: int, kind: str) -> tuple[str, bytes]:
    """The name and public key of a verifier key string of signature type ``sig_type``."""
    name, _, found, public_key = split_verifier_key(vkey)
    if found != sig_type:
        raise InvalidInput(f"verifier key {name} is of signature type {found:#04x}, not "
                           f"{kind} ({sig_type:#04x})", code=ErrorCode.BAD_VERIFIER_KEY)
    return name, public_key


def parse_verifier_key(vkey: str) -> Ed25519NoteVerifier:
    """The Ed25519 note verifier (type 0x01) of a verifier key string."""
    return Ed25519NoteVerifier(*typed_verifier_key(vkey, SIG_ED25519, "an Ed25519 note key"))


def split_header(data: bytes, limit: int, what: str) -> tuple[list[str], bytes]:
    """The ASCII header lines before the first blank line, and the note after it: the
    shape of a tlog-proof and of an add-checkpoint request (``what`` names it in errors)."""
    def malformed(why: str) -> InvalidInput:
        return InvalidInput(f"malformed {what}: {why}", code=ErrorCode.MALFORMED_NOTE)

    if len(data) > limit:
        raise malformed("too large")
    head, sep, note = data.partition(b"\n\n")
    if not sep:
        raise malformed("no blank line before the checkpoint")
    try:
        return head.decode("ascii").split("\n"), note
    except UnicodeDecodeError:
        raise malformed("the header is not ASCII") from None


def _malformed(why: str) -> InvalidInput:
    return InvalidInput(f"malformed signed note: {why}", code=ErrorCode.MALFORMED_NOTE)


def check_text(text: str) -> None:
    """The rules of a note's text: non-empty, ends in a newline, no control character but
    newline (a text of the wrong shape is a signer's bug: it is never signed)."""
    if not text.endswith("\n"):
        raise _malformed("the text must end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise _malformed("the text contains a control character")


def sign_note(text: str, signers: Sequence[NoteSigner],
              keep: Sequence[Signature] = ()) -> bytes:
    """The signed note of ``text`` by ``signers``, followed by the signatures of ``keep``
    (e.g. cosignatures being passed on) except those of a key that signs now."""
    check_text(text)
    if not signers and not keep:
        raise _malformed("a note needs at least one signature")
    body = text.encode()
    fresh = []
    for signer in signers:
        if not valid_name(signer.name):
            raise InvalidInput(f"{signer.name!r} is not a valid note key name",
                               code=ErrorCode.BAD_VERIFIER_KEY)
        fresh.append(Signature(signer.name, signer.key_id, signer.sign(body)))
    signing = {(s.name, s.key_id) for s in fresh}
    kept = [s for s in keep if (s.name, s.key_id) not in signing]
    if any(not valid_name(s.name) for s in kept):
        raise _malformed("a kept signature has an invalid key name")
    return (text + "\n" + "".join(s.line for s in (*kept, *fresh))).encode()


def split_note(msg: bytes) -> tuple[str, list[Signature]]:
    """The text and the signature lines of a note, without verifying any (strict: valid
    UTF-8, no control character but newline, a blank line before one or more well-formed
    signature lines, at most MAX_SIGNATURES of them, at most MAX_NOTE_SIZE bytes)."""
    if len(msg) > MAX_NOTE_SIZE:
        raise _malformed(f"over {MAX_NOTE_SIZE} bytes")
    try:
        whole = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("not UTF-8") from None
    if any(c < " " and c != "\n" for c in whole):
        raise _malformed("a control character")
    split = whole.rfind("\n\n")
    if split < 0:
        raise _malformed("no blank line before the signatures")
    text, block = whole[:split + 1], whole[split + 2:]
    if not block or not block.endswith("\n"):
        raise _malformed("no signature lines, or the last one does not end with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise _malformed("a signature line does not start with '— '")
        name, space, b64 = line[len(SIG_PREFIX):].partition(" ")
        if not space or not valid_name(name) or not b64:
            raise _malformed("a signature line without a valid key name and signature")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise _malformed(f"the signature of {name} is not base64") from None
        if len(raw) < 5:
            raise _malformed(f"the signature of {name} is too short")
        signatures.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
        if len(signatures) > MAX_SIGNATURES:
            raise _malformed(f"more than {MAX_SIGNATURES} signatures")
    return text, signatures


def open_note(msg: bytes, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse ``msg`` and verify it with the trusted ``verifiers``.

    Signatures of unknown keys (name and ID not both matching a verifier) are kept as
    unverified; repeated identical ones are dropped. A trusted key whose signature fails,
    or a note without any verifying trusted signature, is refused (VerificationFailed);
    two verifiers with the same name and key ID are ambiguous and refused (InvalidInput).
    """
    text, lines = split_note(msg)
    body = text.encode()
    known: dict[tuple[str, int], list[NoteVerifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), []).append(v)
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for sig in lines:
        matches = known.get((sig.name, sig.key_id), [])
        if not matches:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if len(matches) > 1:
            raise InvalidInput(f"ambiguous key {sig.name}+{sig.key_id:08x}: more than one "
                               "trusted key has this name and ID",
                               code=ErrorCode.BAD_VERIFIER_KEY)
        if any(s.name == sig.name and s.key_id == sig.key_id for s in verified):
            continue  # one verified signature per key
        if not matches[0].verify(body, sig.signature):
            raise VerificationFailed(f"invalid signature for key {sig.name}+"
                                     f"{sig.key_id:08x}", code=ErrorCode.NOTE_NOT_VERIFIED,
                                     reason=INVALID_SIGNATURE)
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise VerificationFailed(f"the note has no valid signature by a trusted key "
                                 f"(trusted: {names})", code=ErrorCode.NOTE_NOT_VERIFIED,
                                 reason=NO_TRUSTED_SIGNATURE)
    return Note(text, tuple(verified), tuple(unverified))
