"""OpenPGP text signatures and the Cleartext Signature Framework (RFC 4880 §7, RFC 9580 §7):
what apt's ``InRelease`` and ``gpg --clearsign`` are. Pure bytes in, bytes out.

A cleartext-signed message is the text itself between a ``-----BEGIN PGP SIGNED MESSAGE-----``
header (with its ``Hash:`` armor header) and an armored signature of type 0x01 (canonical
text document, §5.2.1). What the signature covers is not the bytes shown but their
canonical form: each line with its trailing spaces and tabs removed (§7.1), lines joined by
CR LF (§5.2.1), and without the line ending that precedes ``-----BEGIN PGP SIGNATURE-----``
(it belongs to the framing, §7.1). Lines of the text that begin with ``-`` are shown
dash-escaped (``- `` prepended, §7.1) so that no line of the text can pass for framing;
a verifier removes the escape before hashing, so it changes nothing signed.
"""

from __future__ import annotations

from collections.abc import Mapping

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats.openpgp.codec import SIG_BINARY

SIG_TEXT = 0x01  # signature of a canonical text document (§5.2.1)
BEGIN_SIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"
# The armor's name of each hash (§6.2 "Hash:" header, §9.4 text names).
HASH_NAMES = {DigestAlgorithm.SHA256: "SHA256", DigestAlgorithm.SHA384: "SHA384",
              DigestAlgorithm.SHA512: "SHA512"}

# params.type: what the signature says it covers (RFC 4880 §5.2.1). "text" (0x01) is a
# canonical text document, the signature of a cleartext message (below); the client
# hashes the canonical text, so the server signs a digest either way.
SIGNATURE_TYPES = {"binary": SIG_BINARY, "text": SIG_TEXT}


def signature_type(params: Mapping[str, str]) -> int:
    """The signature type params.type asks for (binary unless given)."""
    name = params.get("type", "binary")
    found = SIGNATURE_TYPES.get(name)
    if found is None:
        raise InvalidInput(f"params.type {name!r}: expected one of "
                           f"{', '.join(SIGNATURE_TYPES)}", code=ErrorCode.BAD_OPENPGP)
    return found


def lines_of(text: bytes) -> list[bytes]:
    """The lines of ``text`` without their LF; a final LF ends the last line rather than
    starting an empty one (the framing adds the line ending before the signature)."""
    lines = text.split(b"\n")
    if len(lines) > 1 and lines[-1] == b"":
        lines.pop()
    return lines


def canonical_text(text: bytes) -> bytes:
    """What a text signature of ``text`` in a cleartext message hashes: every line with
    trailing spaces, tabs and CR removed (§7.1), joined by CR LF (§5.2.1), no final line
    ending (§7.1)."""
    return b"\r\n".join(line.rstrip(b" \t\r") for line in lines_of(text))


def dash_escape(text: bytes) -> bytes:
    """``text`` as it is shown in the message: lines starting with ``-`` get ``- `` in
    front (§7.1), each line ends with LF."""
    return b"".join((b"- " + line if line.startswith(b"-") else line) + b"\n"
                    for line in lines_of(text))


def cleartext_message(text: bytes, digest: DigestAlgorithm, armored_signature: bytes) -> bytes:
    """The whole cleartext-signed message: header, ``Hash:``, an empty line, the
    dash-escaped text and the armored signature (§7)."""
    return (BEGIN_SIGNED + b"\nHash: " + HASH_NAMES[digest].encode("ascii") + b"\n\n"
            + dash_escape(text) + armored_signature)
