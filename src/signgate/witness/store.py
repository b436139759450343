"""The witness's data directory: its key, the logs it accepts, and what it cosigned.

::

    D/witness.key       Ed25519 private key, PKCS#8 PEM, mode 0600, made on first use
    D/config.json       {"name": ..., "logs": {origin: [log verifier keys]}}
    D/state/<sha256(origin)>.json   the latest cosigned checkpoint of that log
    D/lock              held while a request is checked and its state written

A state file is written to a temporary file, fsynced, renamed over the old one and the
directory fsynced, all before the witness answers: after a crash it holds either the old
or the new checkpoint, never a torn one, and never one older than a cosignature that left.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signgate.errors import ConfigError, ErrorCode, InvalidInput
from signgate.transparency.checkpoint import Checkpoint
from signgate.transparency.cosignature import Ed25519Cosigner
from signgate.transparency.note import Ed25519NoteVerifier, parse_verifier_key, valid_name

KEY_FILE = "witness.key"
CONFIG_FILE = "config.json"
STATE_DIR = "state"
LOCK_FILE = "lock"


def default_name() -> str:
    """``<host name>/signgate-witness``: a key name that says where the witness runs."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-") or "localhost"
    return f"{host}/signgate-witness"


@dataclass(frozen=True)
class LogState:
    """The latest checkpoint the witness cosigned for a log (with its cosignature)."""

    checkpoint: Checkpoint
    note: bytes


class WitnessStore:
    """One data directory. ``open`` creates what is missing (first start)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    @classmethod
    def open(cls, data_dir: Path, name: str | None = None) -> WitnessStore:
        """Open ``data_dir``, creating it, its key and its config on first use (``name``
        is the witness's key name then; later it must match or be None)."""
        store = cls(data_dir)
        old_umask = os.umask(0o077)
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            (data_dir / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
            with store.locked():
                if not (data_dir / KEY_FILE).exists():
                    _write_new(data_dir / KEY_FILE, Ed25519PrivateKey.generate()
                               .private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
                config = store._read_config() if (data_dir / CONFIG_FILE).exists() else None
                if config is None:
                    chosen = name or default_name()
                    if not valid_name(chosen):
                        raise InvalidInput(f"witness name {chosen!r} must be non-empty, "
                                           "without spaces or '+'", code=ErrorCode.BAD_NAME)
                    store._write_config({"name": chosen, "logs": {}})
                elif name is not None and name != config["name"]:
                    raise ConfigError(f"{data_dir} is the witness {config['name']!r}; its "
                                      f"name cannot change to {name!r}")
        except OSError as exc:
            raise ConfigError(f"cannot use witness data directory {data_dir}: "
                              f"{exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        return store

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the directory (across processes: add-log while serving)."""
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- key and name ------------------------------------------------------------------

    def cosigner(self) -> Ed25519Cosigner:
        pem = (self.data_dir / KEY_FILE).read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{self.data_dir / KEY_FILE} is not an Ed25519 private key")
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        return Ed25519Cosigner(self.name, public, key)

    @property
    def name(self) -> str:
        return str(self._read_config()["name"])

    # -- logs --------------------------------------------------------------------------

    def logs(self) -> dict[str, list[str]]:
        """origin -> the verifier keys of that log."""
        return {o: list(keys) for o, keys in self._read_config()["logs"].items()}

    def log_verifiers(self, origin: str) -> list[Ed25519NoteVerifier] | None:
        keys = self.logs().get(origin)
        return None if keys is None else [parse_verifier_key(k) for k in keys]

    def add_log(self, origin: str, verifier_key: str) -> bool:
        """Trust ``verifier_key`` for checkpoints of ``origin``; False if it already was."""
        if not origin or "\n" in origin or origin != origin.strip():
            raise InvalidInput(f"{origin!r} is not a log origin (one non-empty line)",
                               code=ErrorCode.BAD_NAME)
        parse_verifier_key(verifier_key)  # an Ed25519 note key, or refused
        with self.locked():
            config = self._read_config()
            keys = config["logs"].setdefault(origin, [])
            if verifier_key in keys:
                return False
            keys.append(verifier_key)
            self._write_config(config)
        return True

    # -- state -------------------------------------------------------------------------

    def _state_path(self, origin: str) -> Path:
        return self.data_dir / STATE_DIR / (hashlib.sha256(origin.encode()).hexdigest()
                                            + ".json")

    def state(self, origin: str) -> LogState | None:
        path = self._state_path(origin)
        try:
            data = json.loads(path.read_text("utf-8"))
            checkpoint = Checkpoint(data["origin"], int(data["size"]),
                                    base64.b64decode(data["root_hash"]))
            return LogState(checkpoint, data["note"].encode())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, InvalidInput) as exc:
            raise ConfigError(f"the witness state {path} is unreadable: {exc}") from exc

    def save_state(self, state: LogState) -> None:
        """Write the state atomically and durably (call with the lock held)."""
        cp = state.checkpoint
        _write_atomic(self._state_path(cp.origin), json.dumps({
            "origin": cp.origin, "size": cp.size,
            "root_hash": base64.b64encode(cp.root_hash).decode(),
            "note": state.note.decode(),
        }, indent=2).encode())

    # -- files -------------------------------------------------------------------------

    def _read_config(self) -> dict[str, Any]:
        path = self.data_dir / CONFIG_FILE
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the witness configuration {path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or \
                not isinstance(data.get("logs"), dict):
            raise ConfigError(f"{path} is not a witness configuration")
        return data

    def _write_config(self, config: dict[str, Any]) -> None:
        _write_atomic(self.data_dir / CONFIG_FILE, (json.dumps(config, indent=2) + "\n")
                      .encode())


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(path.parent)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
