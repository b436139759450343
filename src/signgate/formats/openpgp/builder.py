"""The server half of ``openpgp``: check the client's hashed part against the key version
that signs, sign the final digest as it is, and wrap the value into an armored signature
packet. Pure: no file, database or network I/O (the signing batch does the signing)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from signgate.errors import Conflict, ErrorCode, InvalidInput
from signgate.formats.base import Chain, FormatRequest, SignerKey, ToBeSigned
from signgate.formats.openpgp.cleartext import signature_type
from signgate.formats.openpgp.codec import (
    SIG_BINARY,
    SUB_CREATION_TIME,
    SUB_ISSUER_FINGERPRINT,
    armor,
    key_of,
    parse_hashed,
    refuse_unsupported,
    signature_packet,
)

CLOCK_SKEW = timedelta(minutes=10)
MAX_HASHED = 1024  # our hashed part is 40-odd bytes; anything near this is not ours
ROTATED = "the key was rotated while signing; sign again"


def check_hashed(key: SignerKey, request: FormatRequest, data: bytes) -> None:
    """Refuse a client's hashed part unless it is exactly what a signgate signature by
    this key version says: the signature then names the key that really signs, a time
    close to the signing, and nothing the server did not agree to."""
    if len(data) > MAX_HASHED:
        raise InvalidInput(f"the OpenPGP hashed part is limited to {MAX_HASHED} bytes",
                           code=ErrorCode.BAD_OPENPGP)
    sig_type, algorithm, digest, subpackets = parse_hashed(data)
    pgp_key = key_of(key.public_key_pem, key.created_at)
    expected = signature_type(request.params)
    if sig_type != expected:
        what = ("only binary document signatures (0x00) are made unless params.type is "
                "text" if expected == SIG_BINARY else "params.type text asks for a canonical "
                "text signature (0x01)")
        raise InvalidInput(f"OpenPGP signature type 0x{sig_type:02x}: {what}",
                           code=ErrorCode.BAD_OPENPGP)
    if algorithm != pgp_key.algorithm:
        raise InvalidInput(f"the hashed part names public-key algorithm {algorithm}, but "
                           f"{key.ref} is {key.algorithm.value} ({pgp_key.algorithm})",
                           code=ErrorCode.BAD_OPENPGP)
    if digest is not request.digest_algorithm:
        raise InvalidInput(f"the hashed part names {digest.value} but the digest sent is "
                           f"{request.digest_algorithm.value}", code=ErrorCode.BAD_OPENPGP)
    kinds = [s.kind for s in subpackets]
    if kinds != [SUB_CREATION_TIME, SUB_ISSUER_FINGERPRINT] or any(
            s.critical for s in subpackets):
        raise InvalidInput("the hashed part must hold exactly a signature creation time and "
                           "an issuer fingerprint, not critical", code=ErrorCode.BAD_OPENPGP)
    created, issuer = subpackets[0].body, subpackets[1].body
    if len(created) != 4 or len(issuer) != 21 or issuer[0] != 4:
        raise InvalidInput("malformed creation time or issuer fingerprint subpacket",
                           code=ErrorCode.BAD_OPENPGP)
    when = datetime.fromtimestamp(int.from_bytes(created, "big"), UTC)
    if abs(when - request.now) > CLOCK_SKEW:
        raise InvalidInput(f"the signature creation time {when.isoformat()} is more than "
                           f"{CLOCK_SKEW.seconds // 60} minutes from the server's clock "
                           f"({request.now.astimezone(UTC).isoformat()})",
                           code=ErrorCode.BAD_OPENPGP_TIME)
    if issuer[1:] != pgp_key.fingerprint:
        raise Conflict(f"{ROTATED} (the signature names {issuer[1:].hex().upper()}, but "
                       f"{key.ref} version {key.version} is "
                       f"{pgp_key.fingerprint.hex().upper()})", code=ErrorCode.KEY_ROTATED)


class OpenPgpBuilder:
    """Server half: checks the client's hashed part, signs the final digest as it is."""

    name = "openpgp"
    needs_chain = False
    embeds_timestamp = False  # the RFC 3161 token stays a sidecar, FILE.asc.tsr

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        refuse_unsupported(key.algorithm, key.rsa_padding, key.one_time,
                           request.digest_algorithm)

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        encoded = request.params.get("hashed")
        if not encoded:
            raise InvalidInput("an openpgp signing needs the signature's hashed part "
                               "(params.hashed, base64)", code=ErrorCode.BAD_OPENPGP)
        try:
            hashed = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("params.hashed is not valid base64",
                               code=ErrorCode.BAD_OPENPGP) from exc
        check_hashed(key, request, hashed)
        # The digest already covers data, hashed part and trailer: sign it as it is
        # (for Ed25519 the digest is the EdDSA message, as OpenPGP specifies).
        return ToBeSigned(request.digest, prehashed=True, state=hashed)

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        pgp_key = key_of(key.public_key_pem, key.created_at)
        sig = signature_packet(tbs.state, pgp_key.key_id, request.digest, signature)
        return armor("SIGNATURE", sig).encode("ascii")
