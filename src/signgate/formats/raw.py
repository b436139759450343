"""``raw``: the bare signature value over the artifact's digest (DER for ECDSA), as
``openssl dgst -verify`` and ``openssl pkeyutl -verify`` read it. The timestamp, if any,
is written beside it (``FILE.sig.tsr``)."""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.formats.base import (
    Chain,
    FormatRequest,
    KeyLookup,
    Prepared,
    Progress,
    SignerKey,
    ToBeSigned,
)
from signgate.formats.files import hash_path, write_atomic


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


BUILDER = RawBuilder()
CLIENT = DetachedDigest("raw", ".sig")
