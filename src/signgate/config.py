"""Where signgate keeps its state and how it finds its database and master key.

A data directory holds ``config.toml``, the SQLite database ``signgate.db``, the master
key ``master.key`` (mode 0600) and the bootstrap admin's ``admin.token`` (0600).
``SIGNGATE_DATABASE_URL`` replaces the SQLite database; ``SIGNGATE_MASTER_KEY`` (base64,
32 bytes) replaces the master key file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from signgate.errors import ConfigError
from signgate.keystore.soft import decode_master_key, read_master_key_file

CONFIG_FILE = "config.toml"
DATABASE_FILE = "signgate.db"
MASTER_KEY_FILE = "master.key"
ADMIN_TOKEN_FILE = "admin.token"
DEFAULT_DATA_DIR = "signgate-data"
DEFAULT_MAX_BODY = 1 << 20
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    max_body_bytes: int = DEFAULT_MAX_BODY
    organization: str = "signgate"
    public_url: str = DEFAULT_PUBLIC_URL

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / MASTER_KEY_FILE

    def master_key(self) -> bytes:
        env = os.environ.get("SIGNGATE_MASTER_KEY")
        if env:
            return decode_master_key(env, "SIGNGATE_MASTER_KEY")
        if not self.master_key_path.exists():
            raise ConfigError(
                f"no master key: {self.master_key_path} does not exist and "
                "SIGNGATE_MASTER_KEY is not set (run 'signgate init')"
            )
        return read_master_key_file(self.master_key_path)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}"


def load_settings(data_dir: Path) -> Settings:
    data_dir = data_dir.resolve()
    values: dict[str, object] = {}
    cfg = data_dir / CONFIG_FILE
    if cfg.exists():
        try:
            values = tomllib.loads(cfg.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {cfg}: {exc}") from exc
    url = os.environ.get("SIGNGATE_DATABASE_URL") or str(
        values.get("database_url") or sqlite_url(data_dir)
    )
    max_body = values.get("max_body_bytes", DEFAULT_MAX_BODY)
    org = values.get("organization", "signgate")
    if not isinstance(max_body, int) or max_body <= 0:
        raise ConfigError(f"{cfg}: max_body_bytes must be a positive integer")
    if not isinstance(org, str) or not org:
        raise ConfigError(f"{cfg}: organization must be a non-empty string")
    public_url = values.get("public_url", DEFAULT_PUBLIC_URL)
    if not isinstance(public_url, str) or not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"{cfg}: public_url must be an http(s) URL")
    return Settings(data_dir=data_dir, database_url=url, max_body_bytes=max_body,
                    organization=org, public_url=public_url.rstrip("/"))


def default_config_text() -> str:
    return (
        "# signgate configuration (see README, 'Configuration').\n"
        "# database_url = \"postgresql+psycopg://signgate@127.0.0.1/signgate\"\n"
        f"max_body_bytes = {DEFAULT_MAX_BODY}\n"
        "# The organisation named in the certificates signgate issues.\n"
        "organization = \"signgate\"\n"
        "# Where clients and verifiers reach this server (CRL URLs in certificates).\n"
        f"public_url = \"{DEFAULT_PUBLIC_URL}\"\n"
    )
