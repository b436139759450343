"""``sshsig``: OpenSSH signatures, the ones ``ssh-keygen -Y sign`` writes and git's
``gpg.format=ssh`` (and GitHub's SSH commit verification) reads.

The wire format is OpenSSH's PROTOCOL.sshsig (rev. 1.4); only its wrapper and armor are
written here: the public key blob comes from ``cryptography``'s OpenSSH serialisation and
every signature value from the key store. The client hashes FILE (sha512 by default, as
ssh-keygen; sha256 allowed: the only two hashes the spec names) and sends the digest and
the ``namespace`` parameter; the server builds the signed data (spec §3)::

    byte[6] "SSHSIG" || string namespace || string reserved ("")
        || string hash_algorithm || string H(message)

which the key signs as SSH signs (RFC 8709 Ed25519: pure, over the data; RFC 5656
ecdsa-sha2-nistp256/384: ECDSA over the SHA-256/384 of the data; RFC 8332 rsa-sha2-512:
PKCS#1 v1.5 over its SHA-512, so an RSA key signing with PSS is refused), and returns the
armored blob (spec §1, §2), written as ``FILE.sig`` like ssh-keygen.

A key version's OpenSSH public key line (:func:`openssh_line`) is what goes into
``authorized_keys``/``allowed_signers`` and git's ``user.signingkey``; its comment
``signgate:PROJECT/NAME`` names the signgate key (``signgate-ssh-keygen``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import PublicKey
from signgate.errors import ErrorCode, InvalidInput, VerificationFailed
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
from signgate.formats.files import hash_path, sidecar_token, write_atomic

MAGIC = b"SSHSIG"  # PROTOCOL.sshsig §2, §3: MAGIC_PREAMBLE
VERSION = 1  # §2: SIG_VERSION; verifiers reject greater versions
BEGIN = "-----BEGIN SSH SIGNATURE-----"  # §1
END = "-----END SSH SIGNATURE-----"
LINE = 70  # base64 characters per armor line, as ssh-keygen writes them (§1: SHOULD wrap)
SUFFIX = ".sig"
# §2: "The supported hash algorithms are sha256 and sha512."
HASHES = (DigestAlgorithm.SHA256, DigestAlgorithm.SHA512)
DEFAULT_DIGEST = DigestAlgorithm.SHA512  # ssh-keygen's default (-O hashalg=)
MAX_NAMESPACE = 256
MAX_SIGNATURE_BYTES = 64 << 10  # an armored SSHSIG is under 2 KiB even for RSA-4096
COMMENT_PREFIX = "signgate:"


# -- RFC 4251 §5 data types ---------------------------------------------------------------

def ssh_string(data: bytes) -> bytes:
    """``string``: uint32 length, then the bytes."""
    return struct.pack(">I", len(data)) + data


def ssh_mpint(n: int) -> bytes:
    """``mpint`` of a non-negative integer: big-endian two's complement, no needless
    leading byte, a 0x00 first when the top bit would be set; zero is the empty string."""
    if n == 0:
        return ssh_string(b"")
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big")  # one spare bit: the sign
    return ssh_string(raw)


class Reader:
    """Reads RFC 4251 values from a buffer; anything short or left over is malformed."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.at = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise VerificationFailed(f"malformed {self.what}: truncated")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise VerificationFailed(f"malformed {self.what}: negative integer")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.at != len(self.data):
            raise VerificationFailed(f"malformed {self.what}: {len(self.data) - self.at} "
                                     "bytes after its end")


# -- public keys --------------------------------------------------------------------------

def openssh_public(key: PublicKey) -> bytes:
    """``TYPE BASE64`` (no comment): cryptography's OpenSSH public key serialisation."""
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def public_key_blob(key: PublicKey) -> bytes:
    """The key's SSH wire encoding (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4)."""
    return base64.b64decode(openssh_public(key).split()[1])


def load_pem_key(public_key_pem: str) -> PublicKey:
    key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | rsa.RSAPublicKey):
        raise InvalidInput("unsupported public key type", code=ErrorCode.BAD_PUBLIC_KEY)
    return key


def openssh_line(public_key_pem: str, ref: str) -> str:
    """The key's ``authorized_keys``/``allowed_signers`` line, commented
    ``signgate:PROJECT/NAME`` (what ``signgate-ssh-keygen`` maps back to the key)."""
    return f"{openssh_public(load_pem_key(public_key_pem)).decode('ascii')} {COMMENT_PREFIX}{ref}"


@dataclass(frozen=True)
class OpenSshKey:
    """One OpenSSH public key line: the key, its blob and its comment."""

    key: PublicKey
    blob: bytes
    comment: str

    @property
    def ref(self) -> str | None:
        """The signgate key the comment names (``signgate:PROJECT/NAME``), if any."""
        if self.comment.startswith(COMMENT_PREFIX):
            return self.comment[len(COMMENT_PREFIX):] or None
        return None


def parse_openssh_line(text: str) -> OpenSshKey:
    """The first key line of ``text`` (an ``id_*.pub`` file, or git's ``key::`` literal):
    ``TYPE BASE64 [COMMENT]``."""
    line = next((ln.strip() for ln in text.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")), "")
    parts = line.split(None, 2)
    if line.startswith("-----BEGIN"):
        raise InvalidInput("a PEM key, not an OpenSSH public key line (TYPE BASE64 [COMMENT])",
                           code=ErrorCode.BAD_PUBLIC_KEY)
    if len(parts) < 2:
        raise InvalidInput("not an OpenSSH public key line (TYPE BASE64 [COMMENT])",
                           code=ErrorCode.BAD_PUBLIC_KEY)
    try:
        key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise InvalidInput(f"not an OpenSSH public key signgate can sign with ({parts[0]}): "
                           "expected ssh-ed25519, ecdsa-sha2-nistp256/384 or ssh-rsa",
                           code=ErrorCode.BAD_PUBLIC_KEY) from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | rsa.RSAPublicKey):
        raise InvalidInput(f"{parts[0]} keys are not signgate keys",
                           code=ErrorCode.BAD_PUBLIC_KEY)
    return OpenSshKey(key, public_key_blob(key), parts[2].strip() if len(parts) > 2 else "")


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` as ssh-keygen -l prints it (unpadded base64 of the blob's SHA-256)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# -- the signed data, the signature, the blob and its armor ---------------------------------

def check_namespace(namespace: str | None) -> str:
    """§2: the namespace MUST NOT be empty. Printable, and short: it names a domain."""
    if not namespace:
        raise InvalidInput("sshsig needs a namespace (--namespace NS), the domain the "
                           "signature is for: 'file' for files, 'git' for git objects, as "
                           "ssh-keygen -n")
    if len(namespace) > MAX_NAMESPACE or not namespace.isprintable():
        raise InvalidInput(f"an sshsig namespace is printable text of at most "
                           f"{MAX_NAMESPACE} characters")
    return namespace


def signed_data(namespace: str, hash_algorithm: str, digest: bytes) -> bytes:
    """§3: what the key signs."""
    return (MAGIC + ssh_string(namespace.encode("utf-8")) + ssh_string(b"")
            + ssh_string(hash_algorithm.encode("ascii")) + ssh_string(digest))


def signature_scheme(algorithm: KeyAlgorithm) -> tuple[str, DigestAlgorithm | None]:
    """The SSH signature algorithm of a signgate key and the hash it signs the data with
    (None: Ed25519 signs the data itself)."""
    if algorithm is KeyAlgorithm.ED25519:
        return "ssh-ed25519", None  # RFC 8709 §6
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return "ecdsa-sha2-nistp256", DigestAlgorithm.SHA256  # RFC 5656 §6.2.1
    if algorithm is KeyAlgorithm.ECDSA_P384:
        return "ecdsa-sha2-nistp384", DigestAlgorithm.SHA384
    return "rsa-sha2-512", DigestAlgorithm.SHA512  # RFC 8332 §3 (§2: not ssh-rsa's SHA-1)


def encode_signature(algorithm: KeyAlgorithm, value: bytes) -> bytes:
    """The SSH signature (``string`` algorithm, ``string`` blob) of a key store's value:
    ECDSA's DER (r, s) becomes ``mpint r || mpint s`` (RFC 5656 §3.1.2); Ed25519's 64 bytes
    and RSA's modulus-sized S go as they are."""
    name, _ = signature_scheme(algorithm)
    if algorithm.is_ecdsa:
        r, s = decode_dss_signature(value)
        value = ssh_mpint(r) + ssh_mpint(s)
    return ssh_string(name.encode("ascii")) + ssh_string(value)


def blob(public_blob: bytes, namespace: str, hash_algorithm: str, signature: bytes) -> bytes:
    """§2: the signature blob."""
    return (MAGIC + struct.pack(">I", VERSION) + ssh_string(public_blob)
            + ssh_string(namespace.encode("utf-8")) + ssh_string(b"")
            + ssh_string(hash_algorithm.encode("ascii")) + ssh_string(signature))


def armor(data: bytes) -> bytes:
    """§1: header, base64 wrapped, footer."""
    text = base64.b64encode(data).decode("ascii")
    lines = [text[i:i + LINE] for i in range(0, len(text), LINE)]
    return "\n".join([BEGIN, *lines, END, ""]).encode("ascii")


def dearmor(data: bytes) -> bytes:
    """The blob inside an armored signature (§1: MUST start with the header, end with the
    footer)."""
    try:
        text = data.decode("ascii").strip().replace("\r", "")
    except UnicodeDecodeError:
        raise VerificationFailed("not an SSH signature: not ASCII armor") from None
    if not text.startswith(BEGIN):
        raise VerificationFailed(f"not an SSH signature: no {BEGIN} line")
    if not text.endswith(END):
        raise VerificationFailed(f"malformed SSH signature: no {END} line")
    body = "".join(text[len(BEGIN):-len(END)].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed("malformed SSH signature: invalid base64") from None


def looks_like(signature: Path) -> bool:
    """Is the file an armored SSH signature? (``FILE.sig`` is raw's name too.)"""
    try:
        with signature.open("rb") as f:
            return f.read(len(BEGIN)).decode("ascii", "replace") == BEGIN
    except OSError:
        return False


@dataclass(frozen=True)
class Signature:
    """A parsed SSHSIG blob (§2)."""

    public_blob: bytes
    namespace: str
    hash_algorithm: str
    algorithm: str  # the SSH signature algorithm
    value: bytes  # its signature blob


def parse(data: bytes) -> Signature:
    r = Reader(data, "SSH signature")
    if r.take(len(MAGIC)) != MAGIC:
        raise VerificationFailed("not an SSH signature: no SSHSIG preamble")
    version = r.uint32()
    if version != VERSION:
        raise VerificationFailed(f"SSH signature version {version}: signgate reads "
                                 f"version {VERSION}")
    public_blob, namespace, _reserved, hash_algorithm, sig = (
        r.string(), r.string(), r.string(), r.string(), r.string())
    r.end()
    s = Reader(sig, "SSH signature value")
    algorithm, value = s.string(), s.string()
    s.end()
    try:
        return Signature(public_blob, namespace.decode("utf-8"), hash_algorithm.decode("ascii"),
                         algorithm.decode("ascii"), value)
    except UnicodeDecodeError:
        raise VerificationFailed("malformed SSH signature: a name is not text") from None


def public_key_of(public_blob: bytes) -> PublicKey:
    """The key a signature blob names, through cryptography's OpenSSH loader."""
    kind = Reader(public_blob, "SSH public key").string()
    try:
        key = serialization.load_ssh_public_key(
            kind + b" " + base64.b64encode(public_blob))
    except (ValueError, UnsupportedAlgorithm):
        raise VerificationFailed(f"the SSH signature's key ({kind.decode('ascii', 'replace')}) "
                                 "is not one signgate can check") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | rsa.RSAPublicKey):
        raise VerificationFailed("the SSH signature's key is not one signgate can check")
    return key


_ECDSA = {"ecdsa-sha2-nistp256": ("secp256r1", hashes.SHA256()),
          "ecdsa-sha2-nistp384": ("secp384r1", hashes.SHA384()),
          "ecdsa-sha2-nistp521": ("secp521r1", hashes.SHA512())}
_RSA: dict[str, hashes.HashAlgorithm] = {"rsa-sha2-512": hashes.SHA512(),
                                         "rsa-sha2-256": hashes.SHA256()}


def check_value(key: PublicKey, algorithm: str, value: bytes, data: bytes) -> bool:
    """Does the SSH signature (``algorithm``, ``value``) of ``data`` verify under ``key``?"""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and algorithm == "ssh-ed25519":
            key.verify(value, data)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm in _ECDSA:
            curve, hash_ = _ECDSA[algorithm]
            if key.curve.name != curve:
                return False
            r = Reader(value, "ECDSA signature")
            der = encode_dss_signature(r.mpint(), r.mpint())
            r.end()
            key.verify(der, data, ec.ECDSA(hash_))
            return True
        if isinstance(key, rsa.RSAPublicKey) and algorithm in _RSA:
            key.verify(value, data, padding.PKCS1v15(), _RSA[algorithm])
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def verify(signature: Signature, digest: bytes, namespace: str | None = None) -> bool:
    """Does the signature hold over a message whose ``hash_algorithm`` digest is
    ``digest`` (and, if given, under ``namespace``)?"""
    if namespace is not None and signature.namespace != namespace:
        return False
    data = signed_data(signature.namespace, signature.hash_algorithm, digest)
    return check_value(public_key_of(signature.public_blob), signature.algorithm,
                       signature.value, data)


def message_hash(signature: Signature) -> DigestAlgorithm:
    """The digest algorithm the signature's message hash is, if the spec allows it."""
    known = {a.value: a for a in HASHES}
    if signature.hash_algorithm not in known:
        raise VerificationFailed(f"the SSH signature's hash {signature.hash_algorithm!r} is "
                                 "not sha256 or sha512 (PROTOCOL.sshsig)")
    return known[signature.hash_algorithm]


def read(signature: Path) -> Signature:
    """Read and parse an armored SSH signature file."""
    try:
        if signature.stat().st_size > MAX_SIGNATURE_BYTES:
            raise VerificationFailed(f"{signature.name} is too large to be an SSH signature")
        data = signature.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {signature}: {exc.strerror}") from exc
    return parse(dearmor(data))


# -- server half ----------------------------------------------------------------------------

class SshsigBuilder:
    name = "sshsig"
    needs_chain = False
    embeds_timestamp = False  # SSHSIG has no place for one: OUT.tsr beside it, if asked

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        check_namespace(request.params.get("namespace"))
        if request.digest_algorithm not in HASHES:
            raise InvalidInput(f"SSH signatures hash the message with sha256 or sha512 "
                               f"(PROTOCOL.sshsig), not {request.digest_algorithm.value}",
                               code=ErrorCode.UNSUPPORTED_FORMAT)
        if key.algorithm.is_rsa and key.rsa_padding is not RsaPadding.PKCS1V15:
            raise InvalidInput(f"key {key.ref} signs RSA with PSS; SSH signatures take RSA "
                               "PKCS#1 v1.5 only (rsa-sha2-512): use an Ed25519, ECDSA or "
                               "PKCS#1 v1.5 RSA key", code=ErrorCode.UNSUPPORTED_FORMAT)

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        namespace = check_namespace(request.params.get("namespace"))
        _, hash_ = signature_scheme(key.algorithm)
        data = signed_data(namespace, request.digest_algorithm.value, request.digest)
        return ToBeSigned(data, prehashed=False, hash_algorithm=hash_)

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        public = public_key_blob(load_pem_key(key.public_key_pem))
        return armor(blob(public, request.params["namespace"], request.digest_algorithm.value,
                          encode_signature(key.algorithm, signature)))


# -- client half ----------------------------------------------------------------------------

class SshsigClient:
    """Hashes FILE (sha256 or sha512); the namespace travels as the ``namespace``
    parameter, given by the caller (``sign --namespace``)."""

    name = "sshsig"
    embedded = False
    suffix = SUFFIX

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        if algorithm not in HASHES:
            raise InvalidInput(f"SSH signatures hash the file with sha256 or sha512, not "
                               f"{algorithm.value}", code=ErrorCode.UNSUPPORTED_FORMAT)
        return Prepared(algorithm, hash_path(path, algorithm, progress))

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        write_atomic(output, result)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        return hash_path(path, algorithm)


# -- verifier -------------------------------------------------------------------------------

class SshsigVerifier:
    """The signer is the given certificate whose public key is the one the signature
    names (an SSHSIG carries a bare key, no certificate)."""

    name = "sshsig"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        if signature is None:
            raise InvalidInput("an SSH signature is detached: give the .sig file",
                               code=ErrorCode.SIGNATURE_REQUIRED)
        parsed = read(signature)
        signer = next((der for der in certificates
                       if _cert_blob(der) == parsed.public_blob), None)
        if signer is None:
            raise InvalidInput(
                "an SSH signature carries no certificate: give the signer's (signgate key "
                f"cert P/N) with --certificate, or its key with --public-key (signature key "
                f"{fingerprint(parsed.public_blob)})", code=ErrorCode.CERTIFICATE_REQUIRED)
        if not verify(parsed, hash_path(path, message_hash(parsed))):
            raise VerificationFailed(f"the SSH signature does not match {path.name}: the "
                                     "file was changed after signing, or the signature is "
                                     "for another file")
        return Evidence(self.name, signer, signature_value=keystore_value(parsed),
                        timestamp_token=sidecar_token(signature), details=describe(parsed))


def describe(parsed: Signature) -> dict[str, str]:
    """What ``verify`` shows of an SSH signature."""
    return {"namespace": parsed.namespace, "hash_algorithm": parsed.hash_algorithm,
            "ssh_algorithm": parsed.algorithm, "ssh_key": fingerprint(parsed.public_blob)}


def keystore_value(parsed: Signature) -> bytes:
    """The signature value as the key store made it, which an RFC 3161 token beside the
    signature (``FILE.sig.tsr``) covers: DER (r, s) for ECDSA, the blob as it is else."""
    if parsed.algorithm in _ECDSA:
        r = Reader(parsed.value, "ECDSA signature")
        der = encode_dss_signature(r.mpint(), r.mpint())
        r.end()
        return der
    return parsed.value


def _cert_blob(der: bytes) -> bytes | None:
    key = x509.load_der_x509_certificate(der).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                  | rsa.RSAPublicKey):
        return public_key_blob(key)
    return None


BUILDER = SshsigBuilder()
CLIENT = SshsigClient()
VERIFIER = SshsigVerifier()
