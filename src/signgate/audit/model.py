"""What an audit entry says, and how its hash is computed."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signgate.crypto.canonical import canonical_json

GENESIS_HASH = "0" * 64


class Action(enum.StrEnum):
    AUTHENTICATE = "auth.authenticate"
    PROJECT_CREATE = "project.create"
    KEY_CREATE = "key.create"
    KEY_ROTATE = "key.rotate"
    KEY_DISABLE = "key.disable"
    KEY_ENABLE = "key.enable"
    KEY_REVOKE = "key.revoke"
    KEY_SCAN_POLICY = "key.scan-policy"
    IDENTITY_CREATE = "identity.create"
    IDENTITY_DISABLE = "identity.disable"
    IDENTITY_ENABLE = "identity.enable"
    IDENTITY_ROTATE_TOKEN = "identity.rotate-token"
    GRANT_ADD = "grant.add"
    GRANT_REMOVE = "grant.remove"
    SIGN = "signature.create"
    AUDIT_READ = "audit.read"
    READ = "read"
    INIT = "signgate.init"
    CA_CREATE = "ca.create"
    TSA_CREATE = "tsa.create"
    TIMESTAMP = "timestamp.issue"
    CRL_PUBLISH = "crl.publish"
    CERT_REVOKE = "certificate.revoke"
    CERT_REISSUE = "certificate.reissue"
    CERT_REQUEST = "certificate.request"
    CERT_IMPORT = "certificate.import"
    SCAN = "artifact.scan"
    DENY_ADD = "denylist.add"
    DENY_REMOVE = "denylist.remove"


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"


@dataclass(frozen=True)
class Record:
    """An audit entry before it has a place in the chain."""

    actor: str
    action: Action
    outcome: Outcome
    subject: str
    project: str | None = None
    key_ref: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def time_text(t: datetime) -> str:
    """ISO 8601 UTC with microseconds: the form hashed, whatever the database returns."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(
    seq: int,
    time: datetime,
    actor: str,
    action: str,
    outcome: str,
    subject: str,
    project: str | None,
    key_ref: str | None,
    details: Any,
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON of every stored field but the hash itself."""
    body = {
        "seq": seq,
        "time": time_text(time),
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "subject": subject,
        "project": project,
        "key": key_ref,
        "details": details,
        "prev": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()
