"""The software vault: key pairs generated here and kept only sealed.

Each private key is serialised as PKCS#8 DER and sealed with AES-256-GCM under a
key-encryption key (KEK) derived by HKDF-SHA256 from the master key. The associated data
binds the sealed blob to its key URI and algorithm, so a blob copied onto another key row
does not open. Blob layout: ``b"\x01" || nonce (12) || ciphertext+tag``.

The sealed blobs are kept by the :class:`~signgate.keystore.blobs.SealedBlobs` repository
the vault is given (the database's table, or memory for one-time keys). Opened keys are
kept in memory (bounded LRU) so that signing does not pay for AES and PKCS#8 parsing on
every request; they never leave the process.
"""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.crypto.signatures import rsa_padding_for
from signgate.errors import ConfigError, ErrorCode, KeyStoreError
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.blobs import InMemoryBlobs, SealedBlobs

SCHEME = "soft"
ONE_TIME_SCHEME = "soft-once"
_VERSION = b"\x01"
_KEK_INFO = b"signgate soft vault kek v1"
MASTER_KEY_BYTES = 32

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def new_master_key() -> bytes:
    return os.urandom(MASTER_KEY_BYTES)


def encode_master_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def decode_master_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ConfigError(f"master key in {source} is not base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(f"master key in {source} must be {MASTER_KEY_BYTES} bytes")
    return key


def read_master_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text("ascii")
    except OSError as exc:
        raise ConfigError(f"cannot read master key file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ConfigError(
            f"master key file {path} is readable by others (mode {mode:o}); run chmod 600"
        )
    return decode_master_key(text, str(path))


def _generate_private(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    bits = 3072 if algorithm is KeyAlgorithm.RSA_3072 else 4096
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class SoftwareKeyStore:
    """Keys sealed under a KEK, their blobs kept in ``blobs``; implements
    :class:`signgate.keystore.base.KeyStore`.

    ``scheme`` lets two vaults live side by side in one registry: the database-backed one
    (``soft:``) and the in-memory one for one-time keys (``soft-once:``).
    """

    def __init__(self, master_key: bytes, blobs: SealedBlobs, *, scheme: str = SCHEME,
                 name: str = "software vault", cache_size: int = 1024) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise ConfigError(f"master key must be {MASTER_KEY_BYTES} bytes")
        kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEK_INFO).derive(
            master_key
        )
        self.scheme = scheme
        self.name = name
        self._aead = AESGCM(kek)
        self._blobs = blobs
        self._cache: OrderedDict[str, PrivateKey] = OrderedDict()
        self._cache_size = cache_size
        self._destroys = 0  # see _open
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SoftwareKeyStore({self.scheme}:, <sealed>)"

    @staticmethod
    def _aad(uri: str, algorithm: KeyAlgorithm) -> bytes:
        return f"signgate-soft-v1|{uri}|{algorithm.value}".encode()

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        """A new key pair; its sealed blob is ``put`` into the blob repository (inside the
        caller's transaction, for the database's), and the private key is not kept open."""
        uri = f"{self.scheme}:{uuid.uuid4()}"
        private = _generate_private(algorithm)
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = os.urandom(12)
        sealed = _VERSION + nonce + self._aead.encrypt(nonce, der, self._aad(uri, algorithm))
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._blobs.put(uri, sealed)
        return GeneratedKey(uri=uri, public_key_pem=pem.decode("ascii"))

    def probe(self, ref: KeyRef) -> None:
        """Unseal the key from its stored blob, bypassing the cache, and forget it: proves
        that this master key opens this vault now (start-up and health checks)."""
        self._unseal(ref)

    def _open(self, ref: KeyRef) -> PrivateKey:
        with self._lock:
            cached = self._cache.get(ref.uri)
            if cached is not None:
                self._cache.move_to_end(ref.uri)
                return cached
            destroys = self._destroys
        private = self._unseal(ref)
        with self._lock:
            if destroys != self._destroys:
                # A key was destroyed while this one was being opened: perhaps this one,
                # so it is used for the signing already under way but not kept.
                return private
            self._cache[ref.uri] = private
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return private

    def _unseal(self, ref: KeyRef) -> PrivateKey:
        sealed = self._blobs.get(ref.uri)
        if sealed is None:
            raise KeyStoreError(f"no such key {ref.uri} in the {self.name}")
        if sealed[:1] != _VERSION or len(sealed) < 1 + 12 + 16:
            raise KeyStoreError(f"key {ref.uri} has no usable sealed key material")
        try:
            der = self._aead.decrypt(sealed[1:13], sealed[13:], self._aad(ref.uri, ref.algorithm))
        except InvalidTag:
            raise KeyStoreError(
                f"cannot open key {ref.uri}: wrong master key or tampered key material",
                code=ErrorCode.KEYSTORE_UNSEAL_FAILED,
            ) from None
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                          | rsa.RSAPrivateKey):
            raise KeyStoreError(f"key {ref.uri} has an unsupported type")
        return private

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        private = self._open(ref)
        prehashed = Prehashed(digest_algorithm.hash_algorithm())
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return private.sign(digest, ec.ECDSA(prehashed))
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(digest)
        pad = rsa_padding_for(ref.rsa_padding, digest_algorithm)
        return private.sign(digest, pad, prehashed)

    def destroy(self, ref: KeyRef) -> None:
        """Delete the blob, then drop the open key: with neither left, ``sign`` finds no
        such key. (Another process that opened the key keeps its own cached copy until it
        restarts; only one-time keys, which live in one process's memory, are destroyed.)"""
        self._blobs.delete(ref.uri)
        with self._lock:
            self._destroys += 1
            self._cache.pop(ref.uri, None)


def one_time_store(master_key: bytes) -> SoftwareKeyStore:
    """The vault for one-time keys: blobs in this process's memory only, URIs of their
    own scheme so that the registry routes their signing here. A one-time key is destroyed
    right after its one signing, so nothing of it outlives the request."""
    return SoftwareKeyStore(master_key, InMemoryBlobs(), scheme=ONE_TIME_SCHEME,
                            name="one-time key vault", cache_size=16)
