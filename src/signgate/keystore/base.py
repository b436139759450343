"""The key store interface that every signature format is built on.

A key store generates key pairs and signs digests with them. It never returns private key
material: ``generate`` hands back a URI naming the key and its public key, nothing else.
Where and how a store keeps its keys (sealed blobs in a table, objects on an HSM token) is
its own business: callers name a key by a :class:`KeyRef` and never see the storage, so a
new kind of store needs no change outside ``keystore/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding


@dataclass(frozen=True)
class KeyRef:
    """A key as its owner knows it: the URI its store gave it (the scheme picks the store),
    its algorithm, and for RSA the padding to sign with. A value, cheap to make per
    signing; it holds nothing secret and nothing that reaches into storage."""

    uri: str
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding = RsaPadding.PSS

    @property
    def scheme(self) -> str:
        return self.uri.split(":", 1)[0]


@dataclass(frozen=True)
class GeneratedKey:
    """What ``generate`` tells the caller: the new key's URI and public key, to store."""

    uri: str
    public_key_pem: str


class KeyStore(Protocol):
    """One kind of key storage. ``scheme`` is the URI scheme of the keys it makes (and the
    registry routes by); ``name`` says which store it is in messages and logs."""

    scheme: str
    name: str

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        """Make a new key pair inside the store."""
        ...

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        """Sign a precomputed digest; the result is what the algorithm's verifier reads.

        ECDSA: DER ``Ecdsa-Sig-Value``; RSA: PSS (salt = digest length) or PKCS#1 v1.5;
        Ed25519: pure Ed25519 over the bytes given (RFC 8032 has no prehash mode that
        common verifiers accept): the digest for raw signatures, the whole to-be-signed
        structure where X.509 wants Ed25519 over the message (RFC 8410).
        Raises :class:`signgate.errors.KeyStoreError` for a key it does not hold.
        """
        ...

    def probe(self, ref: KeyRef) -> None:
        """Check, without signing, that the store can use the key now (a software vault:
        that its master key unseals the stored blob); raise :class:`KeyStoreError` if not."""
        ...

    def destroy(self, ref: KeyRef) -> None:
        """Delete the key, storage and any copy held open: afterwards the store can never
        sign with it again (``sign`` and ``probe`` raise :class:`KeyStoreError`)."""
        ...
