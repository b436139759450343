"""Public keys and signature verification over precomputed digests (pure)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from signgate.crypto.algorithms import DigestAlgorithm, RsaPadding
from signgate.errors import ErrorCode, InvalidInput

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def load_public_key(pem: bytes | str) -> PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput("not a PEM public key", code=ErrorCode.BAD_PUBLIC_KEY) from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise InvalidInput("unsupported public key type", code=ErrorCode.BAD_PUBLIC_KEY)
    return key


def verify_digest(
    public_key: PublicKey,
    rsa_padding: RsaPadding | None,
    digest_algorithm: DigestAlgorithm,
    digest: bytes,
    signature: bytes,
) -> bool:
    """True when ``signature`` signs ``digest``. For RSA with ``rsa_padding`` None, PSS and
    then PKCS#1 v1.5 are tried (an offline verifier holding only a PEM cannot know)."""
    prehashed = Prehashed(digest_algorithm.hash_algorithm())
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, digest, ec.ECDSA(prehashed))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, digest)
        else:
            paddings = [rsa_padding] if rsa_padding else [RsaPadding.PSS, RsaPadding.PKCS1V15]
            for choice in paddings:
                try:
                    public_key.verify(signature, digest,
                                      rsa_padding_for(choice, digest_algorithm), prehashed)
                    return True
                except InvalidSignature:
                    continue
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def rsa_padding_for(
    choice: RsaPadding, digest_algorithm: DigestAlgorithm
) -> padding.AsymmetricPadding:
    if choice is RsaPadding.PKCS1V15:
        return padding.PKCS1v15()
    # Salt length = digest length (RFC 8017 §9.1 recommendation; openssl's saltlen -1).
    return padding.PSS(
        mgf=padding.MGF1(digest_algorithm.hash_algorithm()),
        salt_length=digest_algorithm.size,
    )
