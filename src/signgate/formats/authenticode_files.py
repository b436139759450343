"""The kinds of file ``--format authenticode`` signs, behind one interface.

Authenticode is one signature (a PKCS#7 SignedData over an ``SpcIndirectDataContent``,
``authenticode.py``) put into several kinds of file, each with its own rules for what is
hashed and where the signature goes. A kind module implements :class:`AuthenticodeFile`:

- ``pe`` (``authenticode_pe.py``): Windows executables and DLLs (``MZ``);
- ``cab`` (``authenticode_cab.py``): cabinet archives (``MSCF``);
- ``script`` (``authenticode_script.py``): PowerShell scripts, modules and data files
  (``.ps1``, ``.psm1``, ``.psd1``), told by their name since they are text;
- ``msi``: Windows Installer packages (OLE compound files, ``D0 CF 11 E0``).

The client detects the kind (:func:`detect`) and sends it as the format parameter
``kind``; no parameter means ``pe`` (what clients sent before there were kinds). The
server builds the kind's ``SpcIndirectDataContent``; the client's ``finish()`` and the
verifier refuse a signature whose indirect data is of another kind than the file.
A new kind is one module and one line in :data:`KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats.base import Progress

if TYPE_CHECKING:  # asn1crypto only when a kind is used: not on every raw signing
    from signgate.formats.authenticode_asn1 import SpcIndirectDataContent

# name -> module exposing KIND (imported when first used, like formats/registry.py).
# Detection tries them in this order: scripts first, told by their name (a text file may
# start with anything), then the magic numbers.
KINDS = {
    "script": "signgate.formats.authenticode_script",
    "pe": "signgate.formats.authenticode_pe",
    "cab": "signgate.formats.authenticode_cab",
}
DEFAULT = "pe"  # a request without ``kind``; and a file no kind recognises
HEAD = 8  # bytes read from the file's start for detection


@dataclass(frozen=True)
class Hashed:
    """What hashing a file yields: the digest to sign, and the kind's own state for
    :meth:`AuthenticodeFile.write_signed` (a copy of exactly the bytes hashed, the
    layout, ...), so that the signed file is what was hashed."""

    digest: bytes
    state: Any = None


class AuthenticodeFile(Protocol):
    """One kind of file Authenticode signs (pure: files in, files out)."""

    name: str  # "pe" | "msi" | "cab" | "script": the ``kind`` parameter's value
    label: str  # for messages: "PE image", "CAB archive", ...

    def detect(self, head: bytes, path: Path) -> bool:
        """Is ``path`` (whose first :data:`HEAD` bytes are ``head``) of this kind?"""
        ...

    def digest(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None = None,
               keep_copy: bool = False) -> Hashed:
        """The Authenticode digest of ``path``, signed or not (an existing signature is
        never part of it). With ``keep_copy``, ``state`` keeps what
        :meth:`write_signed` needs to write exactly the bytes hashed. Raises InvalidInput
        for a file of this kind signgate cannot sign (with ``reason``, the why alone)."""
        ...

    def write_signed(self, path: Path, hashed: Hashed, signed_data: bytes,
                     output: Path) -> None:
        """Write ``path`` with ``signed_data`` (DER SignedData) as its one signature to
        ``output``, atomically (replacing any old signature); ``hashed`` is what
        :meth:`digest` returned with ``keep_copy``."""
        ...

    def signature(self, path: Path) -> bytes | None:
        """The embedded SignedData (DER, exactly), or None when ``path`` is unsigned.
        Raises InvalidInput (with ``reason``) for a signature signgate cannot account
        for."""
        ...

    def indirect_data(self, algorithm: DigestAlgorithm, digest: bytes
                      ) -> SpcIndirectDataContent:
        """The server half: what the signature covers for a file of this kind."""
        ...

    def describes(self, content: SpcIndirectDataContent) -> bool:
        """Is ``content`` indirect data over a file of this kind?"""
        ...


@cache
def kind(name: str) -> AuthenticodeFile:
    """The kind called ``name`` (the ``kind`` parameter), refused when unknown."""
    module = KINDS.get(name)
    if module is None:
        raise InvalidInput(f"unknown Authenticode file kind {name!r}; expected one of "
                           f"{', '.join(KINDS)}", code=ErrorCode.UNKNOWN_PARAMS)
    found: AuthenticodeFile = getattr(importlib.import_module(module), "KIND")  # noqa: B009
    return found


def kind_of(head: bytes, path: Path) -> str | None:
    """The kind whose detection accepts the file, None when none does."""
    for name in KINDS:
        if kind(name).detect(head, path):
            return name
    return None


def read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(HEAD)
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def detect(path: Path) -> AuthenticodeFile:
    """The kind of ``path``; PE when no kind recognises it (the PE kind then says why
    the file is not one, as it always did)."""
    return kind(kind_of(read_head(path), path) or DEFAULT)


def of_request(params: Mapping[str, str]) -> AuthenticodeFile:
    """The kind a signing request names (``kind`` parameter; ``pe`` without one)."""
    return kind(params.get("kind", DEFAULT))
