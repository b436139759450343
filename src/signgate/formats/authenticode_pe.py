"""The ``pe`` Authenticode kind: Windows executables and DLLs (``pe.py`` does the work).

The digest is the PE image hash; the signature goes into the certificate table as one
WIN_CERTIFICATE; the indirect data is an ``SpcPeImageData`` (Authenticode spec).
"""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.formats import pe
from signgate.formats.authenticode_asn1 import (
    SPC_PE_IMAGE_DATA,
    SpcIndirectDataContent,
    SpcPeImageData,
    SpcPeImageFlags,
    indirect_data_content,
    obsolete_link,
)
from signgate.formats.authenticode_files import Hashed
from signgate.formats.base import Progress


class PeFile:
    name = "pe"
    label = "PE image"

    def detect(self, head: bytes, path: Path) -> bool:
        return head[:2] == b"MZ"

    def digest(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> Hashed:
        image = pe.image_digest(path, algorithm, progress, keep_copy=keep_copy)
        return Hashed(image.digest, image)

    def write_signed(self, path: Path, hashed: Hashed, signed_data: bytes,
                     output: Path) -> None:
        pe.write_signed(path, hashed.state, signed_data, output)

    def signature(self, path: Path) -> bytes | None:
        return pe.certificate_table(path)[1]

    def indirect_data(self, algorithm: DigestAlgorithm, digest: bytes
                      ) -> SpcIndirectDataContent:
        image = SpcPeImageData({"flags": SpcPeImageFlags(set()), "file": obsolete_link()})
        return indirect_data_content(SPC_PE_IMAGE_DATA, image, algorithm, digest)

    def describes(self, content: SpcIndirectDataContent) -> bool:
        return bool(content["data"]["type"].dotted == SPC_PE_IMAGE_DATA)


KIND = PeFile()
