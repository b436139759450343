"""SQLAlchemy 2 models. Kept apart from the API schemas on purpose."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from signgate.store.types import UTCDateTime


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(63))

    keys: Mapped[list[Key]] = relationship(back_populates="project")


class Key(Base):
    __tablename__ = "keys"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(16))
    rsa_padding: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    rotate_every_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_signatures: Mapped[int | None] = mapped_column(Integer, nullable=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    compromised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    cert_validity_days: Mapped[int] = mapped_column(Integer, default=365)
    require_timestamp: Mapped[bool] = mapped_column(Boolean, default=False)
    # One-time: no long-lived key pair; each signing gets a fresh one (pipeline/strategies.py).
    one_time: Mapped[bool] = mapped_column(Boolean, default=False)
    # "required": only an artifact signgate scanned clean itself may be signed; "off".
    scan: Mapped[str] = mapped_column(String(16), default="off")
    # Quorum approvals: a signing waits for this many approvers (0: signs at once), who
    # need the approver role on ``approver_scope`` (None: the key's own scope).
    approvals: Mapped[int] = mapped_column(Integer, default=0)
    approver_scope: Mapped[str | None] = mapped_column(String(127), nullable=True)
    # Independent-build agreement: a signing waits until this many distinct builders
    # submitted the same digest for the artifact and release label (0: off).
    require_builders: Mapped[int] = mapped_column(Integer, default=0)
    # Release windows and quotas: an offline key signs only inside an open release window;
    # at most this many signatures per identity per UTC day (0: no quota).
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    max_per_identity_per_day: Mapped[int] = mapped_column(Integer, default=0)
    # A release window of this key opens only once this many approvers approved it.
    window_approvals: Mapped[int] = mapped_column(Integer, default=0)

    project: Mapped[Project] = relationship(back_populates="keys")
    versions: Mapped[list[KeyVersion]] = relationship(
        back_populates="key", order_by="KeyVersion.version"
    )


class KeyVersion(Base):
    __tablename__ = "key_versions"
    __table_args__ = (UniqueConstraint("key_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"))
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(255), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signature_count: Mapped[int] = mapped_column(Integer, default=0)

    key: Mapped[Key] = relationship(back_populates="versions")


class VaultEntry(Base):
    """The software vault's sealed private keys (AES-256-GCM; see keystore/soft.py)."""

    __tablename__ = "vault_entries"

    uri: Mapped[str] = mapped_column(String(255), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class Authority(Base):
    """A CA of signgate's own: the root, or a project's issuing CA. Its key is in the key
    store (URI + public key here, like a signing key version)."""

    __tablename__ = "authorities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True,
                                                   unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    key_uri: Mapped[str] = mapped_column(String(255), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Certificate(Base):
    """Every certificate signgate issued: CA certificates and one per key version."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    profile: Mapped[str] = mapped_column(String(16))
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("authorities.id"), nullable=True)
    authority_id: Mapped[int | None] = mapped_column(ForeignKey("authorities.id"),
                                                     nullable=True, index=True)
    key_version_id: Mapped[int | None] = mapped_column(ForeignKey("key_versions.id"),
                                                       nullable=True, index=True)
    subject: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    der: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    invalidity_date: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The issuer chain of an imported certificate (PEM), for certificates from other CAs.
    chain_pem: Mapped[str | None] = mapped_column(Text, nullable=True)


class RevocationList(Base):
    """Every CRL a CA published; the newest per authority is served."""

    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("authority_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"))
    number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime())
    next_update: Mapped[datetime] = mapped_column(UTCDateTime())
    der: Mapped[bytes] = mapped_column(LargeBinary)


class Identity(Base):
    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    grants: Mapped[list[GrantRow]] = relationship(back_populates="identity")


class GrantRow(Base):
    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("identity_id", "role", "scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    role: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(127))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    identity: Mapped[Identity] = relationship(back_populates="grants")


class SignatureRecord(Base):
    """One signature: what the database must find it by, pointing at its audit entry.

    Everything the entry already records (the signature id, artifact, digest, format,
    signature hash, client, metadata, scan verdicts, OIDC claims) is read from the entry's
    details, which are the public record the log proves; this row holds only what queries
    select on (key version, identity, time, the first 8 bytes of the signature's SHA-256)
    and the timestamp token, which the entry does not hold. Rows from before migration
    0014 were cut down to this (their entries always held the rest)."""

    __tablename__ = "signatures"
    __table_args__ = (
        # verify: a signature found by its hash (confirmed against the entry's full hash).
        Index("ix_signatures_prefix", "signature_prefix"),
        # totals and daily quotas: grouped and counted from the index alone.
        Index("ix_signatures_totals", "key_version_id", "identity_id", "signed_at"),
    )

    # The audit entry's seq: the table's key (SQLite: the rowid itself, no second B-tree).
    audit_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
        autoincrement=False)
    key_version_id: Mapped[int] = mapped_column(ForeignKey("key_versions.id"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The first 8 bytes of SHA-256(signature value), as a signed big-endian integer.
    signature_prefix: Mapped[int] = mapped_column(BigInteger)
    # The RFC 3161 TimeStampResp over the signature value, when it was timestamped.
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


def signature_prefix(signature_sha256: bytes) -> int:
    """What ``SignatureRecord.signature_prefix`` holds for a signature's SHA-256."""
    return int.from_bytes(signature_sha256[:8], "big", signed=True)


class OidcIssuer(Base):
    """An OIDC issuer whose tokens CI jobs exchange for short-lived signgate tokens. Its
    exchanged tokens act as ``identity`` (made with the issuer, ``oidc-NAME``)."""

    __tablename__ = "oidc_issuers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    issuer: Mapped[str] = mapped_column(String(512), unique=True)
    audience: Mapped[str] = mapped_column(String(512))
    jwks_url: Mapped[str] = mapped_column(String(1024))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(63))


class OidcGrant(Base):
    """A grant earned by the issuer's tokens whose claims match ``claims_json``
    (policy/claims.py's canonical form)."""

    __tablename__ = "oidc_grants"
    __table_args__ = (UniqueConstraint("issuer_id", "role", "scope", "claims_json"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("oidc_issuers.id"))
    role: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(127))
    claims_json: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OidcSession(Base):
    """A short-lived token from an exchange: only its hash, the grants and claims it is
    bound to, and when it ends. In the database, so that every node accepts it."""

    __tablename__ = "oidc_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("oidc_issuers.id"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    grants_json: Mapped[str] = mapped_column(Text)
    claims_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OidcJti(Base):
    """Each CI token is exchanged once: its ``jti``, kept until the token has expired."""

    __tablename__ = "oidc_jtis"
    __table_args__ = (UniqueConstraint("issuer_id", "jti"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("oidc_issuers.id"))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ApprovalRequest(Base):
    """A signing that waits for approvals: everything needed to sign it later, its state
    (pending, approved, signed, denied, expired) and, once signed, the result."""

    __tablename__ = "approval_requests"
    __table_args__ = (
        Index("ix_approval_requests_state", "state", "expires_at"),
        Index("ix_approval_requests_same", "requester_id", "key_id", "digest"),
        UniqueConstraint("key_id", "release_id", name="uq_approval_requests_release"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    artifact_name: Mapped[str] = mapped_column(Text)
    digest_algorithm: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(128))
    format: Mapped[str] = mapped_column(String(16))
    params_json: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[bool] = mapped_column(Boolean, default=False)
    # The clean scan of an uploaded artifact (ScanOutcome.details()), signed with it later.
    scan_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A requester that was an OIDC job: its issuer and the claims its token was bound to
    # (the job's grants are re-matched from them when the request is signed).
    federation_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    required: Mapped[int] = mapped_column(Integer)
    approver_scope: Mapped[str] = mapped_column(String(127))
    state: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # a denial's
    signature_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The signing's result (SignResult without its log proof, which is made when read).
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Independent-build agreement: the release label, SHA-256 of (artifact name, label)
    # (one request per release), and how many distinct builders must agree (0: none).
    release: Mapped[str | None] = mapped_column(String(128), nullable=True)
    release_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    builders_required: Mapped[int] = mapped_column(Integer, default=0)


class BuilderSubmission(Base):
    """One builder's digest for a release (one each, at most)."""

    __tablename__ = "builder_submissions"
    __table_args__ = (UniqueConstraint("request_id", "identity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    digest: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    audit_seq: Mapped[int] = mapped_column(BigInteger)


class Approval(Base):
    """One approval or denial of a request by one identity (one each, at most)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "identity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    decision: Mapped[str] = mapped_column(String(16))  # "approve" or "deny"
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    audit_seq: Mapped[int] = mapped_column(BigInteger)


class DenyListEntry(Base):
    """An artifact that must never be signed, by SHA-256 (managed by admins, audited)."""

    __tablename__ = "deny_list"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (
        # Each filter of a log or report page with the page's order (seq), so that a page
        # reads its rows in order from the index and stops: O(page), not O(matches).
        Index("ix_audit_time", "time"),
        Index("ix_audit_actor_seq", "actor", "seq"),
        Index("ix_audit_key_seq", "key_ref", "seq"),
        Index("ix_audit_project_seq", "project", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text)
    project: Mapped[str | None] = mapped_column(String(63), nullable=True)
    key_ref: Mapped[str | None] = mapped_column(String(127), nullable=True)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sequence number and hash. Writers lock it to append in order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))
    # How many entries the log's Merkle tree covers (equal to seq once caught up).
    tree_size: Mapped[int] = mapped_column(BigInteger, default=0)


class LogHash(Base):
    """One stored hash of the log's Merkle tree: the hash of a complete subtree, at its
    position in the append-only sequence of ``transparency.merkle``. Never updated."""

    __tablename__ = "log_hashes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogKey(Base):
    """The log's signing key (Ed25519, in the key store) and the origin it signs for."""

    __tablename__ = "log_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(255), unique=True)
    key_uri: Mapped[str] = mapped_column(String(255), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LogCheckpoint(Base):
    """A signed checkpoint (C2SP signed note) of the tree at ``size``, one per write
    transaction; witnesses' cosignatures are added to ``note`` as they arrive."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cosignatures: Mapped[int] = mapped_column(Integer, default=0)


def table(model: type[Base]) -> Table:
    """The Core table of a model, for bulk statements on the hot signing path."""
    return cast(Table, model.__table__)


class ReleaseWindow(Base):
    """A time (and optionally a number of signatures, and a list of signers) in which an
    offline key signs. ``signatures`` counts what it allowed, inside the signing
    transactions."""

    __tablename__ = "release_windows"
    __table_args__ = (Index("ix_release_windows_key", "key_id", "until"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"))
    label: Mapped[str | None] = mapped_column(String(127), nullable=True)
    opened_by: Mapped[str] = mapped_column(String(255))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    max_signatures: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signers_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    signatures: Mapped[int] = mapped_column(Integer, default=0)
    # Approvals it needs before it opens (the key's window_approvals when it was opened),
    # and those it has: [{"identity", "at", "audit_seq", "comment"}].
    required_approvals: Mapped[int] = mapped_column(Integer, default=0)
    approvals_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class UiSession(Base):
    """A web console session (web/): only the hash of its cookie's random id, whose it is,
    the hash of the token it was opened with (rotating or revoking that token ends it), and
    when it ends (``expires_at`` slides with use, never past ``absolute_expires_at``)."""

    __tablename__ = "ui_sessions"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
