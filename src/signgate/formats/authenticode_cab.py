"""The ``cab`` Authenticode kind: cabinet archives (``cab.py`` does the work).

The indirect data is ``SPC_CAB_DATA_OBJID`` with the "<<<Obsolete>>>" file link, as
signtool and osslsigncode write it.
"""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.formats import cab
from signgate.formats.authenticode_asn1 import (
    SPC_CAB_DATA,
    SpcIndirectDataContent,
    indirect_data_content,
    obsolete_link,
)
from signgate.formats.authenticode_files import Hashed
from signgate.formats.base import Progress


class CabFile:
    name = "cab"
    label = "CAB archive"

    def detect(self, head: bytes, path: Path) -> bool:
        return head[:4] == cab.MAGIC

    def digest(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> Hashed:
        hashed = cab.cab_digest(path, algorithm, progress, keep_copy=keep_copy)
        return Hashed(hashed.digest, hashed)

    def write_signed(self, path: Path, hashed: Hashed, signed_data: bytes,
                     output: Path) -> None:
        cab.write_signed(path, hashed.state, signed_data, output)

    def signature(self, path: Path) -> bytes | None:
        return cab.signature(path)

    def indirect_data(self, algorithm: DigestAlgorithm, digest: bytes
                      ) -> SpcIndirectDataContent:
        return indirect_data_content(SPC_CAB_DATA, obsolete_link(), algorithm, digest)

    def describes(self, content: SpcIndirectDataContent) -> bool:
        return bool(content["data"]["type"].dotted == SPC_CAB_DATA)


KIND = CabFile()
