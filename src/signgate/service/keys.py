"""Keys and key versions: create, rotate, disable, enable, revoke; public keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm, RsaPadding
from signgate.errors import Conflict, ErrorCode, InvalidInput, NotFound
from signgate.policy import builders as builder_policy
from signgate.policy import decide
from signgate.policy.approvals import ApprovalPolicy
from signgate.policy.model import Actor, KeyState, ScanPolicy, check_name
from signgate.policy.windows import check_quota, check_window_approvals
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.authorities import revoke_key_certificates
from signgate.service.records.keys import (
    fingerprint,
    get_key,
    key_view,
    new_version,
    public_key_view,
    rotate_version,
    split_ref,
    visible_key,
)
from signgate.service.records.projects import get_project
from signgate.service.views import KeyView, PublicKeyView
from signgate.store.models import Key, Project

MAX_ROTATE_DAYS = 36500
MAX_SIGNATURE_LIMIT = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL


def create(
    ctx: Context,
    caller: Caller,
    ref: str,
    algorithm: str = "ecdsa-p256",
    rsa_padding: str = "pss",
    rotate_every_days: int | None = None,
    max_signatures: int | None = None,
    cert_validity_days: int = 365,
    require_timestamp: bool = False,
    one_time: bool = False,
    scan: str | None = None,
    store: str | None = None,
) -> KeyView:
    project_name, name = split_ref(ref)
    # Once a scanner is configured, new keys sign only what signgate scanned clean itself.
    scan_policy = ScanPolicy.parse(scan) if scan is not None else (
        ScanPolicy.REQUIRED if ctx.settings.scanner_configured else ScanPolicy.OFF)

    def run(session: Session, actor: Actor) -> KeyView:
        alg = KeyAlgorithm.parse(algorithm)
        padding = RsaPadding.parse(rsa_padding)
        if rotate_every_days is not None and not 1 <= rotate_every_days <= MAX_ROTATE_DAYS:
            raise InvalidInput(f"--rotate-every must be 1 to {MAX_ROTATE_DAYS} days")
        if not 1 <= cert_validity_days <= MAX_ROTATE_DAYS:
            raise InvalidInput(f"--cert-validity must be 1 to {MAX_ROTATE_DAYS} days")
        if max_signatures is not None and not 1 <= max_signatures <= MAX_SIGNATURE_LIMIT:
            raise InvalidInput(f"--max-signatures must be 1 to {MAX_SIGNATURE_LIMIT}")
        if one_time and (rotate_every_days or max_signatures):
            raise InvalidInput("a one-time key has a new key pair for every signing: "
                               "--rotate-every and --max-signatures do not apply")
        if store is not None:
            ctx.keystores.store(store)  # InvalidInput for a store config.toml does not name
            if one_time:
                raise InvalidInput("a one-time key's key pairs are made where one-time keys "
                                   "go (the default store's): --store does not apply")
        d = decide.may_manage(actor, project_name)
        require(d.allowed, d.reason)
        project = get_project(session, project_name)
        exists = session.execute(
            select(Key.id).where(Key.project_id == project.id, Key.name == name)
        ).first()
        if exists:
            raise Conflict(f"key {ref} already exists")
        now = ctx.clock.now()
        key = Key(
            project_id=project.id, name=name, algorithm=alg.value, rsa_padding=padding.value,
            state=KeyState.ACTIVE.value, rotate_every_days=rotate_every_days,
            max_signatures=max_signatures, current_version=0 if one_time else 1,
            created_at=now, cert_validity_days=cert_validity_days,
            # One-time signings are always timestamped: the certificate outlives nothing.
            require_timestamp=require_timestamp or one_time, one_time=one_time,
            scan=scan_policy.value,
        )
        key.project = project
        session.add(key)
        session.flush()
        details: dict[str, object] = {
            "algorithm": alg.value, "rsa_padding": padding.value if alg.is_rsa else None,
            "rotate_every_days": rotate_every_days, "max_signatures": max_signatures,
            "require_timestamp": key.require_timestamp, "one_time": one_time,
            "scan": scan_policy.value}
        if not one_time:
            version = new_version(ctx, session, key, 1, now, store)
            session.flush()
            details |= {"version": 1, "key_uri": version.uri,
                        "store": ctx.keystores.store_name(version.uri),
                        "public_key_sha256": fingerprint(version.public_key_pem)}
        ctx.record(session, Record(actor.name, Action.KEY_CREATE, Outcome.ALLOWED, ref,
                                   project_name, ref, details), now)
        return key_view(session, key, ctx)

    return ctx.write(caller, Target(Action.KEY_CREATE, ref, project_name, ref), run)


def list_keys(ctx: Context, caller: Caller, project: str | None = None) -> list[KeyView]:
    def run(session: Session, actor: Actor) -> list[KeyView]:
        stmt = select(Key).join(Project, Key.project_id == Project.id)
        if project is not None:
            check_name("project", project)
            if not decide.may_see(actor, project):
                raise NotFound(f"no project named {project!r}")
            get_project(session, project)
            stmt = stmt.where(Project.name == project)
        keys = session.execute(stmt.order_by(Project.name, Key.name)).scalars().all()
        return [key_view(session, k, ctx) for k in keys
                if decide.may_see(actor, k.project.name, k.name)]

    return ctx.read(caller, Target(Action.READ, project or "keys", project), run)


def show(ctx: Context, caller: Caller, ref: str) -> KeyView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        return key_view(session, visible_key(session, actor, project, name), ctx,
                        attributes=True)

    return ctx.read(caller, Target(Action.READ, ref, project, ref), run)


def public(ctx: Context, caller: Caller, ref: str, version: int | None = None) -> PublicKeyView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> PublicKeyView:
        return public_key_view(session, actor, project, name, version)

    return ctx.read(caller, Target(Action.READ, ref, project, ref), run)


def rotate(ctx: Context, caller: Caller, ref: str, store: str | None = None) -> KeyView:
    """A new current version; its key pair in key store ``store`` (the way a key moves
    from the software vault onto an HSM), else in the store of the current version."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        if key.state in (KeyState.REVOKED, KeyState.DESTROYED):
            raise Conflict(f"key {ref} is {key.state} and cannot be rotated")
        if key.one_time:
            raise Conflict(f"key {ref} is one-time: every signing already has a new key")
        if store is not None:
            ctx.keystores.store(store)  # InvalidInput for a store config.toml does not name
        rotate_version(ctx, session, key, actor.name, "requested", ctx.clock.now(), store)
        return key_view(session, key, ctx)

    return ctx.write(caller, Target(Action.KEY_ROTATE, ref, project, ref), run)


def _set_state(
    ctx: Context, caller: Caller, ref: str, action: Action, new: KeyState, allowed_from: set[str]
) -> KeyView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        if key.state not in allowed_from:
            raise Conflict(f"key {ref} is {key.state}; cannot {action.value.split('.')[1]} it")
        old = key.state
        key.state = new.value
        ctx.record(session, Record(actor.name, action, Outcome.ALLOWED, ref, project, ref,
                                   {"from_state": old, "to_state": new.value}))
        return key_view(session, key, ctx)

    return ctx.write(caller, Target(action, ref, project, ref), run)


def set_scan_policy(ctx: Context, caller: Caller, ref: str, scan: str) -> KeyView:
    """``required``: only artifacts signgate scanned clean itself are signed; ``off``."""
    project, name = split_ref(ref)
    policy = ScanPolicy.parse(scan)

    def run(session: Session, actor: Actor) -> KeyView:
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        old = key.scan
        key.scan = policy.value
        ctx.record(session, Record(actor.name, Action.KEY_SCAN_POLICY, Outcome.ALLOWED, ref,
                                   project, ref, {"from": old, "to": policy.value}))
        return key_view(session, key, ctx)

    return ctx.write(caller, Target(Action.KEY_SCAN_POLICY, ref, project, ref), run)


def set_approval_policy(ctx: Context, caller: Caller, ref: str, approvals: int,
                        approver_scope: str | None = None) -> KeyView:
    """Quorum approvals: each signing with the key waits for ``approvals`` distinct
    approvers (never the requester) with the approver role on ``approver_scope`` (default:
    the key); 0 turns it off."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        policy = ApprovalPolicy.parse(approvals, approver_scope)
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        old = {"approvals": key.approvals or 0, "approver_scope": key.approver_scope}
        key.approvals = policy.approvals
        key.approver_scope = str(policy.approver_scope) if policy.approver_scope else None
        new = {"approvals": key.approvals, "approver_scope": key.approver_scope}
        ctx.record(session, Record(actor.name, Action.KEY_POLICY, Outcome.ALLOWED, ref,
                                   project, ref, {"from": old, "to": new}))
        return key_view(session, key)

    return ctx.write(caller, Target(Action.KEY_POLICY, ref, project, ref), run)


def set_builder_policy(ctx: Context, caller: Caller, ref: str, builders: int) -> KeyView:
    """Independent-build agreement: the key signs an artifact only once ``builders``
    distinct identities submitted the same digest for it and its release label; 0 turns
    it off (requests already waiting for builders keep the number they were made with)."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        required = builder_policy.check_policy(builders)
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        old = {"require_builders": key.require_builders or 0}
        key.require_builders = required
        ctx.record(session, Record(actor.name, Action.KEY_POLICY, Outcome.ALLOWED, ref,
                                   project, ref, {"from": old,
                                                  "to": {"require_builders": required}}))
        return key_view(session, key)

    return ctx.write(caller, Target(Action.KEY_POLICY, ref, project, ref), run)


def set_release_policy(ctx: Context, caller: Caller, ref: str, offline: bool | None = None,
                       max_per_identity_per_day: int | None = None,
                       window_approvals: int | None = None) -> KeyView:
    """Release windows and quotas: an ``offline`` key signs only inside an open release
    window (``signgate release open``); at most ``max_per_identity_per_day`` signatures
    per identity per UTC day (0: no quota); a release window opens only once
    ``window_approvals`` approvers approved it. None leaves a setting as it is."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        if offline is None and max_per_identity_per_day is None and window_approvals is None:
            raise InvalidInput("say --offline, --online, --max-per-identity-per-day N or "
                               "--window-approvals M", code=ErrorCode.BAD_RELEASE_POLICY)
        quota = None if max_per_identity_per_day is None else \
            check_quota(max_per_identity_per_day)
        quorum = None if window_approvals is None else \
            check_window_approvals(window_approvals)
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        old = {"offline": bool(key.offline),
               "max_per_identity_per_day": key.max_per_identity_per_day or 0,
               "window_approvals": key.window_approvals or 0}
        if offline is not None:
            key.offline = offline
        if quota is not None:
            key.max_per_identity_per_day = quota
        if quorum is not None:
            key.window_approvals = quorum
        new = {"offline": bool(key.offline),
               "max_per_identity_per_day": key.max_per_identity_per_day or 0,
               "window_approvals": key.window_approvals or 0}
        ctx.record(session, Record(actor.name, Action.KEY_POLICY, Outcome.ALLOWED, ref,
                                   project, ref, {"from": old, "to": new}))
        return key_view(session, key)

    return ctx.write(caller, Target(Action.KEY_POLICY, ref, project, ref), run)


def disable(ctx: Context, caller: Caller, ref: str) -> KeyView:
    return _set_state(ctx, caller, ref, Action.KEY_DISABLE, KeyState.DISABLED, {"active"})


def enable(ctx: Context, caller: Caller, ref: str) -> KeyView:
    return _set_state(ctx, caller, ref, Action.KEY_ENABLE, KeyState.ACTIVE, {"disabled"})


def revoke(
    ctx: Context, caller: Caller, ref: str, compromised_at: datetime, reason: str | None
) -> KeyView:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> KeyView:
        if reason is not None and len(reason) > 1000:
            raise InvalidInput("--reason is limited to 1000 characters")
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        if key.state == KeyState.REVOKED:
            raise Conflict(f"key {ref} is already revoked")
        now = ctx.clock.now()
        if compromised_at > now:
            raise InvalidInput("--compromised-at lies in the future")
        if compromised_at < key.created_at:
            # Nothing could be signed with a key before it existed: such a time is a typo
            # (or a default like 0001-01-01), and would revoke every signature it made.
            raise InvalidInput(f"--compromised-at {compromised_at.isoformat()} is before "
                               f"{ref} was created ({key.created_at.isoformat()})")
        old = key.state
        key.state = KeyState.REVOKED.value
        key.compromised_at = compromised_at
        key.revoked_at = now
        key.revoke_reason = reason
        ctx.record(
            session,
            Record(actor.name, Action.KEY_REVOKE, Outcome.ALLOWED, ref, project, ref,
                   {"from_state": old, "compromised_at": compromised_at.isoformat(),
                    "reason": reason}),
            now,
        )
        revoke_key_certificates(ctx, session, key, compromised_at, actor.name)
        return key_view(session, key, ctx)

    return ctx.write(caller, Target(Action.KEY_REVOKE, ref, project, ref), run)
