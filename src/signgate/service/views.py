"""What the use cases return: plain frozen values, also used as the API's response models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class ProjectView:
    name: str
    created_at: datetime
    created_by: str
    keys: int


@dataclass(frozen=True)
class KeyVersionView:
    version: int
    created_at: datetime
    retired_at: datetime | None
    signatures: int
    current: bool
    # The configured key store the version's private key lives in ("soft", or a
    # [stores.NAME] table's name), and for an HSM key on `key show` its security
    # attributes as the token reports them (sensitive, extractable, never_extractable,
    # always_sensitive, local; None where the store has none or could not be asked).
    store: str = "soft"
    attributes: dict[str, bool | None] | None = None


@dataclass(frozen=True)
class KeyView:
    project: str
    name: str
    ref: str
    algorithm: str
    rsa_padding: str | None
    state: str
    current_version: int
    rotate_every_days: int | None
    max_signatures: int | None
    cert_validity_days: int
    require_timestamp: bool
    one_time: bool
    scan: str
    created_at: datetime
    compromised_at: datetime | None
    revoke_reason: str | None
    versions: list[KeyVersionView] = field(default_factory=list)
    # Quorum approvals: signings wait for this many approvers (0: none), with the approver
    # role on approver_scope (None: on the key).
    approvals: int = 0
    approver_scope: str | None = None
    # Independent-build agreement: distinct builders that must submit the same digest for
    # an artifact and release label before it signs (0: off).
    require_builders: int = 0
    # Release windows and quotas: an offline key signs only inside an open release window;
    # at most max_per_identity_per_day signatures per identity per UTC day (0: no quota).
    offline: bool = False
    max_per_identity_per_day: int = 0
    window_approvals: int = 0  # approvals a release window needs before it opens


@dataclass(frozen=True)
class ReleaseWindowView:
    """A release window of an offline key: until when, for how many signatures (None: no
    limit) and for whom (None: any signer), how many it made, and its state now."""

    id: str
    key: str
    label: str | None
    state: str  # open, expired, closed, exhausted
    opened_by: str
    opened_at: datetime
    until: datetime
    max_signatures: int | None
    signers: list[str] | None
    signatures: int
    closed_at: datetime | None
    closed_by: str | None
    # key policy --window-approvals: approvals needed before it opens, and those it has
    required_approvals: int = 0
    approvals: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PublicKeyView:
    key: str
    version: int
    algorithm: str
    rsa_padding: str | None
    public_key_pem: str
    current: bool
    created_at: datetime


@dataclass(frozen=True)
class IdentityView:
    name: str
    kind: str
    enabled: bool
    created_at: datetime
    grants: list[str]


@dataclass(frozen=True)
class IdentityWithToken:
    identity: IdentityView
    token: str


@dataclass(frozen=True)
class GrantView:
    identity: str
    role: str
    scope: str
    created_at: datetime
    # An OIDC grant: the issuer whose tokens earn it, and the claims they must have (any
    # of each list); ``identity`` is then the issuer's identity (oidc-NAME).
    oidc_issuer: str | None = None
    claims: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class OidcIssuerView:
    name: str
    issuer: str
    audience: str
    jwks_url: str
    identity: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class OidcTokenView:
    """A short-lived signgate token for a CI job's OIDC token (shown once)."""

    token: str
    expires_at: datetime
    identity: str
    issuer: str
    grants: list[str]
    claims: dict[str, str]


@dataclass(frozen=True)
class Receipt:
    signature_id: str
    key: str
    key_version: int
    algorithm: str
    rsa_padding: str | None
    digest_algorithm: str
    digest: str
    artifact_name: str
    format: str
    identity: str
    signed_at: datetime
    audit_seq: int
    timestamp_serial: str | None = None
    timestamp_time: datetime | None = None
    # When signgate scanned the artifact itself: verdict, engines, artifact SHA-256.
    scan: dict[str, Any] | None = None
    # The entry's place in the transparency log (leaf index = audit_seq - 1), the size of
    # the tree its inclusion proof is in, and how many configured witnesses cosigned that
    # tree's checkpoint. None before the log has a key.
    log_index: int | None = None
    log_size: int | None = None
    log_cosignatures: int = 0
    # A key with quorum approvals: the request this signing answered and its approvals
    # (identity, time, audit_seq, comment), as its audit entry lists them.
    approval: dict[str, Any] | None = None


@dataclass(frozen=True)
class SignPolicyView:
    """How a signing with this key goes: upload for scanning, or send a digest."""

    key: str
    scan_required: bool
    one_time: bool
    require_timestamp: bool


@dataclass(frozen=True)
class SignResult:
    signature: str  # base64
    receipt: Receipt
    # RFC 3161 TimeStampResp (DER, base64) over the signature value, when timestamped.
    timestamp: str | None = None
    # One-time keys: the signing certificate and its issuing CA (PEM).
    certificate: str | None = None
    # C2SP tlog-proof@v1 text: the entry (as 'extra'), its inclusion proof and the signed
    # checkpoint, verifiable offline ('signgate log verify-receipt').
    log_proof: str | None = None


@dataclass(frozen=True)
class ApprovalView:
    """One approver's decision on a request."""

    identity: str
    decision: str  # approve or deny
    at: datetime
    audit_seq: int
    comment: str | None = None


@dataclass(frozen=True)
class BuilderView:
    """One builder's submission of a release's digest."""

    identity: str
    at: datetime
    audit_seq: int


@dataclass(frozen=True)
class RequestView:
    """A signing request waiting for (or done with) its approvals. Signing answers it with
    202; once signed, ``result`` is the very body a direct signing returns."""

    request_id: str
    key: str
    artifact_name: str
    digest_algorithm: str
    digest: str
    format: str
    requester: str
    state: str  # awaiting_builders, pending, approved, signed, denied, expired, mismatch
    required: int
    approver_scope: str
    created_at: datetime
    expires_at: datetime
    audit_seq: int
    approvals: list[ApprovalView] = field(default_factory=list)
    reason: str | None = None  # a denial's, or a builder mismatch's
    signature_id: str | None = None
    result: SignResult | None = None
    # Independent-build agreement: the release label, the builders needed and those that
    # agreed so far (identity, at, audit_seq).
    release: str | None = None
    builders_required: int = 0
    builders: list[BuilderView] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyResult:
    valid: bool
    key: str
    reason: str
    key_version: int | None = None
    algorithm: str | None = None
    signature_id: str | None = None
    signed_at: datetime | None = None
    signed_by: str | None = None
    key_state: str | None = None
    compromised_at: datetime | None = None
    timestamped_at: datetime | None = None


@dataclass(frozen=True)
class AuditEntryView:
    seq: int
    time: datetime
    actor: str
    action: str
    outcome: str
    subject: str
    project: str | None
    key: str | None
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntryView]
    next_after: int | None


@dataclass(frozen=True)
class AuditVerifyView:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    problem: str | None


@dataclass(frozen=True)
class WhoAmI:
    name: str
    kind: str
    grants: list[str]


@dataclass(frozen=True)
class CertificateChainView:
    subject: str
    serial: str
    sha256: str
    not_before: datetime
    not_after: datetime
    pem: str
    chain_pem: str  # the certificate, then its issuing CA's (PEM)


@dataclass(frozen=True)
class DenyListView:
    sha256: str
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class SignatureRow:
    """One signature as the reports show it (``signgate report signatures``), or, with
    ``outcome=refused``, one refused signing: then what only a signature has (its id, key
    version, digest, format) is None and ``reason`` says why it was refused."""

    signature_id: str | None
    signed_at: datetime
    key: str
    key_version: int | None
    identity: str
    artifact_name: str
    digest_algorithm: str | None
    digest: str | None
    format: str | None
    timestamp_time: datetime | None
    scan: str | None  # "clean" with the engines that passed it, or None if not scanned
    audit_seq: int
    log_index: int  # the audit entry's leaf in the log: audit_seq - 1
    # For a CI job's exchanged OIDC token: the issuer and the claims (repository, ref,
    # workflow, run id ...) as one line, e.g. "github: repository=acme/app run_id=42".
    oidc: str | None = None
    outcome: str = "allowed"  # or "refused"
    reason: str | None = None  # a refusal's reason, as the audit entry records it


@dataclass(frozen=True)
class SignaturePage:
    signatures: list[SignatureRow]
    next_after: int | None  # the audit_seq to continue after, None on the last page


@dataclass(frozen=True)
class SignatureTotal:
    name: str  # a key (PROJECT/NAME) or an identity
    signatures: int
    first: datetime
    last: datetime


@dataclass(frozen=True)
class SignatureTotals:
    signatures: int
    by_key: list[SignatureTotal]
    by_identity: list[SignatureTotal]


@dataclass(frozen=True)
class DayCount:
    """Signing entries of one project on one day (UTC): signatures made or refused."""

    day: date
    project: str
    signatures: int
    refusals: int
