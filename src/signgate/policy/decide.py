"""Allow or deny, with the reason in words a release engineer understands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from signgate.errors import ErrorCode
from signgate.policy.model import Actor, KeySnapshot, KeyState, Role, Scope


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    # The machine code of a refusal when it is not the plain ``denied`` (a client acts on
    # it: ``scan_required`` means "upload the artifact instead").
    code: ErrorCode | None = None

    @classmethod
    def allow(cls) -> Decision:
        return cls(True)

    @classmethod
    def deny(cls, reason: str, code: ErrorCode | None = None) -> Decision:
        return cls(False, reason, code)


def may_manage(actor: Actor, project: str | None, key: str | None = None) -> Decision:
    """Admin on the target (``project`` None means the whole installation)."""
    if not actor.enabled:
        return Decision.deny(f"identity {actor.name} is disabled")
    if actor.has(Role.ADMIN, project, key):
        return Decision.allow()
    where = "signgate" if project is None else (f"{project}/{key}" if key else project)
    return Decision.deny(f"identity {actor.name} may not manage {where}: no admin grant")


def may_grant(actor: Actor, scope: Scope) -> Decision:
    """Global admins grant anything; a project admin grants within the project."""
    if scope.is_global:
        return may_manage(actor, None)
    assert scope.project is not None
    return may_manage(actor, scope.project)


def may_see(actor: Actor, project: str, key: str | None = None) -> bool:
    """Whether ``actor`` may know that ``project`` (or ``project/key``) exists: any grant
    that covers it, or any grant on one of the project's keys when asking about the
    project. Things an identity may not see are reported exactly like missing ones."""
    if not actor.enabled:
        return False
    for g in actor.grants:
        if g.scope.covers(project, key):
            return True
        if key is None and g.scope.project == project:
            return True
    return False


def may_read_audit(actor: Actor, project: str | None) -> Decision:
    """Auditor or admin on all of ``project`` (None: the whole installation, as verifying
    the chain needs)."""
    if not actor.enabled:
        return Decision.deny(f"identity {actor.name} is disabled")
    for role in (Role.AUDITOR, Role.ADMIN):
        if actor.has(role, project):
            return Decision.allow()
    return _no_audit_grant(actor, project)


def audit_scopes(actor: Actor) -> tuple[Scope, ...] | None:
    """The scopes whose audit entries ``actor`` may read (auditor or admin grants); None
    means every entry. A key scope reads the entries about that key only; a project scope
    those about the project and all its keys. Entries about no project (identities,
    the root CA, failed authentications) need a global grant."""
    if not actor.enabled:
        return ()
    scopes = {g.scope for g in actor.grants if g.role in (Role.AUDITOR, Role.ADMIN)}
    if any(s.is_global for s in scopes):
        return None
    return tuple(sorted(scopes, key=str))


def may_read_audit_of(actor: Actor, project: str | None, key_ref: str | None) -> Decision:
    """May ``actor`` ask for the audit entries of ``project`` and/or the key ``key_ref``
    (``None``: no such filter)? Asking for a project or key outside the actor's scopes
    is refused, decided from the grants alone, so the answer tells nothing about whether
    it exists; what a permitted query returns is still limited to :func:`audit_scopes`."""
    scopes = audit_scopes(actor)
    if scopes is None:
        return Decision.allow() if actor.enabled else may_read_audit(actor, None)
    if not actor.enabled:
        return may_read_audit(actor, None)
    if project is not None and not any(s.project == project for s in scopes):
        return _no_audit_grant(actor, project)
    if key_ref is not None:
        key_project, _, key_name = key_ref.partition("/")
        if not any(s.project == key_project and s.key in (None, key_name) for s in scopes):
            return _no_audit_grant(actor, key_ref)
    if not scopes:
        return _no_audit_grant(actor, None)
    return Decision.allow()


def _no_audit_grant(actor: Actor, where: str | None) -> Decision:
    return Decision.deny(f"identity {actor.name} may not read the audit log of "
                         f"{where or 'all projects'}: no auditor grant")


def may_sign_with(actor: Actor, project: str, key: str) -> Decision:
    """The identity's side of signing: enabled, and a signer grant covering the key."""
    if not actor.enabled:
        return Decision.deny(f"identity {actor.name} is disabled")
    if not actor.has(Role.SIGNER, project, key):
        return Decision.deny(
            f"identity {actor.name} may not sign with {project}/{key}: no signer grant"
        )
    return Decision.allow()


def may_scan(actor: Actor) -> Decision:
    """Uploading an artifact only to scan it: a signer grant on some key. A scan is work
    (and disk) spent for someone who could sign what passes; no one else needs it."""
    if not actor.enabled:
        return Decision.deny(f"identity {actor.name} is disabled")
    if not any(g.role is Role.SIGNER for g in actor.grants):
        return Decision.deny(
            f"identity {actor.name} may not upload artifacts to scan: no signer grant")
    return Decision.allow()


def may_sign(actor: Actor, key: KeySnapshot, scanned: bool | None = None) -> Decision:
    """The identity's side (:func:`may_sign_with`), then the key's: it must be active, and
    a key that requires scanning signs only what signgate scanned itself (``scanned``:
    whether signgate received and scanned the artifact; None when what is signed is not an
    artifact, such as OpenPGP's self-signature on an exported key)."""
    d = may_sign_with(actor, key.project, key.name)
    if not d.allowed:
        return d
    if key.state is not KeyState.ACTIVE:
        return Decision.deny(f"key {key.ref} is {key.state.value}")
    if key.scan_required and scanned is False:
        return Decision.deny(f"key {key.ref} signs only artifacts signgate has scanned: "
                             "upload the artifact (signgate sign does, for such keys)",
                             ErrorCode.SCAN_REQUIRED)
    return Decision.allow()


def rotation_due(key: KeySnapshot, now: datetime) -> str | None:
    """Why the current version must rotate before it signs again, or None."""
    if key.max_signatures is not None and key.current_version_signatures >= key.max_signatures:
        return (
            f"version {key.current_version} reached its limit of {key.max_signatures} signatures"
        )
    if key.rotate_every is not None and now - key.current_version_created >= key.rotate_every:
        days = key.rotate_every.total_seconds() / 86400
        return f"version {key.current_version} is older than {days:g} days"
    return None
