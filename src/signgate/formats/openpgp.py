"""``openpgp``: not built yet."""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput
from signgate.formats.base import (
    Chain,
    FormatRequest,
    KeyLookup,
    Prepared,
    Progress,
    SignerKey,
    ToBeSigned,
)

UNAVAILABLE = InvalidInput("the openpgp format is not available yet", code="unsupported_format")


class _Pending:
    name = "openpgp"
    needs_chain = False
    embeds_timestamp = False
    embedded = False
    suffix = ".openpgp"

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        raise UNAVAILABLE

    def prepare(self, key: SignerKey, request: FormatRequest) -> ToBeSigned:
        raise UNAVAILABLE

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        raise UNAVAILABLE


class _PendingClient:
    name = "openpgp"
    embedded = False
    suffix = ".openpgp"

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        raise UNAVAILABLE

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        raise UNAVAILABLE


BUILDER = _Pending()
CLIENT = _PendingClient()
