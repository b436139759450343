"""Values the policy decides on: roles, scopes, grants, and snapshots of identities and keys."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from signgate.errors import ErrorCode, InvalidInput

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
GLOBAL_SCOPE = "*"


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"invalid {kind} name {name!r}: use lower-case letters, digits and '-', "
            "starting with a letter or digit, at most 63 characters",
            code=ErrorCode.BAD_NAME,
        )
    return name


class Role(enum.StrEnum):
    ADMIN = "admin"
    SIGNER = "signer"
    APPROVER = "approver"
    AUDITOR = "auditor"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(
                f"unknown role {value!r}; expected admin, signer, approver or auditor",
                code=ErrorCode.UNKNOWN_ROLE,
            ) from None


class IdentityKind(enum.StrEnum):
    USER = "user"
    SERVICE = "service"

    @classmethod
    def parse(cls, value: str) -> IdentityKind:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(
                f"unknown identity kind {value!r}; expected user or service",
                code=ErrorCode.BAD_KIND
            ) from None


class KeyState(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"
    DESTROYED = "destroyed"


class ScanPolicy(enum.StrEnum):
    """Must signgate itself have scanned the artifact clean before this key signs it?"""

    REQUIRED = "required"
    OFF = "off"

    @classmethod
    def parse(cls, value: str) -> ScanPolicy:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(f"unknown scan policy {value!r}; expected 'required' or 'off'",
                               code=ErrorCode.UNKNOWN_SCAN_POLICY) from None


@dataclass(frozen=True)
class Scope:
    """``*`` (everything), ``project`` or ``project/key``."""

    project: str | None = None
    key: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        if text == GLOBAL_SCOPE:
            return cls()
        project, sep, key = text.partition("/")
        check_name("project", project)
        if sep:
            check_name("key", key)
            return cls(project, key)
        return cls(project)

    def __str__(self) -> str:
        if self.project is None:
            return GLOBAL_SCOPE
        return self.project if self.key is None else f"{self.project}/{self.key}"

    def covers(self, project: str, key: str | None = None) -> bool:
        """True when this scope includes ``project`` (or ``project/key``)."""
        if self.project is None:
            return True
        if self.project != project:
            return False
        return self.key is None or self.key == key

    @property
    def is_global(self) -> bool:
        return self.project is None


@dataclass(frozen=True)
class Grant:
    role: Role
    scope: Scope


@dataclass(frozen=True)
class Federation:
    """How a caller authenticated through an OIDC exchange: the issuer's name, the claims
    its token was bound to (see policy/claims.py), and when the short-lived token ends."""

    issuer: str
    claims: tuple[tuple[str, str], ...]
    expires_at: datetime

    def record(self) -> dict[str, object]:
        """What the audit entries of this caller's actions say about it."""
        return {"issuer": self.issuer, "claims": dict(self.claims)}


@dataclass(frozen=True)
class Actor:
    """The authenticated identity, as the policy sees it."""

    name: str
    enabled: bool
    grants: tuple[Grant, ...]
    # Set for a short-lived token from an OIDC exchange: its grants are the claim
    # bindings its CI token matched, not the identity's own grants.
    federation: Federation | None = None

    def expired(self, now: datetime) -> bool:
        return self.federation is not None and now >= self.federation.expires_at

    def has(self, role: Role, project: str | None = None, key: str | None = None) -> bool:
        for g in self.grants:
            if g.role is not role:
                continue
            if project is None:
                if g.scope.is_global:
                    return True
            elif g.scope.covers(project, key):
                return True
        return False


@dataclass(frozen=True)
class KeySnapshot:
    project: str
    name: str
    state: KeyState
    rotate_every: timedelta | None
    max_signatures: int | None
    current_version: int
    current_version_created: datetime
    current_version_signatures: int
    # Signs only artifacts signgate itself received and scanned clean (ScanPolicy.REQUIRED).
    scan_required: bool = False

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.name}"
