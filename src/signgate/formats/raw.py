"""``raw``: the bare signature value over the artifact's digest (DER for ECDSA), as
``openssl dgst -verify`` and ``openssl pkeyutl -verify`` read it. The timestamp, if any,
is written beside it (``FILE.sig.tsr``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.digests import CHUNK
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

if TYPE_CHECKING:
    from signgate.crypto.signatures import PublicKey

# The verifier's x509 and signature code is imported when it runs: signing a file raw
# needs only a hash, and ``signgate sign`` should not pay for the rest (cli/main.py).


class RawBuilder:
    name = "raw"
    needs_chain = False
    embeds_timestamp = False

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        pass

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        return ToBeSigned(request.digest, prehashed=True)

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        return signature


class DetachedDigest:
    """Client half of the formats whose only input is the artifact's digest."""

    embedded = False

    def __init__(self, name: str, suffix: str) -> None:
        self.name = name
        self.suffix = suffix

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        return Prepared(algorithm, hash_path(path, algorithm, progress))

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        write_atomic(output, result)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        return hash_path(path, algorithm)


def digests_of(path: Path) -> dict[DigestAlgorithm, bytes]:
    """The file's digest under every algorithm signgate signs with, in one read."""
    hashers = {alg: hashlib.new(alg.value) for alg in DigestAlgorithm}
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                for h in hashers.values():
                    h.update(chunk)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    return {alg: h.digest() for alg, h in hashers.items()}


def read_signature(signature: Path | None, limit: int = 1 << 20) -> bytes:
    if signature is None:
        raise InvalidInput("this format needs the signature file (--signature)")
    try:
        if signature.stat().st_size > limit:
            raise InvalidInput(f"{signature.name} is too large to be a signature")
        return signature.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {signature}: {exc.strerror}") from exc


def signer_key(der: bytes) -> PublicKey | None:
    from cryptography import x509

    from signgate.crypto.signatures import PublicKey

    key = x509.load_der_x509_certificate(der).public_key()
    return key if isinstance(key, PublicKey) else None


class RawVerifier:
    """A raw signature names neither its signer nor its digest: the signer is looked for
    among the certificates the user gives, under each digest algorithm."""

    name = "raw"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        value = read_signature(signature)
        assert signature is not None  # read_signature refuses None
        if not certificates:
            # Missing input (exit 7), not a failed verification (8): nothing was checked.
            raise InvalidInput("a raw signature does not name its signer: give the key "
                               "version's certificate (signgate key cert P/N) with "
                               "--certificate", code=ErrorCode.CERTIFICATE_REQUIRED)
        from signgate.crypto.signatures import verify_digest

        digests = digests_of(path)
        for der in certificates:
            key = signer_key(der)
            if key is None:
                continue
            for alg, digest in digests.items():
                if verify_digest(key, None, alg, digest, value):
                    return Evidence("raw", der, signature_value=value,
                                    timestamp_token=sidecar_token(signature),
                                    details={"digest_algorithm": alg.value})
        raise VerificationFailed("the signature does not match this file under any of the "
                                 "given certificates")


BUILDER = RawBuilder()
CLIENT = DetachedDigest("raw", ".sig")
VERIFIER = RawVerifier()
