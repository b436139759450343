"""Where signgate keeps its state and how it finds its database and master key.

A data directory holds ``config.toml``, the SQLite database ``signgate.db``, the master
key ``master.key`` (mode 0600) and the bootstrap admin's ``admin.token`` (0600).
``SIGNGATE_DATABASE_URL`` replaces the SQLite database; ``SIGNGATE_MASTER_KEY`` (base64,
32 bytes) replaces the master key file; ``SIGNGATE_PUBLIC_URL`` replaces ``public_url``.

Every setting is declared once, as a field of :class:`Settings` (a frozen, strict pydantic
model): its type, default, bounds, description and, where it has one, the environment
variable that replaces it. From those fields come the keys ``config.toml`` may hold (all
but ``data_dir``), the checks (a key that is no setting stops signgate with its name and
the closest setting, so a misspelt setting never silently falls back to its default; a
value of the wrong type, out of its range or not a valid URL stops it with the rule it
breaks) and the commented template ``init`` writes. A new setting is a new field.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from signgate.errors import ConfigError, ErrorCode, SigngateError
from signgate.keystore.soft import decode_master_key, read_master_key_file
from signgate.transparency.cosignature import parse_cosigner_key

CONFIG_FILE = "config.toml"
DATABASE_FILE = "signgate.db"
MASTER_KEY_FILE = "master.key"
ADMIN_TOKEN_FILE = "admin.token"
DEFAULT_DATA_DIR = "signgate-data"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
# The policy under which the time-stamp authority issues tokens (RFC 3161 TSTInfo.policy).
# An arc under a Private Enterprise Number; set your own organisation's OID in config.toml.
DEFAULT_TSA_POLICY_OID = "1.3.6.1.4.1.59544.1.1"
DEFAULT_HTTP_HEADER_TIMEOUT = 10  # api/protocol.py's deadline before configure() runs
_SCAN_MAX_BYTES = 4 << 30
# What the server reads of one uploaded JAR: entries (65,535 is all a JAR without ZIP64
# can hold).
_JAR_MAX_ENTRIES = 65535
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
# Databases store/db.py opens (SQLAlchemy URLs, optionally with a driver: sqlite+pysqlite).
_DATABASES = ("sqlite", "postgresql")


# The keys of a [stores.NAME] table (one kind of store so far: a PKCS#11 token).
_STORE_KEYS = ("type", "module", "token", "pin_env", "pin_file")
_SWITCH = {"1": True, "true": True, "on": True, "yes": True,
           "0": False, "false": False, "off": False, "no": False}
_STORE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
SOFT_STORE = "soft"


def _rule(must: str, *, env: str | None = None) -> dict[str, Any]:
    """A field's extra metadata: the rule its value breaks (``{value!r}`` is replaced by
    the value given) and the environment variable that replaces it."""
    return {"must": must, **({"env": env} if env else {})}


class StoreSettings(BaseModel):
    """One ``[stores.NAME]`` table: a PKCS#11 module and the label of its token; the PIN
    comes from an environment variable (``pin_env``) or a file only its owner may read
    (``pin_file``), exactly one of them: never from config.toml itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    type: str
    module: str
    token: str
    pin_env: str | None = None
    pin_file: str | None = None

    def pin(self, name: str) -> str:
        """The PIN, read now; ConfigError (one sentence, never the PIN) if unreadable."""
        if self.pin_env is not None:
            pin = os.environ.get(self.pin_env)
            if not pin:
                raise ConfigError(f"key store {name!r}: the environment variable "
                                  f"{self.pin_env} (pin_env) is not set")
            return pin
        path = Path(str(self.pin_file))
        try:
            mode = path.stat().st_mode & 0o777
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"key store {name!r}: cannot read the PIN file {path}: "
                              f"{exc.strerror}") from exc
        if mode & 0o077:
            raise ConfigError(f"key store {name!r}: the PIN file {path} is readable by others "
                              f"(mode {mode:o}); run chmod 600")
        pin = text.rstrip("\r\n")
        if not pin:
            raise ConfigError(f"key store {name!r}: the PIN file {path} is empty")
        return pin


def _check_store(name: object, table: object) -> None:
    """A ``[stores.NAME]`` table as signgate needs it, or a ValueError saying what is not."""
    if not isinstance(name, str) or not _STORE_NAME.fullmatch(name) or name == SOFT_STORE:
        raise ValueError(f"[stores.{name}]: a store name is [a-z0-9][a-z0-9_-]* and not "
                         f"{SOFT_STORE!r} (the software vault)")
    if not isinstance(table, dict):
        raise ValueError(f"stores.{name} must be a [stores.{name}] table")
    for key in table:
        if key not in _STORE_KEYS:
            close = difflib.get_close_matches(str(key), _STORE_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"[stores.{name}]: unknown key {key!r}{hint}")
    if table.get("type") != "pkcs11":
        raise ValueError(f"[stores.{name}]: type must be \"pkcs11\"")
    for key in ("module", "token"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ValueError(f"[stores.{name}]: {key} must be set (a non-empty string)")
    if not str(table["module"]).startswith("/"):
        raise ValueError(f"[stores.{name}]: module must be an absolute path")
    if ("pin_env" in table) == ("pin_file" in table):
        raise ValueError(f"[stores.{name}]: set exactly one of pin_env and pin_file (the PIN "
                         "itself never goes into config.toml)")
    for key in ("pin_env", "pin_file"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise ValueError(f"[stores.{name}]: {key} must be a non-empty string")
    if "pin_file" in table and not str(table["pin_file"]).startswith("/"):
        raise ValueError(f"[stores.{name}]: pin_file must be an absolute path")


class Settings(BaseModel):
    """Every setting; each field but ``data_dir`` is a key ``config.toml`` may set."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    data_dir: Path = Field(description="The data directory (--data-dir, SIGNGATE_DATA_DIR).")
    database_url: str = Field(
        description="The database (SQLAlchemy URL); none: SQLite in the data directory.",
        examples=["postgresql+psycopg://signgate@127.0.0.1/signgate"],
        json_schema_extra=_rule("must be a sqlite:// or postgresql:// URL",
                                env="SIGNGATE_DATABASE_URL"))
    max_body_bytes: int = Field(1 << 20, gt=0,
                                description="The largest request body accepted, in bytes.")
    organization: str = Field(
        "signgate", min_length=1,
        description="The organisation named in the certificates signgate issues.",
        json_schema_extra=_rule("must be a non-empty string"))
    public_url: str = Field(
        DEFAULT_PUBLIC_URL,
        description="Where clients and verifiers reach this server: the CRL URLs in the "
                    "certificates it issues. When it changes, 'signgate serve' re-issues "
                    "the CA and TSA certificates.",
        json_schema_extra=_rule(f"must be an http(s) URL such as {DEFAULT_PUBLIC_URL}, "
                                "not {value!r}", env="SIGNGATE_PUBLIC_URL"))
    tsa_policy_oid: str = Field(
        DEFAULT_TSA_POLICY_OID,
        description="The policy OID the tokens of the time-stamp authority (POST /tsa, "
                    "RFC 3161) name; use an arc of your organisation's own.",
        json_schema_extra=_rule(f"must be a dotted OID such as {DEFAULT_TSA_POLICY_OID}"))
    tsa_accuracy_seconds: int = Field(
        1, ge=1, le=60, description="The accuracy the time-stamp authority claims, in seconds.")
    one_time_cert_minutes: int = Field(
        10, ge=1, le=1440, description="The lifetime of a one-time certificate, in minutes.")
    tsa_urls: tuple[str, ...] = Field(
        (),
        description="External time-stamp authorities for signature timestamps, tried in "
                    "order (the first that answers wins); none: signgate's own TSA.",
        examples=[("https://tsa.example.com/tsr", "https://backup.example.net/tsa")],
        json_schema_extra=_rule("must be a list of http(s) URLs"))
    scan_clamd_socket: str | None = Field(
        None,
        description="Scanning before signing (see README, 'Scanning'): clamd's socket. Once "
                    "a scanner is set, new keys require a clean scan by default.",
        examples=["/run/signgate/clamd.sock"],
        json_schema_extra=_rule("must be an absolute path"))
    scan_yara_dir: str | None = Field(
        None, description="Scanning before signing: a directory of YARA rules.",
        examples=["/etc/signgate/yara"], json_schema_extra=_rule("must be an absolute path"))
    scan_max_bytes: int = Field(_SCAN_MAX_BYTES, gt=0,
                                description="The largest artifact accepted for scanning.")
    scan_timeout_seconds: int = Field(300, ge=1, le=3600,
                                      description="How long one scan may take.")
    scan_yara_max_concurrent: int = Field(
        2, ge=1, le=256,
        description="YARA scans running at once in one server process (each maps the whole "
                    "artifact into memory).")
    upload_max_concurrent_per_identity: int = Field(
        4, ge=1, le=1024,
        description="Uploads (scan, sign-upload) in flight at once per identity (more: 429).")
    # Two artifacts of the largest size accepted for scanning fit in the default.
    upload_spool_max_bytes: int = Field(
        2 * _SCAN_MAX_BYTES, ge=1, le=1 << 50,
        description="The bytes all uploads in flight may reserve in DATA_DIR/spool together "
                    "(more: 507).")
    http_header_timeout_seconds: int = Field(
        DEFAULT_HTTP_HEADER_TIMEOUT, ge=1, le=3600,
        description="Slow clients are disconnected: a request's headers must arrive within "
                    "this many seconds.")
    http_body_idle_timeout_seconds: int = Field(
        60, ge=1, le=3600,
        description="How long a request body may pause between bytes (an idle, not a total, "
                    "limit).")
    # Per server process; each window's failures are recorded with their count, not one
    # audit entry each (see service/auth_failures.py).
    auth_failure_limit: int = Field(
        100, ge=1, le=1_000_000,
        description="Failed authentications per client address and window (per server "
                    "process) before answering 429; each window's failures are recorded "
                    "with their count.")
    auth_failure_window_seconds: int = Field(
        60, ge=1, le=3600, description="That window (aligned to the clock), in seconds.")
    oidc_token_minutes: int = Field(
        10, ge=1, le=1440,
        description="The lifetime of the signgate token a CI job gets for its OIDC token "
                    "(POST /api/v1/oidc/token), in minutes.")
    oidc_jwks_cooldown_seconds: int = Field(
        60, ge=0, le=3600,
        description="An OIDC issuer's JWKS is fetched again for a token signed by an unknown "
                    "key (kid), at most once per this many seconds.")
    jar_max_entries: int = Field(
        _JAR_MAX_ENTRIES, ge=1, le=_JAR_MAX_ENTRIES,
        description="The most entries one uploaded JAR may have (more: 413).")
    jar_max_manifest_bytes: int = Field(
        32 << 20, ge=1024, le=64 << 20,
        description="The most bytes of an uploaded JAR's manifest or signature file "
                    "(more: 413).")
    log_witnesses: tuple[str, ...] = Field(
        (),
        description="Witnesses that cosign the log's checkpoints (see README, 'Transparency "
                    "log'): each 'URL VERIFIER_KEY', the key as 'signgate witness "
                    "public-key' prints it.",
        examples=[("https://witness.example.net:8380 "
                   "witness.example.net+de8e5c2b+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",)],
        json_schema_extra=_rule("must be a list of 'http(s)-URL witness-verifier-key' "
                                "strings"))
    log_witness_quorum: int = Field(
        0, ge=0, le=64,
        description="How many of log_witnesses must cosign a checkpoint; at most as many "
                    "as there are witnesses.")
    log_witness_policy: str = Field(
        "refuse",
        description="When fewer than log_witness_quorum witnesses cosign: 'refuse' withholds "
                    "the signatures of that batch (503, recorded); 'catch-up' returns them "
                    "with receipts saying how many cosigned (log_cosignatures) and keeps "
                    "asking the witnesses in the background until the quorum cosigned.",
        json_schema_extra=_rule("must be 'refuse' or 'catch-up'"))
    log_witness_timeout_seconds: int = Field(
        5, ge=1, le=60, description="How long one witness may take to answer.")
    shutdown_grace_seconds: int = Field(
        5, ge=1, le=3600,
        description="How long 'serve' lets requests in flight finish once told to stop.")
    approval_ttl_minutes: float = Field(
        1440, gt=0, le=525600,
        description="How long a signing request waits for its approvals (keys with "
                    "'key policy --approvals M') before it expires, in minutes (fractions "
                    "allowed).",
        json_schema_extra=_rule("must be a number of minutes above 0"))
    approval_webhook_url: str | None = Field(
        None,
        description="Approvers are told of each new pending signing request: a JSON POST "
                    "here, signed with HMAC-SHA256 (X-Signgate-Signature), retried.",
        examples=["https://chat.example.com/hooks/signgate"],
        json_schema_extra=_rule("must be an http(s) URL"))
    approval_webhook_secret_file: str | None = Field(
        None,
        description="The file holding the webhook's HMAC secret (never logged); required "
                    "with approval_webhook_url.",
        examples=["/etc/signgate/webhook.secret"],
        json_schema_extra=_rule("must be an absolute path"))
    metrics: str = Field(
        "token",
        description="GET /metrics (Prometheus; see README, 'Observability'): 'token' "
                    "answers callers whose token has an auditor or admin grant on '*' "
                    "(the metrics name every key and how it is used), 'public' anyone, "
                    "'off' nobody (404, and requests are not timed).",
        json_schema_extra=_rule("must be 'token', 'public' or 'off'"))
    access_log: bool = Field(
        False,
        description="One line per request on the server's standard error (JSON: time, "
                    "request id, method, path, route, status, duration, identity, client "
                    "address); 'serve --access-log' switches it on for one run.",
        json_schema_extra=_rule("must be true or false", env="SIGNGATE_ACCESS_LOG"))
    default_store: str = Field(
        SOFT_STORE,
        description="Where new keys go (and the keys of 'signgate init'): 'soft', the "
                    "software vault, or the name of a [stores.NAME] table below (see README, "
                    "'Keys in an HSM'). A rotation keeps a key in its store unless "
                    "'key rotate --store' names another.",
        json_schema_extra=_rule("must be 'soft' or the name of a [stores.NAME] table"))
    ui_session_minutes: int = Field(
        30, ge=1, le=480,
        description="The web console (/ui/): a session ends this many minutes after its "
                    "last use, and 8 hours after sign-in whatever its use.")
    ui_secure_cookies: bool = Field(
        False,
        description="The web console's session cookie is always marked Secure (set it when "
                    "a TLS proxy in front speaks HTTPS to browsers and plain HTTP to "
                    "signgate); without it, Secure is set on requests that arrive over "
                    "HTTPS.",
        json_schema_extra=_rule("must be true or false"))
    ui_oidc_issuer: str | None = Field(
        None,
        description="The web console: people may also sign in through this OpenID Connect "
                    "provider (authorization code flow with PKCE; see README, 'Signing in "
                    "through your identity provider'). Its redirect URI is public_url + "
                    "'/ui/oidc/callback'.",
        examples=["https://login.example.com/realms/acme"],
        json_schema_extra=_rule("must be an http(s) URL (https, or http to 127.0.0.1)"))
    ui_oidc_client_id: str | None = Field(
        None, min_length=1, max_length=255,
        description="The console's client id at that provider (required with "
                    "ui_oidc_issuer); ID tokens must name it as their audience.",
        examples=["signgate-console"], json_schema_extra=_rule("must be a non-empty string"))
    ui_oidc_client_secret_file: str | None = Field(
        None,
        description="The file (mode 0600, read at start) holding the client secret; none: a "
                    "public client that proves itself with PKCE alone.",
        examples=["/etc/signgate/oidc-client.secret"],
        json_schema_extra=_rule("must be an absolute path"))
    ui_oidc_claim: str = Field(
        "email",
        description="The ID token claim that names the person's signgate identity (kind "
                    "user): 'email' (verified, in ui_oidc_email_domain: its part before the "
                    "@ is the identity's name), or any other claim (such as "
                    "'preferred_username' or 'sub') whose value is the name itself.",
        json_schema_extra=_rule("must be a claim name (letters, digits, _ . : -)"))
    ui_oidc_email_domain: str | None = Field(
        None,
        description="With ui_oidc_claim = 'email': the one mail domain whose addresses sign "
                    "in (alice@example.com is identity alice).",
        examples=["example.com"], json_schema_extra=_rule("must be a domain name"))
    # Last: TOML tables end the top-level keys, so the template shows them at its end.
    stores: dict[str, StoreSettings] = Field(
        default_factory=dict,
        description="Key stores on PKCS#11 tokens (HSMs), one [stores.NAME] table each.",
        json_schema_extra=_rule("must be [stores.NAME] tables"))

    def __init__(self, data_dir: Path, database_url: str, **values: Any) -> None:
        super().__init__(data_dir=data_dir, database_url=database_url, **values)

    @field_validator("database_url")
    @classmethod
    def _database(cls, url: str) -> str:
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.partition("+")[0] not in _DATABASES:
            raise ValueError("unsupported database URL")
        return url

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str) -> str:
        if not _is_base_url(url):
            raise ValueError("not a base URL")
        return url.rstrip("/")  # CRL paths are appended

    @field_validator("tsa_policy_oid")
    @classmethod
    def _oid(cls, oid: str) -> str:
        if not valid_oid(oid):
            raise ValueError("not an OID")
        return oid

    @field_validator("tsa_urls", "log_witnesses", mode="before")
    @classmethod
    def _toml_array(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value  # TOML arrays are lists

    @field_validator("tsa_urls")
    @classmethod
    def _http_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        if not all(_is_http_url(u) for u in urls):
            raise ValueError("not an http(s) URL")
        return urls

    @field_validator("log_witnesses")
    @classmethod
    def _witnesses(cls, witnesses: tuple[str, ...]) -> tuple[str, ...]:
        for w in witnesses:
            url, _, key = w.partition(" ")
            if not _is_base_url(url) or not key.strip():
                raise ValueError("not 'URL KEY'")
            try:
                parse_cosigner_key(key.strip())
            except SigngateError as exc:
                raise ValueError(str(exc)) from None
        return witnesses

    @field_validator("log_witness_policy")
    @classmethod
    def _policy(cls, policy: str) -> str:
        if policy not in ("refuse", "catch-up"):
            raise ValueError("unknown policy")
        return policy

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: str) -> str:
        if value not in ("token", "public", "off"):
            raise ValueError("unknown metrics access")
        return value

    @field_validator("access_log", mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        # From SIGNGATE_ACCESS_LOG (a string); config.toml gives a TOML boolean.
        if isinstance(value, str) and value.lower() in _SWITCH:
            return _SWITCH[value.lower()]
        return value

    @field_validator("stores", mode="before")
    @classmethod
    def _stores(cls, stores: object) -> object:
        if not isinstance(stores, dict):
            raise ValueError("stores must be [stores.NAME] tables")
        for name, table in stores.items():
            _check_store(name, table)
        tokens = [(t["module"], t["token"]) for t in stores.values()]
        if len(set(tokens)) != len(tokens):
            raise ValueError("two [stores.NAME] tables name the same token of the same module")
        return stores

    @model_validator(mode="after")
    def _default_store(self) -> Settings:
        if self.default_store != SOFT_STORE and self.default_store not in self.stores:
            raise ValueError(f"default_store {self.default_store!r} names no store: it must "
                             f"be 'soft' or the name of a [stores.NAME] table "
                             f"({', '.join(sorted(self.stores)) or 'there is none'})")
        return self

    @model_validator(mode="after")
    def _quorum(self) -> Settings:
        if self.log_witness_quorum > len(self.log_witnesses):
            raise ValueError(f"log_witness_quorum {self.log_witness_quorum} is more than the "
                             f"{len(self.log_witnesses)} log_witnesses configured")
        return self

    @field_validator("approval_webhook_url")
    @classmethod
    def _webhook_url(cls, url: str | None) -> str | None:
        if url is not None and not _is_http_url(url):
            raise ValueError("not an http(s) URL")
        return url

    @model_validator(mode="after")
    def _webhook_secret(self) -> Settings:
        if self.approval_webhook_url and not self.approval_webhook_secret_file:
            raise ValueError("approval_webhook_url needs approval_webhook_secret_file (the "
                             "HMAC secret the receiver checks)")
        return self

    @field_validator("ui_oidc_issuer")
    @classmethod
    def _ui_oidc_issuer(cls, url: str | None) -> str | None:
        if url is not None and not _is_http_url(url):
            raise ValueError("not an http(s) URL")
        return url

    @field_validator("ui_oidc_claim")
    @classmethod
    def _ui_oidc_claim(cls, claim: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", claim):
            raise ValueError("not a claim name")
        return claim

    @field_validator("ui_oidc_email_domain")
    @classmethod
    def _ui_oidc_domain(cls, domain: str | None) -> str | None:
        if domain is not None and not re.fullmatch(
                r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", domain):
            raise ValueError("not a domain name")
        return domain

    @model_validator(mode="after")
    def _ui_oidc(self) -> Settings:
        if bool(self.ui_oidc_issuer) != bool(self.ui_oidc_client_id):
            raise ValueError("ui_oidc_issuer and ui_oidc_client_id go together (the provider "
                             "people sign in through, and the console's client id there)")
        if self.ui_oidc_issuer and self.ui_oidc_claim == "email" \
                and not self.ui_oidc_email_domain:
            raise ValueError("ui_oidc_claim = \"email\" needs ui_oidc_email_domain (the mail "
                             "domain whose addresses name signgate identities)")
        return self

    @field_validator("scan_clamd_socket", "scan_yara_dir", "approval_webhook_secret_file",
                     "ui_oidc_client_secret_file")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError("not an absolute path")
        return path

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
    return tuple(name for name in Settings.model_fields if name != "data_dir")


def check_known_keys(values: dict[str, object], cfg: Path) -> None:
    """Refuse a key that is no setting, naming it and the closest setting, if any."""
    known = setting_names()
    for key in values:
        if key not in known:
            raise _unknown(key, str(cfg))


def _unknown(key: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(key, setting_names(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{source}: unknown setting {key!r}{hint}", code=ErrorCode.UNKNOWN_SETTING)


def check_public_url(url: object, source: str) -> str:
    """An http(s) URL with a host, without its trailing slash (CRL URLs are appended)."""
    if isinstance(url, str) and _is_base_url(url):
        return url.rstrip("/")
    raise ConfigError(f"{source}: public_url {_must('public_url', url)}")


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def _is_base_url(url: str) -> bool:
    """An http(s) URL paths can be appended to: no query, fragment or user."""
    parts = urlsplit(url) if _is_http_url(url) else None
    return (parts is not None and not parts.query and not parts.fragment
            and not parts.username)


def _must(name: str, value: object) -> str:
    """The rule setting ``name`` states for its values: its declared one, or for an
    integer its bounds."""
    field = Settings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("must"), str):
        return str(extra["must"]).format(value=value)
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        for key in ("ge", "le"):  # annotated_types.Ge, .Le
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    if "ge" in bounds and "le" in bounds:
        return f"must be an integer from {bounds['ge']} to {bounds['le']}"
    return "must be a positive integer"


def _env(name: str) -> str | None:
    """The environment variable that replaces setting ``name``, if any."""
    extra = Settings.model_fields[name].json_schema_extra
    env = extra.get("env") if isinstance(extra, dict) else None
    return env if isinstance(env, str) else None


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
    """The settings of ``data_dir``: ``config.toml``, then the environment variables that
    replace settings; ``public_url`` (a command-line option) replaces both."""
    data_dir = data_dir.resolve()
    cfg = str(data_dir / CONFIG_FILE)
    values = read_config(data_dir)
    sources = dict.fromkeys(values, cfg)  # named in the message about a value
    for name in setting_names():
        env = _env(name)
        if env and os.environ.get(env):
            values[name], sources[name] = os.environ[env], env
    if public_url is not None:
        values["public_url"], sources["public_url"] = public_url, "--public-url"
    values.setdefault("database_url", sqlite_url(data_dir))
    try:
        return Settings.model_validate({**values, "data_dir": data_dir})
    except ValidationError as exc:
        raise _config_error(exc, values, sources, cfg) from None


def _config_error(exc: ValidationError, values: dict[str, object],
                  sources: dict[str, str], cfg: str) -> ConfigError:
    """Pydantic's report as signgate's one line: an unknown key first, else the first
    setting whose value breaks its rule, named with where that value came from."""
    errors = exc.errors()
    for error in errors:
        if error["type"] == "extra_forbidden":
            return _unknown(str(error["loc"][0]), cfg)
    if not errors[0]["loc"]:  # a rule across settings (a model validator)
        return ConfigError(f"{cfg}: {str(errors[0]['msg']).removeprefix('Value error, ')}")
    name = str(errors[0]["loc"][0])
    if name == "stores" and errors[0]["type"] == "value_error":
        return ConfigError(f"{cfg}: {str(errors[0]['msg']).removeprefix('Value error, ')}")
    return ConfigError(f"{sources.get(name, cfg)}: {name} {_must(name, values.get(name))}")


def valid_oid(text: str) -> bool:
    """A dotted OID (X.660): arcs 0-2 first, then below 40 under 0 and 1."""
    if not _OID.fullmatch(text):
        return False
    first, second = text.split(".")[:2]
    return first == "2" or int(second) < 40


def default_config_text(public_url: str = DEFAULT_PUBLIC_URL) -> str:
    """The ``config.toml`` ``init`` writes: every setting with its description, commented
    out with its default (or an example, where the default is none) but ``public_url``,
    which is set to where this installation is reached."""
    lines = ["# signgate configuration (see README, 'Configuration')."]
    for name in setting_names():
        field = Settings.model_fields[name]
        lines += textwrap.wrap(str(field.description), 86, initial_indent="# ",
                               subsequent_indent="# ")
        if name == "public_url":
            lines.append(f"public_url = {_toml(public_url)}")
            continue
        if name == "stores":
            # An example table, indented inside its comment: it is not a setting's line.
            lines += ["#   [stores.hsm]", '#   type = "pkcs11"',
                      '#   module = "/usr/lib/softhsm/libsofthsm2.so"',
                      '#   token = "signgate"            # the token\'s label',
                      '#   pin_env = "SIGNGATE_HSM_PIN"  # or pin_file = "/run/secrets/hsm-pin"']
            continue
        shown = field.examples[0] if field.examples else field.default
        lines.append(f"# {name} = {_toml(shown)}")
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """A TOML value: integers as they are, strings as basic strings (JSON's escapes are
    TOML's), arrays of those."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)
