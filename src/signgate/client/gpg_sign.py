"""Sign data as ``gpg -b`` and ``gpg --clearsign`` do, through signgate: the client half of
``signgate-gpg`` (cli/gpg_compat.py parses gpg's command line and writes the results).

Two jobs:

- **which key**: gpg's ``-u KEY`` names a signgate key as ``PROJECT/NAME``, or by the
  OpenPGP fingerprint (40 hex digits) or long key ID (16) of its current version, with or
  without ``0x`` and gpg's exact-match ``!``. A fingerprint is found by asking the server
  for the keys the caller may see and deriving each current version's OpenPGP key the way
  ``signgate key public --openpgp`` does (``formats.openpgp.key_of``: the version's public
  key and creation time, so it never changes for a version);
- **sign**: an OpenPGP v4 signature made exactly as ``signgate sign --format openpgp``
  makes one (only the digest of data, hashed part and trailer leaves the machine; the
  server checks the hashed part names its key version, signs and records it), binary
  (type 0x00) for detached signatures or canonical text (type 0x01, ``params.type=text``)
  for cleartext messages. A key that signs only what signgate scanned gets the data
  uploaded, a key that needs approvals is waited for when asked to, and a signing refused
  because the key rotated in between is made again once with the new version.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signgate.client.sign_file import (
    SigningApi,
    await_result,
    current_key_info,
    is_request,
    signing_body,
)
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.errors import ErrorCode, InvalidInput, NotFound, SigngateError
from signgate.formats.base import Prepared
from signgate.formats.files import hash_file
from signgate.formats.openpgp import (
    HASH_IDS,
    SIG_BINARY,
    data_subpackets,
    dearmor,
    hashed_part,
    key_of,
    refuse_unsupported,
    trailer,
)
from signgate.formats.openpgp.cleartext import SIG_TEXT, canonical_text

# A fingerprint (40 hex) or long key ID (16 hex), as gpg takes them: 0x-prefixed or not,
# spaces between groups (as gpg prints fingerprints), a final "!" (exactly this key).
_KEY_ID = re.compile(r"(?:0X)?([0-9A-F]{40}|[0-9A-F]{16})!?")


@dataclass(frozen=True)
class GpgSignature:
    """A signature made for ``signgate-gpg``: the packet and what gpg's status lines say."""

    packet: bytes  # the binary OpenPGP signature packet
    armored: bytes  # the same, ASCII-armored (as the server returned it)
    fingerprint: str  # of the key version that signed, upper-case hex
    pk_algorithm: int  # OpenPGP public-key algorithm id (RFC 4880 §9.1)
    hash_algorithm: int  # OpenPGP hash algorithm id (§9.4)
    sig_class: int  # 0x00 binary, 0x01 canonical text
    created: int  # the signature's creation time, seconds since 1970
    receipt: Mapping[str, Any]


def key_id_of(name: str) -> str | None:
    """The upper-case fingerprint or long key ID that ``name`` is, else None."""
    found = _KEY_ID.fullmatch(name.replace(" ", "").upper())
    return found.group(1) if found else None


def resolve_key(api: Any, name: str) -> str:
    """The signgate key (PROJECT/NAME) that gpg's ``-u name`` means."""
    name = name.strip()
    wanted = key_id_of(name)
    if wanted is None:
        project, sep, key = name.partition("/")
        if sep and project and key and "<" not in name and " " not in name:
            return name
        raise InvalidInput(f"-u {name!r}: name a signgate key as PROJECT/NAME, or by the "
                           "OpenPGP fingerprint or long key ID of its current version "
                           "(signgate key public PROJECT/NAME --openpgp --json)",
                           code=ErrorCode.BAD_KEY_REF)
    for view in api.list_keys():
        if view.get("one_time") or view.get("state") != "active":
            continue
        ref = str(view["ref"])
        public = api.public_key(ref)
        try:
            fingerprint = key_of(str(public["public_key_pem"]),
                                 datetime.fromisoformat(public["created_at"])).fingerprint
        except InvalidInput:
            continue  # a key OpenPGP cannot express (no fingerprint to match)
        if fingerprint.hex().upper().endswith(wanted):
            return ref
    raise NotFound(f"-u {name}: no active signgate key you may see has a current version "
                   f"with OpenPGP {'fingerprint' if len(wanted) == 40 else 'key ID'} "
                   f"{wanted} (after a rotation, export the new version and use its "
                   "fingerprint, or name the key PROJECT/NAME)")


def _digest(path: Path, text: bool, algorithm: DigestAlgorithm) -> hashlib._Hash:
    if not text:
        return hash_file(path, algorithm)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    return hashlib.new(algorithm.value, canonical_text(data))


def sign_data(api: SigningApi, ref: str, path: Path, *, text: bool,
              digest: DigestAlgorithm | None, artifact_name: str,
              metadata: Mapping[str, str] | None = None,
              wait: float | None = None) -> GpgSignature:
    """Sign the bytes at ``path`` with ``ref``: a binary signature, or with ``text`` the
    canonical-text signature of a cleartext message (``cleartext.canonical_text``).
    ``digest`` None: SHA-384 for ecdsa-p384 keys (RFC 6637 wants a hash as long as the
    curve), else SHA-256."""
    for attempt in (1, 2):
        try:
            return _sign_once(api, ref, path, text, digest, artifact_name, metadata, wait)
        except SigngateError as exc:
            # The key rotated between reading its version and signing: once more, with the
            # new version (as `signgate sign` advises doing by hand).
            if exc.code is not ErrorCode.KEY_ROTATED or attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _sign_once(api: SigningApi, ref: str, path: Path, text: bool,
               chosen: DigestAlgorithm | None, artifact_name: str,
               metadata: Mapping[str, str] | None, wait: float | None) -> GpgSignature:
    info = current_key_info(api, ref, one_time=False)
    digest = chosen or (DigestAlgorithm.SHA384 if info.algorithm is KeyAlgorithm.ECDSA_P384
                        else DigestAlgorithm.SHA256)
    refuse_unsupported(info.algorithm, info.rsa_padding, False, digest)
    key = key_of(info.public_key_pem, info.created_at)
    created = datetime.now(UTC).replace(microsecond=0)
    sig_class = SIG_TEXT if text else SIG_BINARY
    hashed = hashed_part(sig_class, key.algorithm, digest, data_subpackets(created, key))
    h = _digest(path, text, digest)
    h.update(trailer(hashed))
    params = {"hashed": base64.b64encode(hashed).decode("ascii")}
    if text:
        params["type"] = "text"
    prepared = Prepared(digest, h.digest(), params)
    meta = dict(metadata or {})
    try:
        result = api.sign_digest(ref, digest.value, prepared.digest.hex(), artifact_name,
                                 meta, False, "openpgp", params)
    except SigngateError as exc:
        if exc.code is not ErrorCode.SCAN_REQUIRED:
            raise
        # The key signs only what signgate scanned: send the data; the server hashes it
        # again with these parameters and signs only if it gets the same digest.
        result = api.sign_upload(ref, path, signing_body(artifact_name, "openpgp", prepared,
                                                         meta, False, None))
    if is_request(result):
        result = await_result(api, result, wait)
    armored = base64.b64decode(result["signature"])
    packet = dearmor(armored.decode("ascii"), "SIGNATURE")
    return GpgSignature(packet, armored, key.fingerprint.hex().upper(), key.algorithm,
                        HASH_IDS[digest], sig_class, int(created.timestamp()),
                        result["receipt"])
