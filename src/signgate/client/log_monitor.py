"""Watch a signgate log from outside: each run verifies the newest checkpoint against the
one verified before (``signgate log monitor``, run by an auditor or a cron job).

The monitor trusts only what it was given and what it verified itself: the log's key
(pinned in the state file at the first run, from ``--log-key``), witnesses' keys, and the
last checkpoint it accepted. Each run fetches the log's current checkpoint, checks the
log's signature on it, and asks the log for a consistency proof from the accepted tree to
the new one (RFC 9162 §2.1.4). A log that shrank (rollback), that shows another root for
the same size, or whose new tree does not extend the old one (fork, rewritten history) is
reported with the conflicting checkpoint kept as evidence, and the accepted state is not
moved. The server cannot talk its way out: a proof is only hashes, checked here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from signgate.errors import ConfigError, ErrorCode, InvalidInput, VerificationFailed
from signgate.formats.files import write_atomic
from signgate.transparency.checkpoint import Checkpoint, open_checkpoint
from signgate.transparency.cosignature import parse_cosigner_key
from signgate.transparency.merkle import verify_consistency
from signgate.transparency.note import (
    INVALID_SIGNATURE,
    NoteVerifier,
    open_note,
    parse_verifier_key,
)


class LogReader(Protocol):
    def log_checkpoint(self) -> bytes: ...

    def log_consistency(self, old: int, new: int) -> list[bytes]: ...


@dataclass(frozen=True)
class MonitorState:
    """What the last successful run verified (the state file, JSON)."""

    log_key: str  # the log's note verifier key string (its name is the origin)
    size: int
    root_hash: str  # base64
    checkpoint: str  # the signed note as fetched

    @classmethod
    def load(cls, path: Path) -> MonitorState | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(str(data["log_key"]), int(data["size"]), str(data["root_hash"]),
                       str(data["checkpoint"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the monitor state {path}: {exc}") from exc

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), indent=2).encode() + b"\n", mode=0o600)


@dataclass(frozen=True)
class MonitorResult:
    origin: str
    previous_size: int | None  # None on the first run
    size: int
    root_hash: str
    cosigned_by: tuple[str, ...]


def _evidence(state_path: Path, note: bytes, size: int) -> Path:
    path = state_path.with_name(f"{state_path.name}.conflict-{size}.note")
    write_atomic(path, note)
    return path


def monitor(log: LogReader, state_path: Path, log_key: str | None = None,
            witnesses: Sequence[str] = (), min_witnesses: int = 0) -> MonitorResult:
    """One monitoring run; raises VerificationFailed (exit 8) on a rollback, a fork or a
    bad signature, and leaves the state file as it was."""
    state = MonitorState.load(state_path)
    if state is not None and log_key is not None and log_key != state.log_key:
        raise ConfigError(f"{state_path} trusts the log key {state.log_key!r}, not "
                          f"{log_key!r}: a log's key does not change; investigate, or start "
                          "a new state file")
    key = log_key or (state.log_key if state else None)
    if key is None:
        raise InvalidInput("the first run needs --log-key (the log's verifier key, from "
                           "'signgate log public-key' run where you trust the answer)")
    verifier = parse_verifier_key(key)
    cosigners: list[NoteVerifier] = [parse_cosigner_key(w) for w in witnesses]
    if min_witnesses > len(cosigners):
        raise InvalidInput(f"--min-witnesses {min_witnesses} but only {len(cosigners)} "
                           "--witness keys given")

    note = log.log_checkpoint()
    try:
        checkpoint, _ = open_checkpoint(note, [verifier], verifier.name)
    except VerificationFailed as exc:
        raise VerificationFailed(f"the log's checkpoint does not carry a valid signature of "
                                 f"its key {verifier.name}: {exc}",
                                 code=ErrorCode.NOTE_NOT_VERIFIED) from exc
    cosigned = _cosigned_by(note, cosigners)
    if len(cosigned) < min_witnesses:
        raise VerificationFailed(
            f"the checkpoint of size {checkpoint.size} is cosigned by {len(cosigned)} of the "
            f"trusted witnesses ({', '.join(cosigned) or 'none'}); {min_witnesses} required",
            code=ErrorCode.TOO_FEW_COSIGNATURES)
    if state is not None:
        _check_extends(log, state, checkpoint, note, state_path)
    root = base64.b64encode(checkpoint.root_hash).decode()
    MonitorState(key, checkpoint.size, root, note.decode()).save(state_path)
    return MonitorResult(checkpoint.origin, state.size if state else None, checkpoint.size,
                         root, cosigned)


def _cosigned_by(note: bytes, cosigners: Sequence[NoteVerifier]) -> tuple[str, ...]:
    if not cosigners:
        return ()
    try:
        opened = open_note(note, cosigners)
    except VerificationFailed as exc:
        if exc.details.get("reason") == INVALID_SIGNATURE:
            raise  # a trusted witness's line that does not verify: forged
        return ()
    return tuple(sorted({s.name for s in opened.signatures}))


def _check_extends(log: LogReader, state: MonitorState, new: Checkpoint, note: bytes,
                   state_path: Path) -> None:
    old_root = base64.b64decode(state.root_hash)
    if new.size < state.size:
        kept = _evidence(state_path, note, new.size)
        raise VerificationFailed(
            f"ROLLBACK: the log's checkpoint is of size {new.size}, smaller than size "
            f"{state.size} verified before: entries were removed (checkpoint kept in {kept})",
            code=ErrorCode.BAD_MERKLE_PROOF)
    if new.size == state.size:
        if new.root_hash != old_root:
            kept = _evidence(state_path, note, new.size)
            raise VerificationFailed(
                f"FORK: the log shows a different tree of size {new.size} than the one "
                f"verified before: its history was rewritten (checkpoint kept in {kept})",
                code=ErrorCode.BAD_MERKLE_PROOF)
        return
    proof = log.log_consistency(state.size, new.size)
    if not verify_consistency(state.size, new.size, old_root, new.root_hash, proof):
        kept = _evidence(state_path, note, new.size)
        raise VerificationFailed(
            f"FORK: the log's tree of size {new.size} does not extend the tree of size "
            f"{state.size} verified before (the consistency proof fails): its history was "
            f"rewritten (checkpoint kept in {kept})", code=ErrorCode.BAD_MERKLE_PROOF)
