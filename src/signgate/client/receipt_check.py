"""Check a signing receipt offline (``signgate log verify-receipt``): the receipt's log
entry is in a tree whose checkpoint the log key signed (and enough trusted witnesses
cosigned), and that entry is an allowed signing of *this* artifact.

The receipt (``OUT.proof``) is a C2SP tlog-proof@v1 whose ``extra`` is the audit entry
itself (the leaf's bytes, canonical JSON): nothing is asked of the server. What binds the
entry to the files in hand depends on the format, because each format signs something
else (README, "Transparency log"):

- raw: the signature file's SHA-256 is the entry's ``signature_sha256``, and the
  artifact's digest is the entry's ``digest``;
- cms, dsse, sigstore: the artifact's digest (under the entry's ``digest_algorithm``) is
  the entry's ``digest``: that is what these formats sign;
- openpgp: the digest of the artifact and the .asc's hashed part and trailer (what an
  OpenPGP signature signs, RFC 4880 §5.2.4) is the entry's ``digest``;
- authenticode, jar: the signature value inside the signed file (its SignerInfo's) has
  the entry's ``signature_sha256``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput, SigngateError, VerificationFailed
from signgate.formats import registry as formats
from signgate.formats.files import hash_file, hash_path
from signgate.formats.raw import read_signature
from signgate.transparency.cosignature import parse_cosigner_key
from signgate.transparency.merkle import leaf_hash
from signgate.transparency.note import NoteVerifier, parse_verifier_key
from signgate.transparency.proof import parse_proof, verify_proof

MAX_SIGNATURE_FILE = 1 << 20
DIGEST_BOUND = frozenset({"raw", "cms", "dsse", "sigstore"})


@dataclass(frozen=True)
class CheckedReceipt:
    """What a verified receipt established."""

    artifact: str
    format: str
    key: str
    key_version: int
    identity: str
    signed_at: str
    signature_id: str
    log_index: int
    log_size: int
    cosigned_by: tuple[str, ...]
    bound_by: str  # what tied the entry to the files: "digest", "signature", or both


def signature_beside(proof: Path, artifact: Path) -> Path | None:
    """The detached signature that 'signgate sign' wrote with ``proof`` (``OUT.proof``
    beside ``OUT``), if it is there and is not the artifact itself."""
    if not proof.name.endswith(".proof"):
        return None
    beside = proof.with_name(proof.name[:-len(".proof")])
    return beside if beside.is_file() and beside.resolve() != artifact.resolve() else None


def _failed(why: str) -> VerificationFailed:
    return VerificationFailed(f"the receipt does not verify: {why}")


def check_receipt(proof_data: bytes, artifact: Path, log_key: str,
                  signature: Path | None = None, witnesses: Sequence[str] = (),
                  min_witnesses: int = 0, key: str | None = None,
                  identity: str | None = None) -> CheckedReceipt:
    """Verify the receipt ``proof_data`` for ``artifact`` (and its detached ``signature``
    file, for raw and openpgp) with the log's verifier key ``log_key`` and the trusted
    ``witnesses``' keys, ``min_witnesses`` of which must have cosigned; with ``key``
    (PROJECT/NAME) and ``identity``, the logged signing must also name them."""
    try:
        proof = parse_proof(proof_data)
    except SigngateError as exc:
        raise _failed(str(exc)) from None
    if proof.extra is None:
        raise _failed("it does not carry its log entry (no 'extra' line)")
    verifier = parse_verifier_key(log_key)
    cosigners: list[NoteVerifier] = [parse_cosigner_key(w) for w in witnesses]
    verified = verify_proof(proof, leaf_hash(proof.extra), [verifier], verifier.name,
                            cosigners, min_witnesses)
    entry = _entry(proof.extra)
    details = entry["details"]
    if (entry["action"], entry["outcome"]) != ("signature.create", "allowed"):
        raise _failed(f"log entry {entry['seq']} is a {entry['action']} "
                      f"({entry['outcome']}), not an allowed signing")
    if entry["seq"] != proof.index + 1:
        raise _failed(f"the entry says it is entry {entry['seq']}, the proof places it at "
                      f"index {proof.index}")
    if key is not None and entry["key"] != key:
        raise _failed(f"the logged signing was made with key {entry['key']}, not {key}")
    if identity is not None and entry["actor"] != identity:
        raise _failed(f"the logged signing was asked for by {entry['actor']}, not {identity}")
    fmt = str(details.get("format", ""))
    bound_by = _bind(fmt, details, artifact, signature)
    return CheckedReceipt(
        artifact=str(artifact), format=fmt, key=str(entry["key"]),
        key_version=int(details.get("key_version", 0)), identity=str(entry["actor"]),
        signed_at=str(entry["time"]), signature_id=str(details.get("signature_id", "")),
        log_index=proof.index, log_size=verified.checkpoint.size,
        cosigned_by=verified.cosigned_by, bound_by=bound_by)


def _entry(leaf: bytes) -> dict[str, Any]:
    try:
        entry = json.loads(leaf)
        if not isinstance(entry, dict) or not isinstance(entry.get("details"), dict):
            raise ValueError("not an entry")
        missing = {"seq", "action", "outcome", "actor", "key", "time"} - set(entry)
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))}")
    except ValueError:
        raise _failed("its log entry is not a signgate audit entry") from None
    return entry


def _bind(fmt: str, details: dict[str, Any], artifact: Path, signature: Path | None) -> str:
    """Tie the entry to the files in hand as the module docstring says; raises if not."""
    if fmt not in formats.NAMES:
        raise _failed(f"the entry's format {fmt!r} is not one signgate knows")
    bound = []
    if fmt == "raw":
        if signature is None:
            raise InvalidInput("a raw signature's receipt is checked with its signature "
                               "file: give --signature FILE.sig")
        _same_signature(details, read_signature(signature, MAX_SIGNATURE_FILE),
                        f"the signature file {signature}")
        bound.append("signature")
    if fmt in DIGEST_BOUND:
        algorithm = _algorithm(details)
        _same_digest(details, hash_path(artifact, algorithm), artifact)
        bound.append("digest")
    elif fmt == "openpgp":
        _same_digest(details, _openpgp_digest(artifact, signature), artifact)
        bound.append("digest")
    else:  # authenticode, jar: the signature value inside the signed file
        try:
            evidence = formats.verifier(fmt).verify(artifact, None, ())
        except SigngateError as exc:
            raise _failed(f"{artifact.name} is not a valid {fmt} signed file: {exc}") from None
        _same_signature(details, evidence.signature_value,
                        f"the signature inside {artifact.name}")
        bound.append("signature")
    return " and ".join(bound)


def _algorithm(details: dict[str, Any]) -> DigestAlgorithm:
    try:
        return DigestAlgorithm(str(details.get("digest_algorithm")))
    except ValueError:
        raise _failed("the entry names no digest algorithm signgate knows") from None


def _same_digest(details: dict[str, Any], digest: bytes, artifact: Path) -> None:
    if details.get("digest") != digest.hex():
        raise _failed(f"the logged signing is of another artifact (its "
                      f"{details.get('digest_algorithm')} digest is not {artifact.name}'s)")


def _same_signature(details: dict[str, Any], value: bytes, what: str) -> None:
    if details.get("signature_sha256") != hashlib.sha256(value).hexdigest():
        raise _failed(f"the logged signing made another signature than {what}")


def _openpgp_digest(artifact: Path, signature: Path | None) -> bytes:
    """The digest an OpenPGP signature over ``artifact`` signs: the file, then the hashed
    part of the signature packet and its trailer (RFC 4880 §5.2.4)."""
    from signgate.formats.openpgp.codec import dearmor, parse_signature, trailer

    if signature is None:
        raise InvalidInput("an openpgp signature's receipt is checked with its signature "
                           "file: give --signature FILE.asc")
    try:
        armored = read_signature(signature, MAX_SIGNATURE_FILE).decode("ascii")
        sig = parse_signature(dearmor(armored, "SIGNATURE"))
    except (UnicodeDecodeError, SigngateError) as exc:
        raise _failed(f"{signature} is not an OpenPGP signature: {exc}") from None
    h = hash_file(artifact, sig.digest)
    h.update(trailer(sig.hashed))
    return h.digest()
