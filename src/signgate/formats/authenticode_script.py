"""The ``script`` Authenticode kind (being written: recognises no file yet)."""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput
from signgate.formats.authenticode_asn1 import SpcIndirectDataContent
from signgate.formats.authenticode_files import Hashed
from signgate.formats.base import Progress


class _Pending:
    name = "script"
    label = "script file"

    def detect(self, head: bytes, path: Path) -> bool:
        return False

    def digest(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> Hashed:
        raise InvalidInput("signgate cannot sign script files yet")

    def write_signed(self, path: Path, hashed: Hashed, signed_data: bytes,
                     output: Path) -> None:
        raise InvalidInput("signgate cannot sign script files yet")

    def signature(self, path: Path) -> bytes | None:
        raise InvalidInput("signgate cannot verify script files yet")

    def indirect_data(self, algorithm: DigestAlgorithm, digest: bytes
                      ) -> SpcIndirectDataContent:
        raise InvalidInput("signgate cannot sign script files yet")

    def describes(self, content: SpcIndirectDataContent) -> bool:
        return False


KIND = _Pending()
