"""The ``msi`` Authenticode kind: Windows Installer packages (``msi.py`` does the work).

An MSI is an OLE compound file (``D0 CF 11 E0 A1 B1 1A E1``). Its digest is the MSI SIP's
(every stream's content in the SIP's order, storage CLSIDs, the signature streams left
out); the signature is the root's ``\\x05DigitalSignature`` stream; the indirect data is an
``SpcSipInfo`` naming the MSI SIP {000C10F1-0000-0000-C000-000000000046}, as osslsigncode
writes it (``msi.c``, ``msi_spc_sip_info_get``: version 1, the GUID, five zeros).
"""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.formats import msi
from signgate.formats.authenticode_asn1 import (
    SPC_SIPINFO,
    SpcIndirectDataContent,
    indirect_data_content,
    sip_guid,
    sip_info,
)
from signgate.formats.authenticode_files import Hashed
from signgate.formats.base import Progress


class MsiFile:
    name = "msi"
    label = "MSI package"

    def detect(self, head: bytes, path: Path) -> bool:
        return msi.is_msi(head)

    def digest(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> Hashed:
        # No copy is kept: write_signed reads the streams again and hashes them on the
        # way, refusing to write if they are not the bytes hashed here. ``keep_copy`` is
        # asked for when signing: an old MsiDigitalSignatureEx is then to be replaced,
        # not checked.
        hashed = msi.digest(path, algorithm, progress, signing=keep_copy)
        return Hashed(hashed.digest, hashed)

    def write_signed(self, path: Path, hashed: Hashed, signed_data: bytes,
                     output: Path) -> None:
        msi.write_signed(path, hashed.state, signed_data, output)

    def signature(self, path: Path) -> bytes | None:
        return msi.signature(path)

    def indirect_data(self, algorithm: DigestAlgorithm, digest: bytes
                      ) -> SpcIndirectDataContent:
        return indirect_data_content(SPC_SIPINFO, sip_info(msi.SIP_VERSION, msi.SIP_GUID),
                                     algorithm, digest)

    def describes(self, content: SpcIndirectDataContent) -> bool:
        return sip_guid(content) == msi.SIP_GUID


KIND = MsiFile()
