"""``openpgp``: detached, ASCII-armored OpenPGP v4 signatures (RFC 4880) and the OpenPGP
form of a key version, both made on the sign-a-digest primitive.

An OpenPGP signature hashes ``data || hashed part of the signature packet || v4 trailer``
(RFC 4880 §5.2.4), and the hashed part names the signing key by fingerprint. So the
client, not the server, finishes the hash: it hashes the file, looks up the key's current
version, builds the hashed part (creation time, issuer fingerprint) and sends the final
digest with that hashed part (``params["hashed"]``, base64). The server checks that the
hashed part says what this key version would say, has the key store sign the digest as
it is, and wraps the signature value into a signature packet.

That only works because the OpenPGP key of a key version is deterministic: its creation
time is the version's ``created_at`` in whole seconds, so its v4 fingerprint (§12.2) is
known to anyone who has the public key and that time. ``export_public_key`` builds the
transferable public key (key packet, user ID, positive self-certification 0x13) with the
same creation time, so ``gpg --import`` of an export finds the key that signed.

Key types: RSA (PKCS#1 v1.5 only: §5.2.2, PSS does not exist in RFC 4880), ECDSA over
P-256 and P-384 (RFC 6637) and Ed25519 as the "legacy" EdDSA algorithm 22 that gpg 2.2
and Sequoia read (draft-koch-eddsa-for-openpgp). Only the encodings no library covers are
written here: packet and subpacket framing, MPIs, fingerprints, armor with CRC-24.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.digests import CHUNK
from signgate.crypto.signatures import PublicKey, load_public_key, verify_digest
from signgate.errors import Conflict, ErrorCode, InvalidInput, VerificationFailed
from signgate.formats.base import (
    Chain,
    Evidence,
    FormatRequest,
    KeyLookup,
    Prepared,
    Progress,
    SignerKey,
    ToBeSigned,
)
from signgate.formats.files import sidecar_token, write_atomic

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

CLOCK_SKEW = timedelta(minutes=10)
MAX_HASHED = 1024  # our hashed part is 40-odd bytes; anything near this is not ours
MAX_SIGNATURE_FILE = 64 * 1024
MAX_USER_ID = 256
ROTATED = "the key was rotated while signing; sign again"


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


class _Reader:
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
    r = _Reader(data, "OpenPGP packet")
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
    r = _Reader(area, "signature subpacket area")
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


def _parse_hashed(data: bytes) -> tuple[int, int, DigestAlgorithm, list[Subpacket]]:
    """(signature type, public-key algorithm, digest, hashed subpackets) of a hashed part."""
    r = _Reader(data, "OpenPGP signature")
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


def check_hashed(key: SignerKey, request: FormatRequest, data: bytes) -> None:
    """Refuse a client's hashed part unless it is exactly what a signgate signature by
    this key version says: the signature then names the key that really signs, a time
    close to the signing, and nothing the server did not agree to."""
    if len(data) > MAX_HASHED:
        raise InvalidInput(f"the OpenPGP hashed part is limited to {MAX_HASHED} bytes",
                           code=ErrorCode.BAD_OPENPGP)
    sig_type, algorithm, digest, subpackets = _parse_hashed(data)
    pgp_key = key_of(key.public_key_pem, key.created_at)
    if sig_type != SIG_BINARY:
        raise InvalidInput(f"OpenPGP signature type 0x{sig_type:02x}: only binary document "
                           "signatures (0x00) are made", code=ErrorCode.BAD_OPENPGP)
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


def _hash_file(path: Path, algorithm: DigestAlgorithm,
               progress: Progress | None) -> hashlib._Hash:
    """A hash object fed with the whole of ``path`` (the trailer comes after)."""
    h = hashlib.new(algorithm.value)
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                if progress is not None:
                    progress(len(chunk))
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    return h


class OpenPgpClient:
    """Client half: hash the file, then the hashed part for the key's current version."""

    name = "openpgp"
    embedded = False
    suffix = ".asc"

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        h = _hash_file(path, algorithm, progress)
        # Looked up after the (possibly long) hashing: the version is as fresh as can be.
        info = key()
        refuse_unsupported(info.algorithm, info.rsa_padding, False, algorithm)
        pgp_key = key_of(info.public_key_pem, info.created_at)
        hashed = hashed_part(SIG_BINARY, pgp_key.algorithm, algorithm,
                             data_subpackets(datetime.now(UTC), pgp_key))
        h.update(trailer(hashed))
        return Prepared(algorithm, h.digest(),
                        {"hashed": base64.b64encode(hashed).decode("ascii")})

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        write_atomic(output, result)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        """The file, then the client's hashed part and trailer (which the builder then
        checks against the signing key version, as for any openpgp request)."""
        try:
            hashed = base64.b64decode(params.get("hashed", ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("params.hashed is not valid base64",
                               code=ErrorCode.BAD_OPENPGP) from exc
        if not hashed:
            raise InvalidInput("an openpgp signing needs the signature's hashed part "
                               "(params.hashed, base64)", code=ErrorCode.BAD_OPENPGP)
        h = _hash_file(path, algorithm, None)
        h.update(trailer(hashed))
        return h.digest()


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
    r = _Reader(body, "OpenPGP signature")
    head = r.take(6)
    hashed = head + r.take(int.from_bytes(head[4:6], "big"))
    sig_type, algorithm, digest, hashed_subs = _parse_hashed(hashed)
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


def _value_for(sig: ParsedSignature, public_key: PublicKey) -> bytes | None:
    """The signature as the key store output it (what a timestamp covers): DER for ECDSA,
    r || s for Ed25519, the modulus-sized integer for RSA. None when the key type does not
    match the signature's algorithm."""
    if sig.algorithm == PK_ECDSA and isinstance(public_key, ec.EllipticCurvePublicKey):
        return encode_dss_signature(sig.mpis[0], sig.mpis[1])
    if sig.algorithm == PK_EDDSA and isinstance(public_key, ed25519.Ed25519PublicKey):
        if max(sig.mpis).bit_length() > 256:
            return None
        return sig.mpis[0].to_bytes(32, "big") + sig.mpis[1].to_bytes(32, "big")
    if sig.algorithm == PK_RSA and isinstance(public_key, rsa.RSAPublicKey):
        size = (public_key.key_size + 7) // 8
        if sig.mpis[0].bit_length() > size * 8:
            return None
        return sig.mpis[0].to_bytes(size, "big")
    return None


def _certificate(der: bytes) -> tuple[x509.Certificate, PublicKey] | None:
    try:
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
    except ValueError:
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | rsa.RSAPublicKey):
        return None
    return cert, key


# signgate issues a key version's certificate valid from 5 minutes before the version was
# made (service/pki.py): from notBefore the OpenPGP key, and so its fingerprint, follows.
CERTIFICATE_BACKDATE = timedelta(minutes=5)


class OpenPgpVerifier:
    """Offline verifier: the armored signature over FILE, by one of the given certificates.

    The signer is found by the signature itself, not by key ID: a v4 fingerprint covers
    the key's creation time, which an X.509 certificate does not carry. Every certificate
    whose key type fits is tried, and the one whose public key verifies the signature over
    this file is the signer: that is the proof, and it needs nothing but the public key.
    The issuer fingerprint is then checked against the OpenPGP key the certificate's
    notBefore implies (signgate back-dates version certificates by 5 minutes) and
    reported as confirmed or not (not, for a certificate another CA issued).
    """

    name = "openpgp"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        if signature is None:
            raise InvalidInput("an OpenPGP signature is detached: give the .asc file")
        try:
            if signature.stat().st_size > MAX_SIGNATURE_FILE:
                raise InvalidInput(f"{signature} is too large for an OpenPGP signature")
            text = signature.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {signature} as an armored signature") from exc
        sig = parse_signature(dearmor(text, "SIGNATURE"))
        if sig.sig_type != SIG_BINARY:
            raise VerificationFailed(f"signature type 0x{sig.sig_type:02x} is not a binary "
                                     "document signature")
        h = _hash_file(path, sig.digest, None)
        h.update(trailer(sig.hashed))
        hashed: bytes = h.digest()
        if hashed[:2] != sig.left16:
            raise VerificationFailed(f"the signature does not cover {path.name} (digest "
                                     "prefix differs: the file was changed or is another)")
        if not certificates:
            raise InvalidInput("give the signer's certificate (signgate key cert) to verify "
                               "an OpenPGP signature against")
        for der in certificates:
            found = _certificate(der)
            if found is None:
                continue
            cert, public_key = found
            value = _value_for(sig, public_key)
            # OpenPGP RSA signatures are PKCS#1 v1.5 (RFC 4880 §5.2.2).
            if value is None or not verify_digest(public_key, RsaPadding.PKCS1V15, sig.digest,
                                                  hashed, value):
                continue
            return Evidence(
                format=self.name, signer=der,
                certificates=tuple(c for c in certificates if c != der),
                signature_value=value, signing_time=sig.created,
                timestamp_token=sidecar_token(signature),
                details=self._details(sig, cert, public_key))
        raise VerificationFailed(f"the OpenPGP signature over {path.name} was not made by "
                                 "any of the given certificates' keys")

    @staticmethod
    def _details(sig: ParsedSignature, cert: x509.Certificate,
                 public_key: PublicKey) -> dict[str, str]:
        details = {"digest_algorithm": sig.digest.value}
        if sig.issuer_fingerprint is not None:
            details["fingerprint"] = sig.issuer_fingerprint.hex().upper()
        elif sig.issuer_key_id is not None:
            details["key_id"] = sig.issuer_key_id.hex().upper()
        implied = openpgp_key(public_key, cert.not_valid_before_utc + CERTIFICATE_BACKDATE)
        confirmed = (sig.issuer_fingerprint == implied.fingerprint
                     or (sig.issuer_fingerprint is None and sig.issuer_key_id == implied.key_id))
        details["fingerprint_matches_certificate"] = "yes" if confirmed else "unknown"
        return details


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


# Signs a digest of the given algorithm with the key version (through the key store).
DigestSigner = Callable[[DigestAlgorithm, bytes], bytes]


def export_public_key(key: OpenPgpKey, user_id: str, sign: DigestSigner) -> str:
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
    signature = signature_packet(hashed, key.key_id, value, sign(digest, value))
    return armor("PUBLIC KEY BLOCK", packet(TAG_PUBLIC_KEY, key.body)
                 + packet(TAG_USER_ID, uid) + signature)


BUILDER = OpenPgpBuilder()
CLIENT = OpenPgpClient()
VERIFIER = OpenPgpVerifier()
