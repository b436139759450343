"""What every signature format is made of, on both sides of the wire.

Every format is built on the one primitive, *sign this digest with that key*:

- on the **client**, a :class:`ClientFormat` reads the artifact and works out what must be
  hashed (the file, a PE image without its checksum and certificate table, a JAR's
  ``.SF`` file, an OpenPGP hash trailer, ...). Only that digest goes to the server; the
  file never leaves the machine. When the signed result comes back, the client puts it
  where it belongs (next to the file, or into it for embedded formats);
- on the **server**, a :class:`Builder` turns the digest into the bytes the key signs
  (:meth:`Builder.prepare`) and, once the key store has signed them, wraps the signature
  value, the certificate chain and the RFC 3161 token into the format
  (:meth:`Builder.assemble`).

Builders are pure: no database, no HTTP, no key material. The signing batch decides,
signs through the key store and records; see ``service/pipeline/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding


@dataclass(frozen=True)
class SignerKey:
    """The key version that will sign, as a builder may know it (public parts only)."""

    ref: str  # PROJECT/NAME
    version: int
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding
    public_key_pem: str
    created_at: datetime  # of this version (OpenPGP key packets carry it)
    one_time: bool = False


@dataclass(frozen=True)
class FormatRequest:
    """What the client asked to have signed."""

    digest_algorithm: DigestAlgorithm
    digest: bytes  # what the client computed: see each format for what it covers
    artifact_name: str
    now: datetime
    params: Mapping[str, str] = field(default_factory=dict)  # format-specific, validated
    timestamp: bool = False  # the signature will be timestamped (asked for, or key policy)


@dataclass(frozen=True)
class ToBeSigned:
    """What the key signs.

    ``prehashed``: ``message`` is already a digest of ``digest_algorithm`` (raw, OpenPGP,
    Sigstore message signatures) and is signed as it is, by every key type. Otherwise the
    batch hashes ``message`` with ``digest_algorithm`` for ECDSA and RSA, while Ed25519 signs
    ``message`` itself (pure EdDSA, as RFC 8419 and DSSE expect).

    ``hash_algorithm``: the signature's hash when the format fixes it instead of the
    request (DSSE: the key's hash, which DSSE verifiers derive from the key), used in place
    of ``digest_algorithm`` above.
    """

    message: bytes
    prehashed: bool
    state: Any = None  # the builder's own, handed back to assemble()
    hash_algorithm: DigestAlgorithm | None = None


@dataclass(frozen=True)
class Chain:
    """DER certificates: the key version's certificate and the CAs above it. ``root`` is
    signgate's root when it is the anchor of this chain (formats leave it out unless their
    verifier wants it: jarsigner -strict looks for a chain certificate in its keystore)."""

    leaf: bytes
    issuers: tuple[bytes, ...]
    root: bytes | None = None


class Builder(Protocol):
    """The server half of a format."""

    name: str
    # The format has no use without the signer's certificate (CMS, Authenticode, JAR,
    # Sigstore); the batch then looks the chain up.
    needs_chain: bool
    # The RFC 3161 token travels inside the result (CMS unsigned attribute, Sigstore
    # verification material); otherwise the client writes it beside the signature.
    embeds_timestamp: bool

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        """Raise InvalidInput when this key or request cannot make this format."""

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned: ...

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        """The result handed to the client. ``timestamp_token`` is the DER TimeStampToken
        (a CMS ContentInfo) over ``signature``, when the signing is timestamped."""
        ...


@dataclass(frozen=True)
class PublicKeyInfo:
    """The key's current version as the client sees it before signing (OpenPGP needs
    the key's fingerprint inside what it hashes)."""

    ref: str
    version: int
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding | None
    public_key_pem: str
    created_at: datetime


# Progress reporting while reading a big file: called with the number of bytes just read.
Progress = Callable[[int], None]
KeyLookup = Callable[[], PublicKeyInfo]


@dataclass(frozen=True)
class Prepared:
    """What the client sends: the digest and the format's parameters."""

    digest_algorithm: DigestAlgorithm
    digest: bytes
    params: dict[str, str] = field(default_factory=dict)
    state: Any = None  # the client format's own, handed back to finish()


class ClientFormat(Protocol):
    """The client half of a format."""

    name: str
    # Embedded formats (Authenticode, JAR) put the signature into the artifact: they write
    # a signed copy of FILE (in place unless an output is given). Detached formats write
    # FILE + suffix.
    embedded: bool
    suffix: str

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        """Read the artifact (streaming) and compute the digest to send. Raise InvalidInput
        for an artifact this format cannot sign (not a PE, not a JAR, ...)."""
        ...

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        """Write the signed result to ``output`` (atomically: on any failure, neither
        ``path`` nor ``output`` is left half-written)."""
        ...

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        """The digest :meth:`prepare` sends, computed again from the bytes at ``path`` and
        the client's ``params``. The server does this for an artifact it scanned: what it
        signs is derived from the scanned bytes, never taken from the client."""
        ...


@dataclass(frozen=True)
class Evidence:
    """What a format's verifier proved about one signature, for the checks every format
    shares (``signgate verify``: chain to the trust anchor, codeSigning EKU, timestamp,
    revocation).

    A verifier returns Evidence only when the signature value is valid under ``signer``'s
    public key *and* covers the given artifact (file digest, PE image hash, JAR entries, ...);
    otherwise it raises VerificationFailed saying what did not match.
    """

    format: str
    signer: bytes  # DER certificate whose public key verified the signature
    certificates: tuple[bytes, ...] = ()  # DER: every other certificate the format carried
    signature_value: bytes = b""  # what an RFC 3161 token in the signature must cover
    timestamp_token: bytes | None = None  # DER TimeStampToken (CMS ContentInfo), if carried
    signing_time: datetime | None = None  # claimed by the signer (not proof of anything)
    details: dict[str, str] = field(default_factory=dict)  # format-specific facts to show
    # The format is only valid with a verified time (Sigstore bundles: the timestamp is the
    # only proof of when a short-lived certificate was used); without a token it is refused
    # unless the caller explicitly accepts the certificate's validity now.
    needs_timestamp: bool = False
    # Every further signature the artifact's validity depends on (a JAR's other signers):
    # each must pass the same checks as this one, or the artifact is invalid.
    cosigners: tuple[Evidence, ...] = ()


class Verifier(Protocol):
    """The verifying half of a format (pure: files in, Evidence out)."""

    name: str

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        """Check the signature over ``path``. ``signature`` is the detached signature file
        (None for embedded formats). ``certificates`` are DER certificates the user supplied
        (``--certificate``): formats that carry no certificate (raw, OpenPGP, DSSE) look for
        the signer among them."""
        ...
