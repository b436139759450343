"""The signature and digest algorithms signgate knows, as enums (never bare strings)."""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

from signgate.errors import ErrorCode, InvalidInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


class KeyAlgorithm(enum.StrEnum):
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    ED25519 = "ed25519"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_rsa(self) -> bool:
        return self in (KeyAlgorithm.RSA_3072, KeyAlgorithm.RSA_4096)

    @property
    def is_ecdsa(self) -> bool:
        return self in (KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384)

    @classmethod
    def parse(cls, value: str) -> KeyAlgorithm:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(a.value for a in cls)
            raise InvalidInput(
                f"unknown key algorithm {value!r}; expected one of {known}",
                code=ErrorCode.UNKNOWN_ALGORITHM,
            ) from None


class RsaPadding(enum.StrEnum):
    PSS = "pss"
    PKCS1V15 = "pkcs1v15"

    @classmethod
    def parse(cls, value: str) -> RsaPadding:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(
                f"unknown RSA padding {value!r}; expected 'pss' or 'pkcs1v15'",
                code=ErrorCode.UNKNOWN_PADDING,
            ) from None


class DigestAlgorithm(enum.StrEnum):
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    @property
    def size(self) -> int:
        return {"sha256": 32, "sha384": 48, "sha512": 64}[self.value]

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        # Imported here: the command line names algorithms without loading cryptography.
        from cryptography.hazmat.primitives import hashes

        if self is DigestAlgorithm.SHA256:
            return hashes.SHA256()
        if self is DigestAlgorithm.SHA384:
            return hashes.SHA384()
        return hashes.SHA512()

    @classmethod
    def parse(cls, value: str) -> DigestAlgorithm:
        try:
            return cls(value.lower())
        except ValueError:
            raise InvalidInput(
                f"unknown digest algorithm {value!r}; expected sha256, sha384 or sha512",
                code=ErrorCode.UNKNOWN_DIGEST_ALGORITHM,
            ) from None


def parse_digest(algorithm: DigestAlgorithm, hex_digest: str) -> bytes:
    """Decode a hex digest and check that its length fits ``algorithm``."""
    if not _HEX.fullmatch(hex_digest):
        raise InvalidInput("digest must be hexadecimal (pairs of 0-9, a-f)",
                           code=ErrorCode.BAD_DIGEST)
    raw = bytes.fromhex(hex_digest)
    if len(raw) != algorithm.size:
        raise InvalidInput(
            f"a {algorithm.value} digest is {algorithm.size} bytes "
            f"({algorithm.size * 2} hex characters), got {len(raw)} bytes",
            code=ErrorCode.BAD_DIGEST_LENGTH,
        )
    return raw
