"""The ``script`` Authenticode kind: PowerShell scripts, modules and data files.

``.ps1``, ``.psm1`` and ``.psd1`` files are text, told by their name. The rules are those
of Windows' PowerShell SIP as osslsigncode implements them (``script.c``, read, not
copied):

- the text is UTF-16LE when it starts with the byte order mark ``FF FE``, else UTF-8
  (a UTF-8 byte order mark is part of the text);
- the digest is over the text *as UTF-16LE* (UTF-8 text converted, a UTF-8 BOM becoming
  ``FF FE``), up to the signature block: the block starts at the line break before the
  first line that begins with ``# SIG # Begin signature block`` (the CR of a CRLF);
- the block is that line break, then ``# SIG # Begin signature block``, the DER
  SignedData in base64 as lines of 64 characters each behind ``# ``, and
  ``# SIG # End signature block``, each line ended like the file's lines (CRLF when the
  file has none), in the file's encoding. Signing again replaces the block.

The indirect data is an ``SpcSipInfo`` naming the PowerShell SIP,
{603BCC1F-4B59-4E08-B724-D2C6297EF351}, version 65536 (as osslsigncode writes it).

The verifier accepts nothing after the block but the last line break: text there would be
covered by no signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import parser

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput
from signgate.formats.authenticode_asn1 import (
    SPC_SIPINFO,
    SpcIndirectDataContent,
    indirect_data_content,
    sip_guid,
    sip_info,
)
from signgate.formats.authenticode_files import Hashed
from signgate.formats.base import Progress
from signgate.formats.files import signed_copy

EXTENSIONS = (".ps1", ".psm1", ".psd1")
# {603BCC1F-4B59-4E08-B724-D2C6297EF351} in Windows' GUID byte order (osslsigncode
# script.c, SpcUUIDSipInfoPs)
POWERSHELL_SIP = bytes.fromhex("1fcc3b60594b084eb724d2c6297ef351")
SIP_VERSION = 65536
BEGIN = "# SIG # Begin signature block"
END = "# SIG # End signature block"
PREFIX = "# "
LINE = 64  # base64 characters a line
UTF16_BOM = b"\xff\xfe"
MAX_SCRIPT = 64 << 20  # a script, not a payload: read whole, refused beyond


def _bad(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path.name} is not a PowerShell script signgate can sign: {why}",
                        reason=why)


@dataclass(frozen=True)
class Script:
    """A script split at its signature block."""

    utf16: bool  # the file's encoding: UTF-16LE (with BOM), else UTF-8
    content: str  # the text the digest covers
    block: str | None  # the signature block as found, None when unsigned
    eol: str  # the line break signing writes

    def encoded(self, text: str) -> bytes:
        return text.encode("utf-16-le" if self.utf16 else "utf-8")

    def digest(self, algorithm: DigestAlgorithm) -> bytes:
        return hashlib.new(algorithm.value, self.content.encode("utf-16-le")).digest()


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SCRIPT + 1)
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_SCRIPT:
        raise _bad(path, f"larger than {MAX_SCRIPT >> 20} MiB")
    return data


def _block_start(text: str) -> int | None:
    """Where the signature block starts (osslsigncode ``script_ctx_get``): at the line
    break before the first complete line beginning with :data:`BEGIN`, one character
    earlier when that line ends with CRLF. None when there is no such line."""
    at = 0
    while True:
        newline = text.find("\n", at)
        if newline < 0:
            return None
        start = newline + 1
        end = text.find("\n", start)
        if end < 0:
            return None
        if text.startswith(BEGIN, start):
            return newline - (1 if text[end - 1] == "\r" else 0)
        at = start


def parse(path: Path, data: bytes) -> Script:
    utf16 = data.startswith(UTF16_BOM)
    try:
        text = data.decode("utf-16-le" if utf16 else "utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(path, f"not {'UTF-16LE' if utf16 else 'UTF-8'} text (byte {exc.start})"
                   ) from exc
    start = _block_start(text)
    if start == 0 or not text:
        # osslsigncode (and so, it seems, Windows) takes a block at offset 0 for none.
        raise _bad(path, "it has no text before its signature block" if text else
                   "it is empty")
    content = text if start is None else text[:start]
    block = None if start is None else text[start:]
    newline = content.find("\n")
    eol = "\n" if newline >= 0 and (newline == 0 or content[newline - 1] != "\r") else "\r\n"
    return Script(utf16, content, block, eol)


def signature_of(path: Path, script: Script) -> bytes | None:
    """The DER SignedData of the script's block; refused unless the block is exactly
    the lines signing writes (with any line ending): nothing after it is signed."""
    if script.block is None:
        return None
    lines = script.block.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the last line break
    if len(lines) < 4 or lines[0] != "" or lines[1] != BEGIN or lines[-1] != END:
        raise _bad(path, "its signature block is not one '# SIG # Begin signature block' "
                         "... '# SIG # End signature block' at the end of the file (text "
                         "after the block is covered by no signature)")
    body = lines[2:-1]
    if not all(line.startswith(PREFIX) for line in body):
        raise _bad(path, "a line of its signature block does not start with '# '")
    try:
        der = base64.b64decode("".join(line[len(PREFIX):] for line in body), validate=True)
        parser.parse(der, strict=True)  # one DER value, nothing after it
    except (binascii.Error, ValueError) as exc:
        raise _bad(path, f"its signature block does not hold one base64 DER value ({exc})"
                   ) from exc
    return der


def block(signed_data: bytes, eol: str) -> str:
    """The signature block for ``signed_data``, each line ended by ``eol``."""
    encoded = base64.b64encode(signed_data).decode("ascii")
    lines = [BEGIN, *(PREFIX + encoded[i:i + LINE] for i in range(0, len(encoded), LINE)),
             END]
    return "".join(eol + line for line in lines) + eol


class ScriptFile:
    name = "script"
    label = "PowerShell script"

    def detect(self, head: bytes, path: Path) -> bool:
        return path.suffix.lower() in EXTENSIONS

    def digest(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> Hashed:
        data = _read(path)
        script = parse(path, data)
        signature_of(path, script)  # refuse a block signgate cannot account for
        if progress is not None:
            progress(len(data))
        # The state is the text itself: what is written is what was hashed.
        return Hashed(script.digest(algorithm), script)

    def write_signed(self, path: Path, hashed: Hashed, signed_data: bytes,
                     output: Path) -> None:
        script: Script = hashed.state
        data = script.encoded(script.content + block(signed_data, script.eol))
        with signed_copy(path, output) as tmp:
            tmp.write_bytes(data)

    def signature(self, path: Path) -> bytes | None:
        return signature_of(path, parse(path, _read(path)))

    def indirect_data(self, algorithm: DigestAlgorithm, digest: bytes
                      ) -> SpcIndirectDataContent:
        return indirect_data_content(SPC_SIPINFO, sip_info(SIP_VERSION, POWERSHELL_SIP),
                                     algorithm, digest)

    def describes(self, content: SpcIndirectDataContent) -> bool:
        return sip_guid(content) == POWERSHELL_SIP


KIND = ScriptFile()
