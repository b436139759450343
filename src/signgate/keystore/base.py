"""The key store interface that every signature format is built on.

A key store generates key pairs and signs digests with them. It never returns private key
material: ``generate`` hands back the public key, a URI naming the key and, for stores
that keep nothing themselves (the software vault), an opaque sealed blob that only the
same store with the same key-encryption key can open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding


@dataclass(frozen=True)
class KeyHandle:
    """Everything a store needs to find a key: its URI, algorithm, and (for the software
    vault) a loader for its sealed blob, called only when the key is not already open."""

    uri: str
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding = RsaPadding.PSS
    load_sealed: Callable[[], bytes] | None = None

    def __repr__(self) -> str:  # never print the sealed blob
        return f"KeyHandle(uri={self.uri!r}, algorithm={self.algorithm.value})"


@dataclass(frozen=True)
class GeneratedKey:
    uri: str
    public_key_pem: str
    sealed: bytes | None

    def __repr__(self) -> str:
        return f"GeneratedKey(uri={self.uri!r})"


class KeyStore(Protocol):
    scheme: str

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        """Make a new key pair inside the store."""
        ...

    def sign(self, handle: KeyHandle, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        """Sign a precomputed digest; the result is what the algorithm's verifier reads.

        ECDSA: DER ``Ecdsa-Sig-Value``; RSA: PSS (salt = digest length) or PKCS#1 v1.5;
        Ed25519: pure Ed25519 over the bytes given (RFC 8032 has no prehash mode that
        common verifiers accept): the digest for raw signatures, the whole to-be-signed
        structure where X.509 wants Ed25519 over the message (RFC 8410).
        """
        ...

    def probe(self, handle: KeyHandle) -> None:
        """Check, without signing, that the store can use the key now (a software vault:
        that its master key unseals the stored blob); raise :class:`KeyStoreError` if not."""
        ...

    def destroy(self, handle: KeyHandle) -> None:
        """Forget the key (one-time keys); afterwards it can never sign again."""
        ...
