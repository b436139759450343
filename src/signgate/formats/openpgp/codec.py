"""The OpenPGP codec (RFC 4880): pure bytes in, bytes out, no file or network I/O.

Only the encodings no library covers are written here: packet and subpacket framing,
MPIs, v4 key packets and fingerprints (§5.5.2, §12.2), ASCII armor with CRC-24 (§6),
signature packets and their hashed parts (§5.2.3, §5.2.4), and the transferable public
key (§11.1). The halves that read files (``client``, ``verifier``) and the server half
(``builder``) sit on top of this module; it imports none of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import PublicKey, load_public_key
from signgate.errors import ErrorCode, InvalidInput
from signgate.pki.cms import DigestSigner

# Packet tags (§4.3), signature types (§5.2.1), subpacket types (§5.2.3.1), algorithms (§9).
TAG_SIGNATURE = 2
TAG_PUBLIC_KEY = 6
TAG_USER_ID = 13
SIG_BINARY = 0x00
SIG_POSITIVE_CERTIFICATION = 0x13
SUB_CREATION_TIME = 2
SUB_ISSUER_KEY_ID = 16
SUB_PREFERRED_HASHES = 21
SUB_KEY_FLAGS = 27
SUB_ISSUER_FINGERPRINT = 33  # RFC 4880bis §5.2.3.28; gpg 2.2 and Sequoia read it
PK_RSA = 1
PK_ECDSA = 19
PK_EDDSA = 22
HASH_IDS = {DigestAlgorithm.SHA256: 8, DigestAlgorithm.SHA384: 9, DigestAlgorithm.SHA512: 10}
DIGESTS = {v: k for k, v in HASH_IDS.items()}
# Curve OIDs without the DER tag and length (RFC 6637 §11; EdDSA: draft-koch-eddsa §4).
CURVE_OIDS = {"secp256r1": bytes.fromhex("2a8648ce3d030107"),
              "secp384r1": bytes.fromhex("2b81040022")}
ED25519_OID = bytes.fromhex("2b06010401da470f01")
KEY_FLAGS_CERTIFY_SIGN = 0x03
MAX_USER_ID = 256


# --- framing ---------------------------------------------------------------------------

def _length(n: int) -> bytes:
    """A new-format body length (§4.2.2; subpacket lengths use the same scheme, §5.2.3.1)."""
    if n < 192:
        return bytes([n])
    if n < 8384:
        n -= 192
        return bytes([(n >> 8) + 192, n & 0xFF])
    return b"\xff" + n.to_bytes(4, "big")


def packet(tag: int, body: bytes) -> bytes:
    """A packet with a new-format header (§4.2)."""
    return bytes([0xC0 | tag]) + _length(len(body)) + body


def subpacket(kind: int, body: bytes) -> bytes:
    """A non-critical signature subpacket (§5.2.3.1)."""
    return _length(len(body) + 1) + bytes([kind]) + body


def mpi(value: int) -> bytes:
    """A multiprecision integer: bit count, then the big-endian bytes (§3.2)."""
    bits = value.bit_length()
    return bits.to_bytes(2, "big") + value.to_bytes((bits + 7) // 8, "big")


class Reader:
    """Bounds-checked reading of untrusted packet bytes: every overrun is InvalidInput."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise InvalidInput(f"truncated {self.what}", code=ErrorCode.BAD_OPENPGP)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def length(self) -> int:
        """A new-format length (§4.2.2); partial lengths are refused (never in signatures)."""
        first = self.byte()
        if first < 192:
            return first
        if first < 224:
            return ((first - 192) << 8) + self.byte() + 192
        if first == 255:
            return self.number(4)
        raise InvalidInput(f"partial body lengths are not supported in {self.what}",
                           code=ErrorCode.BAD_OPENPGP)

    def mpi(self) -> int:
        bits = self.number(2)
        return self.number((bits + 7) // 8)

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def read_packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of each packet; old- and new-format headers (§4.2)."""
    r = Reader(data, "OpenPGP packet")
    out: list[tuple[int, bytes]] = []
    while not r.done:
        head = r.byte()
        if not head & 0x80:
            raise InvalidInput("not an OpenPGP packet", code=ErrorCode.BAD_OPENPGP)
        if head & 0x40:
            tag, size = head & 0x3F, r.length()
        else:
            kind = head & 0x03
            if kind == 3:
                raise InvalidInput("indeterminate packet lengths are not supported",
                                   code=ErrorCode.BAD_OPENPGP)
            tag, size = (head >> 2) & 0x0F, r.number((1, 2, 4)[kind])
        out.append((tag, r.take(size)))
    return out


@dataclass(frozen=True)
class Subpacket:
    kind: int
    critical: bool
    body: bytes


def read_subpackets(area: bytes) -> list[Subpacket]:
    r = Reader(area, "signature subpacket area")
    out: list[Subpacket] = []
    while not r.done:
        size = r.length()
        if size < 1:
            raise InvalidInput("empty signature subpacket", code=ErrorCode.BAD_OPENPGP)
        raw = r.take(size)
        out.append(Subpacket(raw[0] & 0x7F, bool(raw[0] & 0x80), raw[1:]))
    return out


# --- ASCII armor (§6) --------------------------------------------------------------------

def crc24(data: bytes) -> int:
    """The armor checksum (§6.1): CRC-24 with generator 0x864CFB, initial value 0xB704CE."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(kind: str, data: bytes) -> str:
    """``-----BEGIN PGP <kind>-----``, base64 in 64-column lines, ``=`` + CRC-24 (§6.2)."""
    body = base64.b64encode(data).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    check = base64.b64encode(crc24(data).to_bytes(3, "big")).decode("ascii")
    return "\n".join([f"-----BEGIN PGP {kind}-----", "", *lines, f"={check}",
                      f"-----END PGP {kind}-----", ""])


def dearmor(text: str, kind: str) -> bytes:
    """The binary data of the first armored block of ``kind`` (§6.2): armor headers are
    skipped, and a CRC-24 line, when present, must match."""
    lines = [line.strip() for line in text.splitlines()]
    begin, end = f"-----BEGIN PGP {kind}-----", f"-----END PGP {kind}-----"
    try:
        first = lines.index(begin) + 1
        last = lines.index(end, first)
    except ValueError:
        raise InvalidInput(f"no ASCII-armored PGP {kind} found",
                           code=ErrorCode.BAD_OPENPGP) from None
    block = lines[first:last]
    body_start = block.index("") + 1 if "" in block else 0  # after the armor headers
    body, check = [], None
    for line in block[body_start:]:
        if line.startswith("="):
            check = line[1:]
            break
        body.append(line)
    try:
        data = base64.b64decode("".join(body), validate=True)
        crc = None if check is None else base64.b64decode(check, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"the armored PGP {kind} is not valid base64",
                           code=ErrorCode.BAD_OPENPGP) from exc
    if crc is not None and int.from_bytes(crc, "big") != crc24(data):
        raise InvalidInput(f"the armored PGP {kind} fails its CRC-24 check (damaged)",
                           code=ErrorCode.BAD_OPENPGP)
    return data


# --- keys (§5.5.2, §12.2) ----------------------------------------------------------------

def _seconds(when: datetime) -> int:
    """An OpenPGP time: whole seconds since 1970 UTC (naive times are taken as UTC)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    seconds = int(aware.timestamp())
    if not 0 <= seconds < 2**32:
        raise InvalidInput("OpenPGP times end in 2106", code=ErrorCode.BAD_OPENPGP)
    return seconds


def _key_material(public_key: PublicKey) -> tuple[int, bytes]:
    """Public-key algorithm id and algorithm-specific key fields (§5.5.2, RFC 6637 §9)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return PK_RSA, mpi(numbers.n) + mpi(numbers.e)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        oid = CURVE_OIDS.get(public_key.curve.name)
        if oid is None:
            raise InvalidInput(f"OpenPGP ECDSA over {public_key.curve.name} is not supported",
                               code=ErrorCode.UNSUPPORTED_FORMAT)
        point = public_key.public_bytes(serialization.Encoding.X962,
                                        serialization.PublicFormat.UncompressedPoint)
        return PK_ECDSA, bytes([len(oid)]) + oid + mpi(int.from_bytes(point, "big"))
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # 0x40 marks the native (compressed) point encoding of EdDSA keys.
    return PK_EDDSA, bytes([len(ED25519_OID)]) + ED25519_OID + mpi(
        int.from_bytes(b"\x40" + raw, "big"))


@dataclass(frozen=True)
class OpenPgpKey:
    """A v4 public key: what a key version is in OpenPGP."""

    public_key: PublicKey
    algorithm: int  # public-key algorithm id
    created: int  # seconds since 1970
    body: bytes  # the public-key packet body

    @property
    def fingerprint(self) -> bytes:
        """SHA-1 over 0x99, the two-octet length and the packet body (§12.2)."""
        prefix = b"\x99" + len(self.body).to_bytes(2, "big")
        return hashlib.sha1(prefix + self.body, usedforsecurity=False).digest()

    @property
    def key_id(self) -> bytes:
        return self.fingerprint[-8:]

    def hash_prefix(self) -> bytes:
        """How a key is fed into a key signature's hash (§5.2.4)."""
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body


def openpgp_key(public_key: PublicKey, created: datetime) -> OpenPgpKey:
    seconds = _seconds(created)
    algorithm, material = _key_material(public_key)
    return OpenPgpKey(public_key, algorithm, seconds,
                      b"\x04" + seconds.to_bytes(4, "big") + bytes([algorithm]) + material)


def key_of(public_key_pem: str, created: datetime) -> OpenPgpKey:
    """The OpenPGP key of a key version (its PEM and ``created_at``)."""
    return openpgp_key(load_public_key(public_key_pem), created)


def refuse_unsupported(algorithm: KeyAlgorithm, rsa_padding: RsaPadding | None,
                       one_time: bool, digest: DigestAlgorithm | None = None) -> None:
    """What OpenPGP cannot express: RSA-PSS, and keys whose fingerprint is unknown until
    the key pair is made in the signing itself (one-time keys); and what gpg refuses to
    verify: ECDSA with a hash shorter than the curve (RFC 6637 §12.2.1 says SHOULD NOT)."""
    if (algorithm is KeyAlgorithm.ECDSA_P384 and digest is not None
            and digest.size < 48):
        raise InvalidInput("OpenPGP signatures by ecdsa-p384 keys need a hash at least as "
                           "long as the curve (gpg refuses shorter ones): use --digest "
                           "sha384 or sha512", code=ErrorCode.UNSUPPORTED_FORMAT)
    if algorithm.is_rsa and rsa_padding is RsaPadding.PSS:
        raise InvalidInput("OpenPGP RSA signatures use PKCS#1 v1.5 padding (RFC 4880 "
                           "§5.2.2); this key signs with PSS. Use a key created with "
                           "--rsa-padding pkcs1v15, or an ECDSA or ed25519 key",
                           code=ErrorCode.UNSUPPORTED_FORMAT)
    if one_time:
        raise InvalidInput("one-time keys cannot make OpenPGP signatures: the signature "
                           "names its key's fingerprint, which does not exist before the "
                           "one-time key pair is made", code=ErrorCode.UNSUPPORTED_FORMAT)


# --- signatures (§5.2.3, §5.2.4) -----------------------------------------------------------

def hashed_part(sig_type: int, algorithm: int, digest: DigestAlgorithm,
                subpackets: bytes) -> bytes:
    """Version, type, algorithms and the hashed subpacket area: what the signature hashes
    after the data (§5.2.3)."""
    return bytes([4, sig_type, algorithm, HASH_IDS[digest]]) + \
        len(subpackets).to_bytes(2, "big") + subpackets


def trailer(hashed: bytes) -> bytes:
    """``hashed`` followed by the v4 trailer 0x04 0xFF and its length (§5.2.4)."""
    return hashed + b"\x04\xff" + len(hashed).to_bytes(4, "big")


def data_subpackets(created: datetime, key: OpenPgpKey) -> bytes:
    """The hashed subpackets of a signgate data signature, in this order: creation time,
    issuer fingerprint (v4)."""
    return (subpacket(SUB_CREATION_TIME, _seconds(created).to_bytes(4, "big"))
            + subpacket(SUB_ISSUER_FINGERPRINT, b"\x04" + key.fingerprint))


def _signature_mpis(algorithm: int, value: bytes) -> bytes:
    """The key store's signature value as OpenPGP MPIs (§5.2.2, RFC 6637 §10)."""
    if algorithm == PK_RSA:
        return mpi(int.from_bytes(value, "big"))
    if algorithm == PK_ECDSA:
        r, s = decode_dss_signature(value)
        return mpi(r) + mpi(s)
    return mpi(int.from_bytes(value[:32], "big")) + mpi(int.from_bytes(value[32:], "big"))


def signature_packet(hashed: bytes, key_id: bytes, digest: bytes, value: bytes) -> bytes:
    """A v4 signature packet: the hashed part, the issuer key ID unhashed (older readers
    look for it there), the left 16 bits of the digest and the signature MPIs."""
    unhashed = subpacket(SUB_ISSUER_KEY_ID, key_id)
    body = (hashed + len(unhashed).to_bytes(2, "big") + unhashed + digest[:2]
            + _signature_mpis(hashed[2], value))
    return packet(TAG_SIGNATURE, body)


def parse_hashed(data: bytes) -> tuple[int, int, DigestAlgorithm, list[Subpacket]]:
    """(signature type, public-key algorithm, digest, hashed subpackets) of a hashed part."""
    r = Reader(data, "OpenPGP signature")
    version, sig_type, algorithm, hash_id = r.take(4)
    if version != 4:
        raise InvalidInput(f"OpenPGP signature version {version}: only v4 is supported",
                           code=ErrorCode.BAD_OPENPGP)
    digest = DIGESTS.get(hash_id)
    if digest is None:
        raise InvalidInput(f"OpenPGP hash algorithm {hash_id} is not supported "
                           "(SHA-256, SHA-384, SHA-512 are)", code=ErrorCode.BAD_OPENPGP)
    area = r.take(r.number(2))
    if not r.done:
        raise InvalidInput("the hashed part has trailing bytes", code=ErrorCode.BAD_OPENPGP)
    return sig_type, algorithm, digest, read_subpackets(area)



# --- verification ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedSignature:
    hashed: bytes
    sig_type: int
    algorithm: int
    digest: DigestAlgorithm
    created: datetime
    issuer_fingerprint: bytes | None
    issuer_key_id: bytes | None
    left16: bytes
    mpis: tuple[int, ...]
    unhashed: list[Subpacket] = field(default_factory=list)


def parse_signature(data: bytes) -> ParsedSignature:
    """The one v4 signature packet of a detached signature."""
    packets = read_packets(data)
    if len(packets) != 1 or packets[0][0] != TAG_SIGNATURE:
        raise InvalidInput("a detached OpenPGP signature holds exactly one signature packet",
                           code=ErrorCode.BAD_OPENPGP)
    body = packets[0][1]
    r = Reader(body, "OpenPGP signature")
    head = r.take(6)
    hashed = head + r.take(int.from_bytes(head[4:6], "big"))
    sig_type, algorithm, digest, hashed_subs = parse_hashed(hashed)
    unhashed = read_subpackets(r.take(r.number(2)))
    left16 = r.take(2)
    count = {PK_RSA: 1, PK_ECDSA: 2, PK_EDDSA: 2}.get(algorithm)
    if count is None:
        raise InvalidInput(f"OpenPGP public-key algorithm {algorithm} is not supported",
                           code=ErrorCode.BAD_OPENPGP)
    mpis = tuple(r.mpi() for _ in range(count))
    if not r.done:
        raise InvalidInput("the signature packet has trailing bytes", code=ErrorCode.BAD_OPENPGP)
    created = [s.body for s in hashed_subs if s.kind == SUB_CREATION_TIME]
    if len(created) != 1 or len(created[0]) != 4:
        raise InvalidInput("the signature has no hashed creation time (RFC 4880 §5.2.3.4)",
                           code=ErrorCode.BAD_OPENPGP)
    critical = [s.kind for s in hashed_subs if s.critical
                and s.kind not in (SUB_CREATION_TIME, SUB_ISSUER_FINGERPRINT)]
    if critical:
        raise InvalidInput(f"the signature has critical subpackets {critical} this verifier "
                           "does not know (RFC 4880 §5.2.3.1)", code=ErrorCode.BAD_OPENPGP)
    fingerprints = [s.body[1:] for s in hashed_subs
                    if s.kind == SUB_ISSUER_FINGERPRINT and s.body[:1] == b"\x04"]
    key_ids = [s.body for s in hashed_subs + unhashed if s.kind == SUB_ISSUER_KEY_ID]
    return ParsedSignature(
        hashed, sig_type, algorithm, digest,
        datetime.fromtimestamp(int.from_bytes(created[0], "big"), UTC),
        fingerprints[0] if fingerprints else None, key_ids[0] if key_ids else None,
        left16, mpis, unhashed)



# --- transferable public keys (§11.1) ------------------------------------------------------

def check_user_id(user_id: str) -> str:
    """A user ID to certify: one line of printable text, at most MAX_USER_ID characters."""
    if not user_id.strip():
        raise InvalidInput("the OpenPGP user ID must not be empty", code=ErrorCode.BAD_USER_ID)
    if len(user_id) > MAX_USER_ID:
        raise InvalidInput(f"the OpenPGP user ID is limited to {MAX_USER_ID} characters",
                           code=ErrorCode.BAD_USER_ID)
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in user_id):
        raise InvalidInput("the OpenPGP user ID must be one line without control characters",
                           code=ErrorCode.BAD_USER_ID)
    return user_id


def self_signature_digest(algorithm: int, public_key: PublicKey) -> DigestAlgorithm:
    """SHA-384 for P-384 (RFC 6637 §12.2.1: a hash at least as long as the curve), else
    SHA-256."""
    if algorithm == PK_ECDSA and isinstance(public_key, ec.EllipticCurvePublicKey) \
            and public_key.curve.key_size > 256:
        return DigestAlgorithm.SHA384
    return DigestAlgorithm.SHA256


def export_public_key(key: OpenPgpKey, user_id: str, signer: DigestSigner) -> str:
    """The armored transferable public key: key packet, user ID packet and a positive
    certification (0x13) by the key itself (§5.2.1, §11.1). The certification's creation
    time is the key's, so an export of the same version and user ID says the same thing
    every time (ECDSA values still differ: the nonce is random)."""
    uid = check_user_id(user_id).encode("utf-8")
    digest = self_signature_digest(key.algorithm, key.public_key)
    subpackets = (subpacket(SUB_CREATION_TIME, key.created.to_bytes(4, "big"))
                  + subpacket(SUB_KEY_FLAGS, bytes([KEY_FLAGS_CERTIFY_SIGN]))
                  + subpacket(SUB_PREFERRED_HASHES, bytes([HASH_IDS[DigestAlgorithm.SHA512],
                                                           HASH_IDS[DigestAlgorithm.SHA384],
                                                           HASH_IDS[DigestAlgorithm.SHA256]]))
                  + subpacket(SUB_ISSUER_FINGERPRINT, b"\x04" + key.fingerprint))
    hashed = hashed_part(SIG_POSITIVE_CERTIFICATION, key.algorithm, digest, subpackets)
    # §5.2.4: key, then 0xB4 + four-octet length + user ID, then the signature's part.
    message = (key.hash_prefix() + b"\xb4" + len(uid).to_bytes(4, "big") + uid
               + trailer(hashed))
    value = hashlib.new(digest.value, message).digest()
    signature = signature_packet(hashed, key.key_id, value,
                                 signer.sign_digest(digest, value))
    return armor("PUBLIC KEY BLOCK", packet(TAG_PUBLIC_KEY, key.body)
                 + packet(TAG_USER_ID, uid) + signature)

