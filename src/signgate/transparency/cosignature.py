"""C2SP tlog-cosignature (c2sp.org/tlog-cosignature), Ed25519 (signature type 0x04).

A witness that has checked a checkpoint's consistency signs::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint's note text>

and its note signature is ``8-byte big-endian timestamp || Ed25519 signature``, under the
key ID ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``. Because the timestamp is in
the signature line, a cosignature is an ordinary note signature: a verifier opens the
checkpoint with the witnesses' :class:`CosignatureVerifier` as with any note key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from signgate.errors import ErrorCode, InvalidInput
from signgate.transparency.note import (
    Ed25519NoteVerifier,
    RawSigner,
    Signature,
    format_verifier_key,
    key_id,
    typed_verifier_key,
    valid_name,
)

SIG_COSIGNATURE = 0x04
HEADER = "cosignature/v1"
MAX_TIMESTAMP = (1 << 63) - 1
SIGNATURE_SIZE = 8 + 64


def cosigned_message(timestamp: int, checkpoint_text: str) -> bytes:
    """The message a cosigner signs for ``checkpoint_text`` at ``timestamp``."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInput(f"cosignature timestamp {timestamp} out of range",
                           code=ErrorCode.MALFORMED_NOTE)
    return f"{HEADER}\ntime {timestamp}\n{checkpoint_text}".encode()


def cosignature_timestamp(signature: Signature | bytes) -> int:
    """The timestamp of a cosignature (its first eight bytes)."""
    raw = signature.signature if isinstance(signature, Signature) else signature
    if len(raw) != SIGNATURE_SIZE:
        raise InvalidInput("not an Ed25519 cosignature", code=ErrorCode.MALFORMED_NOTE)
    return int.from_bytes(raw[:8], "big")


class Ed25519Cosigner:
    """A note signer that cosigns checkpoint texts at the current time of ``clock``."""

    def __init__(self, name: str, public_key: bytes, raw: RawSigner,
                 clock: Callable[[], float] = time.time) -> None:
        if not valid_name(name):
            raise InvalidInput(f"{name!r} is not a valid note key name",
                               code=ErrorCode.BAD_VERIFIER_KEY)
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, SIG_COSIGNATURE, public_key)
        self._raw = raw
        self._clock = clock
        self.verifier = CosignatureVerifier(name, public_key)

    @property
    def verifier_key(self) -> str:
        return self.verifier.verifier_key

    def sign(self, text: bytes) -> bytes:
        timestamp = int(self._clock())
        message = cosigned_message(timestamp, text.decode())
        return timestamp.to_bytes(8, "big") + self._raw.sign(message)


class CosignatureVerifier:
    """A trusted witness key: verifies its cosignatures on checkpoint texts."""

    sig_type = SIG_COSIGNATURE

    def __init__(self, name: str, public_key: bytes) -> None:
        # An Ed25519 note verifier of the same key checks the signature bytes.
        self._ed25519 = Ed25519NoteVerifier(name, public_key)
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, SIG_COSIGNATURE, public_key)

    @property
    def verifier_key(self) -> str:
        return format_verifier_key(self.name, SIG_COSIGNATURE, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        try:
            message = cosigned_message(timestamp, text.decode())
        except UnicodeDecodeError:
            return False
        return self._ed25519.verify(message, signature[8:])


def parse_cosigner_key(vkey: str) -> CosignatureVerifier:
    """The cosignature verifier (type 0x04) of a witness's verifier key string."""
    return CosignatureVerifier(*typed_verifier_key(vkey, SIG_COSIGNATURE,
                                                   "an Ed25519 cosignature key"))
