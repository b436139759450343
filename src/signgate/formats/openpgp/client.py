"""The client half of ``openpgp``: hash the file, then the hashed part naming the key's
current version, and send the final digest (RFC 4880 §5.2.4); write the armored result
beside the file."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput
from signgate.formats.base import KeyLookup, Prepared, Progress
from signgate.formats.files import hash_file, write_atomic
from signgate.formats.openpgp.cleartext import SIG_TEXT, canonical_text, signature_type
from signgate.formats.openpgp.codec import (
    SIG_BINARY,
    data_subpackets,
    hashed_part,
    key_of,
    refuse_unsupported,
    trailer,
)


class OpenPgpClient:
    """Client half: hash the file, then the hashed part for the key's current version."""

    name = "openpgp"
    embedded = False
    suffix = ".asc"

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        h = hash_file(path, algorithm, progress)
        # Looked up after the (possibly long) hashing: the version is as fresh as can be.
        info = key()
        refuse_unsupported(info.algorithm, info.rsa_padding, False, algorithm)
        pgp_key = key_of(info.public_key_pem, info.created_at)
        hashed = hashed_part(SIG_BINARY, pgp_key.algorithm, algorithm,
                             data_subpackets(datetime.now(UTC), pgp_key))
        h.update(trailer(hashed))
        return Prepared(algorithm, h.digest(),
                        {"hashed": base64.b64encode(hashed).decode("ascii")})

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        write_atomic(output, result)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        """The file (its canonical text for ``params["type"] == "text"``), then the client's
        hashed part and trailer (which the builder then checks against the signing key
        version, as for any openpgp request)."""
        try:
            hashed = base64.b64decode(params.get("hashed", ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("params.hashed is not valid base64",
                               code=ErrorCode.BAD_OPENPGP) from exc
        if not hashed:
            raise InvalidInput("an openpgp signing needs the signature's hashed part "
                               "(params.hashed, base64)", code=ErrorCode.BAD_OPENPGP)
        if signature_type(params) == SIG_TEXT:
            # A text signature covers the canonical text (cleartext.py), read whole: the
            # texts signed so (Release files, commits) are small.
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
            h = hashlib.new(algorithm.value, canonical_text(text))
        else:
            h = hash_file(path, algorithm, None)
        h.update(trailer(hashed))
        return h.digest()
