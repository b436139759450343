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
written (in ``codec``): packet and subpacket framing, MPIs, fingerprints, armor with CRC-24.

The package keeps the pure codec visibly below the halves that do I/O::

    client.py    reads FILE, sends the digest, writes FILE.asc     (client half)
    verifier.py  reads FILE and FILE.asc, returns Evidence          (offline verifier)
    builder.py   checks the hashed part, wraps the signature value  (server half, pure)
    cleartext.py canonical text, dash-escaping, cleartext messages (pure bytes)
    codec.py     packets, MPIs, keys, fingerprints, armor           (pure bytes)

``params["type"] = "text"`` asks for a canonical-text signature (type 0x01) instead of a
binary one: the signature of a cleartext message (``gpg --clearsign``, apt's InRelease),
which ``signgate-gpg`` makes (client/gpg_sign.py). The client hashes the canonical text;
the server checks that the hashed part says 0x01, exactly as it checks the rest.

Everything the single module ``formats/openpgp.py`` offered is re-exported here.
"""

from __future__ import annotations

from signgate.formats.openpgp.builder import (
    CLOCK_SKEW,
    MAX_HASHED,
    ROTATED,
    OpenPgpBuilder,
    check_hashed,
)
from signgate.formats.openpgp.client import (
    OpenPgpClient,
)
from signgate.formats.openpgp.codec import (
    CURVE_OIDS,
    DIGESTS,
    ED25519_OID,
    HASH_IDS,
    KEY_FLAGS_CERTIFY_SIGN,
    MAX_USER_ID,
    PK_ECDSA,
    PK_EDDSA,
    PK_RSA,
    SIG_BINARY,
    SIG_POSITIVE_CERTIFICATION,
    SUB_CREATION_TIME,
    SUB_ISSUER_FINGERPRINT,
    SUB_ISSUER_KEY_ID,
    SUB_KEY_FLAGS,
    SUB_PREFERRED_HASHES,
    TAG_PUBLIC_KEY,
    TAG_SIGNATURE,
    TAG_USER_ID,
    OpenPgpKey,
    ParsedSignature,
    Subpacket,
    armor,
    check_user_id,
    crc24,
    data_subpackets,
    dearmor,
    export_public_key,
    hashed_part,
    key_of,
    mpi,
    openpgp_key,
    packet,
    parse_signature,
    read_packets,
    read_subpackets,
    refuse_unsupported,
    self_signature_digest,
    signature_packet,
    subpacket,
    trailer,
)
from signgate.formats.openpgp.verifier import (
    CERTIFICATE_BACKDATE,
    MAX_SIGNATURE_FILE,
    OpenPgpVerifier,
)

BUILDER = OpenPgpBuilder()
CLIENT = OpenPgpClient()
VERIFIER = OpenPgpVerifier()

__all__ = [
    "BUILDER",
    "CERTIFICATE_BACKDATE",
    "CLIENT",
    "CLOCK_SKEW",
    "CURVE_OIDS",
    "DIGESTS",
    "ED25519_OID",
    "HASH_IDS",
    "KEY_FLAGS_CERTIFY_SIGN",
    "MAX_HASHED",
    "MAX_SIGNATURE_FILE",
    "MAX_USER_ID",
    "PK_ECDSA",
    "PK_EDDSA",
    "PK_RSA",
    "ROTATED",
    "SIG_BINARY",
    "SIG_POSITIVE_CERTIFICATION",
    "SUB_CREATION_TIME",
    "SUB_ISSUER_FINGERPRINT",
    "SUB_ISSUER_KEY_ID",
    "SUB_KEY_FLAGS",
    "SUB_PREFERRED_HASHES",
    "TAG_PUBLIC_KEY",
    "TAG_SIGNATURE",
    "TAG_USER_ID",
    "VERIFIER",
    "OpenPgpBuilder",
    "OpenPgpClient",
    "OpenPgpKey",
    "OpenPgpVerifier",
    "ParsedSignature",
    "Subpacket",
    "armor",
    "check_hashed",
    "check_user_id",
    "crc24",
    "data_subpackets",
    "dearmor",
    "export_public_key",
    "hashed_part",
    "key_of",
    "mpi",
    "openpgp_key",
    "packet",
    "parse_signature",
    "read_packets",
    "read_subpackets",
    "refuse_unsupported",
    "self_signature_digest",
    "signature_packet",
    "subpacket",
    "trailer",
]
