"""Where signgate keeps its state and how it finds its database and master key.

A data directory holds ``config.toml``, the SQLite database ``signgate.db``, the master
key ``master.key`` (mode 0600) and the bootstrap admin's ``admin.token`` (0600).
``SIGNGATE_DATABASE_URL`` replaces the SQLite database; ``SIGNGATE_MASTER_KEY`` (base64,
32 bytes) replaces the master key file; ``SIGNGATE_PUBLIC_URL`` replaces ``public_url``.

The keys ``config.toml`` may hold are exactly the fields of :class:`Settings` (but
``data_dir``): a key that is not one of them stops signgate with its name (and the closest
setting, for a typo), so a misspelt setting never silently falls back to its default. A new
setting is a new field: it is accepted without further work.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from signgate.errors import ConfigError, ErrorCode
from signgate.keystore.soft import decode_master_key, read_master_key_file

CONFIG_FILE = "config.toml"
DATABASE_FILE = "signgate.db"
MASTER_KEY_FILE = "master.key"
ADMIN_TOKEN_FILE = "admin.token"
DEFAULT_DATA_DIR = "signgate-data"
DEFAULT_MAX_BODY = 1 << 20
DEFAULT_SCAN_MAX_BYTES = 4 << 30
# Uploads in flight share one spool budget (bytes reserved as declared); two artifacts of
# the largest accepted size fit in the default.
DEFAULT_UPLOAD_SPOOL_MAX_BYTES = 2 * DEFAULT_SCAN_MAX_BYTES
DEFAULT_UPLOAD_MAX_CONCURRENT = 4
DEFAULT_HTTP_HEADER_TIMEOUT = 10
DEFAULT_HTTP_BODY_IDLE_TIMEOUT = 60
DEFAULT_SCAN_YARA_MAX_CONCURRENT = 2
# What the server reads of one uploaded JAR: entries (65,535 is all a JAR without ZIP64
# can hold) and bytes of its manifest or a signature file.
DEFAULT_JAR_MAX_ENTRIES = 65535
DEFAULT_JAR_MAX_MANIFEST_BYTES = 32 << 20
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
# The policy under which the time-stamp authority issues tokens (RFC 3161 TSTInfo.policy).
# An arc under a Private Enterprise Number; set your own organisation's OID in config.toml.
DEFAULT_TSA_POLICY_OID = "1.3.6.1.4.1.59544.1.1"
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")


@dataclass(frozen=True)
class Settings:
    """Every setting; each field but ``data_dir`` is a key ``config.toml`` may set."""

    data_dir: Path
    database_url: str
    max_body_bytes: int = DEFAULT_MAX_BODY
    organization: str = "signgate"
    public_url: str = DEFAULT_PUBLIC_URL
    tsa_policy_oid: str = DEFAULT_TSA_POLICY_OID
    tsa_accuracy_seconds: int = 1
    one_time_cert_minutes: int = 10
    # External RFC 3161 TSAs for signature timestamps, tried in order; empty: built-in.
    tsa_urls: tuple[str, ...] = ()
    # Scanning before signing: clamd's Unix socket, a directory of YARA rules, the largest
    # artifact accepted for scanning, and how long one scan may take.
    scan_clamd_socket: str | None = None
    scan_yara_dir: str | None = None
    scan_max_bytes: int = DEFAULT_SCAN_MAX_BYTES
    scan_timeout_seconds: int = 300
    # How many YARA scans run at once in one server process: YARA maps the whole artifact,
    # so each running scan holds up to the artifact's size in resident memory.
    scan_yara_max_concurrent: int = DEFAULT_SCAN_YARA_MAX_CONCURRENT
    # Uploads (scan, sign-upload): in flight at once per identity, and the bytes all
    # uploads in flight may reserve in the spool together.
    upload_max_concurrent_per_identity: int = DEFAULT_UPLOAD_MAX_CONCURRENT
    upload_spool_max_bytes: int = DEFAULT_UPLOAD_SPOOL_MAX_BYTES
    # Slow clients: a request's headers must be complete this long after the connection
    # opened (or the previous response ended); a body may pause this long between bytes.
    http_header_timeout_seconds: int = DEFAULT_HTTP_HEADER_TIMEOUT
    http_body_idle_timeout_seconds: int = DEFAULT_HTTP_BODY_IDLE_TIMEOUT
    # Failed authentications: at most this many per client address and window (per
    # server process); past it, 429. Each window's failures are recorded with their
    # count, not one audit entry each (see service/auth_failures.py).
    auth_failure_limit: int = 100
    auth_failure_window_seconds: int = 60
    # The work one uploaded JAR may cause; how long shutdown waits for requests in flight.
    jar_max_entries: int = DEFAULT_JAR_MAX_ENTRIES
    jar_max_manifest_bytes: int = DEFAULT_JAR_MAX_MANIFEST_BYTES
    shutdown_grace_seconds: int = 5

    @property
    def scanner_configured(self) -> bool:
        return bool(self.scan_clamd_socket or self.scan_yara_dir)

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / MASTER_KEY_FILE

    @property
    def master_key_source(self) -> str:
        """Where :meth:`master_key` reads the key from, for messages."""
        if os.environ.get("SIGNGATE_MASTER_KEY"):
            return "SIGNGATE_MASTER_KEY"
        return str(self.master_key_path)

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


def setting_names() -> tuple[str, ...]:
    """The keys ``config.toml`` may hold: the fields of :class:`Settings`."""
    return tuple(f.name for f in dataclasses.fields(Settings) if f.name != "data_dir")


def check_known_keys(values: dict[str, object], cfg: Path) -> None:
    """Refuse a key that is no setting, naming it and the closest setting, if any."""
    known = setting_names()
    for key in values:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{cfg}: unknown setting {key!r}{hint}", code=ErrorCode.UNKNOWN_SETTING)


def check_public_url(url: object, source: str) -> str:
    """An http(s) URL with a host, without its trailing slash (CRL URLs are appended)."""
    if isinstance(url, str) and _is_base_url(url):
        return url.rstrip("/")
    raise ConfigError(f"{source}: public_url must be an http(s) URL such as "
                      f"{DEFAULT_PUBLIC_URL}, not {url!r}")


def _is_base_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0
            and not parts.query and not parts.fragment and not parts.username)


def read_config(data_dir: Path) -> dict[str, object]:
    """The settings in ``data_dir/config.toml`` (none if it does not exist)."""
    cfg = data_dir / CONFIG_FILE
    if not cfg.exists():
        return {}
    try:
        values: dict[str, object] = tomllib.loads(cfg.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {cfg}: {exc}") from exc
    check_known_keys(values, cfg)
    return values


def load_settings(data_dir: Path, public_url: str | None = None) -> Settings:
    """The settings of ``data_dir``; ``public_url`` (a command-line option) replaces
    ``SIGNGATE_PUBLIC_URL``, which replaces the configured one."""
    data_dir = data_dir.resolve()
    cfg = data_dir / CONFIG_FILE
    values = read_config(data_dir)
    url = os.environ.get("SIGNGATE_DATABASE_URL") or str(
        values.get("database_url") or sqlite_url(data_dir)
    )
    max_body = values.get("max_body_bytes", DEFAULT_MAX_BODY)
    org = values.get("organization", "signgate")
    if not isinstance(max_body, int) or max_body <= 0:
        raise ConfigError(f"{cfg}: max_body_bytes must be a positive integer")
    if not isinstance(org, str) or not org:
        raise ConfigError(f"{cfg}: organization must be a non-empty string")
    if public_url is not None:
        public_url = check_public_url(public_url, "--public-url")
    elif os.environ.get("SIGNGATE_PUBLIC_URL"):
        public_url = check_public_url(os.environ["SIGNGATE_PUBLIC_URL"], "SIGNGATE_PUBLIC_URL")
    else:
        public_url = check_public_url(values.get("public_url", DEFAULT_PUBLIC_URL), str(cfg))
    policy = values.get("tsa_policy_oid", DEFAULT_TSA_POLICY_OID)
    if not isinstance(policy, str) or not valid_oid(policy):
        raise ConfigError(f"{cfg}: tsa_policy_oid must be a dotted OID such as "
                          f"{DEFAULT_TSA_POLICY_OID}")
    accuracy = values.get("tsa_accuracy_seconds", 1)
    if isinstance(accuracy, bool) or not isinstance(accuracy, int) or not 1 <= accuracy <= 60:
        raise ConfigError(f"{cfg}: tsa_accuracy_seconds must be an integer from 1 to 60")
    one_time = values.get("one_time_cert_minutes", 10)
    if isinstance(one_time, bool) or not isinstance(one_time, int) or not 1 <= one_time <= 1440:
        raise ConfigError(f"{cfg}: one_time_cert_minutes must be an integer from 1 to 1440")
    tsa_urls = values.get("tsa_urls", [])
    if not isinstance(tsa_urls, list) or not all(
            isinstance(u, str) and u.startswith(("http://", "https://")) for u in tsa_urls):
        raise ConfigError(f"{cfg}: tsa_urls must be a list of http(s) URLs")
    clamd = _optional_path(values, "scan_clamd_socket", cfg)
    yara_dir = _optional_path(values, "scan_yara_dir", cfg)
    scan_max = values.get("scan_max_bytes", DEFAULT_SCAN_MAX_BYTES)
    if isinstance(scan_max, bool) or not isinstance(scan_max, int) or scan_max <= 0:
        raise ConfigError(f"{cfg}: scan_max_bytes must be a positive integer")
    scan_timeout = values.get("scan_timeout_seconds", 300)
    if (isinstance(scan_timeout, bool) or not isinstance(scan_timeout, int)
            or not 1 <= scan_timeout <= 3600):
        raise ConfigError(f"{cfg}: scan_timeout_seconds must be an integer from 1 to 3600")
    jar_entries = _int_in(values, "jar_max_entries", DEFAULT_JAR_MAX_ENTRIES, 1,
                          DEFAULT_JAR_MAX_ENTRIES, cfg)
    jar_manifest = _int_in(values, "jar_max_manifest_bytes", DEFAULT_JAR_MAX_MANIFEST_BYTES,
                           1024, 64 << 20, cfg)
    grace = _int_in(values, "shutdown_grace_seconds", 5, 1, 3600, cfg)
    return Settings(data_dir=data_dir, database_url=url, max_body_bytes=max_body,
                    organization=org, public_url=public_url,
                    tsa_policy_oid=policy, tsa_accuracy_seconds=accuracy,
                    one_time_cert_minutes=one_time, tsa_urls=tuple(tsa_urls),
                    scan_clamd_socket=clamd, scan_yara_dir=yara_dir,
                    scan_max_bytes=scan_max, scan_timeout_seconds=scan_timeout,
        scan_yara_max_concurrent=_int_in(
            values, "scan_yara_max_concurrent", DEFAULT_SCAN_YARA_MAX_CONCURRENT, 1, 256, cfg),
        upload_max_concurrent_per_identity=_int_in(
            values, "upload_max_concurrent_per_identity", DEFAULT_UPLOAD_MAX_CONCURRENT, 1,
            1024, cfg),
        upload_spool_max_bytes=_int_in(
            values, "upload_spool_max_bytes", DEFAULT_UPLOAD_SPOOL_MAX_BYTES, 1, 1 << 50, cfg),
        http_header_timeout_seconds=_int_in(
            values, "http_header_timeout_seconds", DEFAULT_HTTP_HEADER_TIMEOUT, 1, 3600, cfg),
        http_body_idle_timeout_seconds=_int_in(
            values, "http_body_idle_timeout_seconds", DEFAULT_HTTP_BODY_IDLE_TIMEOUT, 1, 3600,
            cfg),
        auth_failure_limit=_int_in(values, "auth_failure_limit", 100, 1, 1_000_000, cfg),
        auth_failure_window_seconds=_int_in(
            values, "auth_failure_window_seconds", 60, 1, 3600, cfg),
        jar_max_entries=jar_entries, jar_max_manifest_bytes=jar_manifest,
        shutdown_grace_seconds=grace)


def _int_in(values: dict[str, object], name: str, default: int, low: int, high: int,
            cfg: Path) -> int:
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{cfg}: {name} must be an integer from {low} to {high}")
    return value


def _optional_path(values: dict[str, object], name: str, cfg: Path) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{cfg}: {name} must be an absolute path")
    return value


def valid_oid(text: str) -> bool:
    """A dotted OID (X.660): arcs 0-2 first, then below 40 under 0 and 1."""
    if not _OID.fullmatch(text):
        return False
    first, second = text.split(".")[:2]
    return first == "2" or int(second) < 40


def default_config_text(public_url: str = DEFAULT_PUBLIC_URL) -> str:
    return (
        "# signgate configuration (see README, 'Configuration').\n"
        "# database_url = \"postgresql+psycopg://signgate@127.0.0.1/signgate\"\n"
        f"max_body_bytes = {DEFAULT_MAX_BODY}\n"
        "# The organisation named in the certificates signgate issues.\n"
        "organization = \"signgate\"\n"
        "# Where clients and verifiers reach this server: the CRL URLs in the certificates\n"
        "# it issues. When it changes, 'signgate serve' re-issues the CA and TSA certificates.\n"
        f"public_url = \"{public_url}\"\n"
        "# The time-stamp authority (POST /tsa, RFC 3161): the policy OID its tokens name\n"
        "# (use an arc of your organisation's own) and the accuracy it claims, in seconds.\n"
        f"# tsa_policy_oid = \"{DEFAULT_TSA_POLICY_OID}\"\n"
        "# tsa_accuracy_seconds = 1\n"
        "# External time-stamp authorities for signature timestamps, tried in order (the\n"
        "# first that answers wins); none: signgate's own TSA.\n"
        "# tsa_urls = [\"https://tsa.example.com/tsr\", \"https://backup.example.net/tsa\"]\n"
        "# Scanning before signing (see README, 'Scanning'): clamd's socket and/or a YARA\n"
        "# rules directory. Once one is set, new keys require a clean scan by default.\n"
        "# scan_clamd_socket = \"/run/signgate/clamd.sock\"\n"
        "# scan_yara_dir = \"/etc/signgate/yara\"\n"
        f"# scan_max_bytes = {DEFAULT_SCAN_MAX_BYTES}\n"
        "# scan_timeout_seconds = 300\n"
        "# YARA scans running at once (each maps the whole artifact into memory).\n"
        f"# scan_yara_max_concurrent = {DEFAULT_SCAN_YARA_MAX_CONCURRENT}\n"
        "# Uploads (scan, sign-upload): at once per identity (more: 429), and the bytes all\n"
        "# uploads in flight may reserve in DATA_DIR/spool together (more: 507).\n"
        f"# upload_max_concurrent_per_identity = {DEFAULT_UPLOAD_MAX_CONCURRENT}\n"
        f"# upload_spool_max_bytes = {DEFAULT_UPLOAD_SPOOL_MAX_BYTES}\n"
        "# Slow clients are disconnected: headers must arrive within this many seconds, and\n"
        "# a request body may pause this long between bytes (an idle, not a total, limit).\n"
        f"# http_header_timeout_seconds = {DEFAULT_HTTP_HEADER_TIMEOUT}\n"
        f"# http_body_idle_timeout_seconds = {DEFAULT_HTTP_BODY_IDLE_TIMEOUT}\n"
        "# Failed authentications per client address and window (per server process)\n"
        "# before answering 429; each window's failures are recorded with their count.\n"
        "# auth_failure_limit = 100\n"
        "# auth_failure_window_seconds = 60\n"
        "# The most one uploaded JAR may ask of the server (refused with 413 past them).\n"
        f"# jar_max_entries = {DEFAULT_JAR_MAX_ENTRIES}\n"
        f"# jar_max_manifest_bytes = {DEFAULT_JAR_MAX_MANIFEST_BYTES}\n"
        "# How long 'serve' lets requests in flight finish once told to stop.\n"
        "# shutdown_grace_seconds = 5\n"
    )
