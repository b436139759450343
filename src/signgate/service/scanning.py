"""Scanning before signing: the artifact itself, received, scanned and hashed by signgate.

For a key with ``scan required`` the client uploads the artifact (streamed). signgate
spools it to its own disk (memory stays bounded whatever the size), computes its SHA-256
on the way, runs every configured scanner on it plus the hash deny-list, and computes what
the format signs from those same bytes (the file's digest, the PE image hash, a JAR's .SF,
...). A digest the client sends along is only compared, never signed: a client cannot
obtain a signature over bytes signgate did not scan. Only a clean verdict reaches the key
store; a finding, and a scanner that cannot answer (down, timed out, erroring), refuse the
signing. Either way the verdict goes into the audit entry (see ``pipeline/record.py``).

This module orchestrates: the scanner set is ``scan/scanners.py`` (clamd is handed the
spooled file's descriptor, so it reads the very file that was hashed), admission to the
spool ``spool.py`` and receiving the body into it ``uploads.py``. Blocking work runs in
anyio's worker threads (the same pool the web framework uses), so that no web-framework
import is needed here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from anyio import to_thread
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import (
    Denied,
    ErrorCode,
    InvalidInput,
    LengthRequired,
    LimitExceeded,
    NotFound,
    SigngateError,
)
from signgate.formats import registry as formats
from signgate.formats.base import ClientFormat, PublicKeyInfo
from signgate.formats.jar import JarClient, JarLimits
from signgate.formats.raw import DetachedDigest
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.scan.outcome import ScanOutcome
from signgate.service import spool
from signgate.service.context import ANONYMOUS, Caller, Context, Target, refusal_record
from signgate.service.records.denylist import denied as denied_hashes
from signgate.service.records.keys import public_key_view, refuse_signer, split_ref
from signgate.service.sign_request import SignOutcome, SignRequest
from signgate.service.uploads import Spooled, receive, spool_dir, too_large
from signgate.service.views import PublicKeyView


def authorize(ctx: Context, caller: Caller, target: Target,
              check: Any = None, key: tuple[str, str] | None = None) -> Actor:
    """Before a byte is read: who is this, and may they (refusals are recorded). With
    ``key``, a caller who may see that key learns that it does not exist."""
    def run(session: Any, actor: Actor) -> Actor:
        if check is not None:
            decision = check(actor)
            if not decision.allowed:
                if key is not None:
                    try:
                        refuse_signer(session, actor, *key, decision.reason)
                    except NotFound as exc:
                        exc.details["actor"] = actor.name  # for the record of the refusal
                        raise
                raise Denied(decision.reason)
        return actor

    return ctx.read(caller, target, run)


def record_refusal(ctx: Context, caller: Caller, target: Target, actor: str,
                   exc: SigngateError, extra: Mapping[str, Any] | None = None) -> None:
    record = refusal_record(caller, target, actor, exc)
    if extra:
        record = Record(record.actor, record.action, record.outcome, record.subject,
                        record.project, record.key_ref, {**record.details, **extra})
    with ctx.transaction() as session:
        ctx.record(session, record)


def _key_lookup(ctx: Context, caller: Caller, ref: str) -> PublicKeyInfo:
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> PublicKeyView:
        return public_key_view(session, actor, project, name)

    view = ctx.read(caller, Target(Action.READ, ref, project, ref), run)
    return PublicKeyInfo(ref, view.version, KeyAlgorithm(view.algorithm),
                         RsaPadding(view.rsa_padding) if view.rsa_padding else None,
                         view.public_key_pem, view.created_at)


def examine(ctx: Context, caller: Caller, ref: str | None, spooled: Spooled,
            fmt: str | None = None, algorithm: DigestAlgorithm = DigestAlgorithm.SHA256,
            params: Mapping[str, str] | None = None,
            client_digest: str | None = None) -> tuple[ScanOutcome, bytes | None]:
    """Scan the spooled artifact and (for a signing) compute what its format signs."""
    with ctx.db.read() as session:
        denied = denied_hashes(session)
    try:
        verdicts = ctx.scanners.scan(spooled.path, spooled.sha256, denied)
    except SigngateError as exc:
        return ScanOutcome(spooled.sha256, spooled.size, error=exc), None
    outcome = ScanOutcome(spooled.sha256, spooled.size, tuple(verdicts))
    if fmt is None or ref is None or outcome.findings:
        return outcome, None
    side = _bounded(ctx, formats.client(fmt))
    try:
        if isinstance(side, DetachedDigest) and algorithm is DigestAlgorithm.SHA256:
            digest = bytes.fromhex(spooled.sha256)  # hashed on the way in: no second read
        else:
            digest = side.recompute(spooled.path, algorithm, params or {},
                                    lambda: _key_lookup(ctx, caller, ref))
    except SigngateError as exc:
        return ScanOutcome(spooled.sha256, spooled.size, tuple(verdicts), exc), None
    if client_digest and client_digest.lower() != digest.hex():
        mismatch = InvalidInput("the digest sent does not match the uploaded artifact: "
                                "signgate signs only what it scanned",
                                code=ErrorCode.DIGEST_MISMATCH)
        return ScanOutcome(spooled.sha256, spooled.size, tuple(verdicts), mismatch), None
    return outcome, digest


def _bounded(ctx: Context, side: ClientFormat) -> ClientFormat:
    """The format's client half with the server's bounds on one upload's work (JAR entries
    and manifest size from config.toml; refused with 413 and recorded like any refusal),
    ending the work when the server stops."""
    if isinstance(side, JarClient):
        settings = ctx.settings
        return JarClient(JarLimits(settings.jar_max_entries, settings.jar_max_manifest_bytes,
                                   ctx.stopping.is_set, configured=True))
    return side


@dataclass(frozen=True)
class UploadSign:
    """A signing request whose artifact comes in the body (made a SignRequest once
    signgate has scanned it and computed the digest itself)."""

    artifact_name: str
    format: str = "raw"
    digest_algorithm: str = "sha256"
    digest: str | None = None  # the client's own, compared with signgate's
    metadata: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    timestamp: bool = False
    release: str | None = None  # for a key that needs independent builders


async def sign_upload(ctx: Context, caller: Caller, ref: str, request: UploadSign,
                      stream: AsyncIterator[bytes], declared: int | None) -> SignOutcome:
    """Receive, scan, hash and sign (or refuse) an uploaded artifact."""
    project, name = split_ref(ref)
    target = Target(Action.SIGN, request.artifact_name or ref, project, ref)
    try:
        actor = await to_thread.run_sync(authorize, ctx, caller, target,
                                        lambda a: decide.may_sign_with(a, project, name),
                                        (project, name))
    except NotFound as exc:  # told to a caller who may see the key: on the record too
        await to_thread.run_sync(record_refusal, ctx, caller, target,
                                exc.details.get("actor", ANONYMOUS), exc)
        raise
    algorithm = DigestAlgorithm.parse(request.digest_algorithm)
    try:  # an unknown format or parameter is refused (and recorded) before the upload
        formats.builder(request.format)
        formats.check_params(request.format, request.params)
    except SigngateError as exc:
        await to_thread.run_sync(record_refusal, ctx, caller, target, actor.name, exc)
        raise
    spooled = await _receive_or_refuse(ctx, caller, target, actor.name, stream, declared,
                                       request.artifact_name)
    try:
        outcome, digest = await to_thread.run_sync(
            examine, ctx, caller, ref, spooled, request.format, algorithm, request.params,
            request.digest)
        return await ctx.signing.submit_async(SignRequest(
            caller, project, name, algorithm.value, digest.hex() if digest is not None else "",
            request.artifact_name, request.metadata, request.timestamp, request.format,
            request.params, scan=outcome, release=request.release))
    finally:
        spooled.remove()


async def _receive_or_refuse(ctx: Context, caller: Caller, target: Target, actor: str,
                             stream: AsyncIterator[bytes], declared: int | None,
                             artifact_name: str) -> Spooled:
    """Admit the upload (refusals before a byte of the body is read), then receive it."""
    settings = ctx.settings
    limit = settings.scan_max_bytes
    try:
        if declared is None:
            raise LengthRequired("an upload must declare its length (Content-Length): "
                                 "signgate reserves room in its spool before it reads one")
        if declared > limit:
            raise too_large(limit)
        directory = await to_thread.run_sync(functools.partial(
            spool.admit, spool_dir(settings.data_dir), actor, declared,
            per_identity=settings.upload_max_concurrent_per_identity,
            budget=settings.upload_spool_max_bytes))
        return await receive(directory, stream, limit, artifact_name)
    except (InvalidInput, LimitExceeded) as exc:
        # Too large, no length, too many in flight, no room, a body that stopped coming:
        # all refusals of this identity's upload, on the record.
        await to_thread.run_sync(record_refusal, ctx, caller, target, actor, exc,
                                {"declared_size": declared})
        raise


@dataclass(frozen=True)
class ScanReport:
    artifact_name: str
    clean: bool
    verdict: str
    sha256: str
    size: int
    findings: list[str]
    engines: list[dict[str, Any]]
    scanned_at: datetime
    audit_seq: int


async def scan_upload(ctx: Context, caller: Caller, artifact_name: str,
                      stream: AsyncIterator[bytes], declared: int | None) -> ScanReport:
    """``signgate scan FILE``: the verdict, without signing; recorded like any scan."""
    target = Target(Action.SCAN, artifact_name or "artifact")
    actor = await to_thread.run_sync(authorize, ctx, caller, target, decide.may_scan)
    spooled = await _receive_or_refuse(ctx, caller, target, actor.name, stream, declared,
                                       artifact_name)
    try:
        started = time.monotonic()
        outcome, _ = await to_thread.run_sync(examine, ctx, caller, None, spooled)
        details = outcome.details() | {"seconds": round(time.monotonic() - started, 3)}
        if outcome.error is not None:
            await to_thread.run_sync(record_refusal, ctx, caller, target, actor.name,
                                    outcome.error, {"scan": details})
            raise outcome.error
        return await to_thread.run_sync(_record_scan, ctx, caller, target, actor.name,
                                       outcome, details)
    finally:
        spooled.remove()


def _record_scan(ctx: Context, caller: Caller, target: Target, actor: str,
                 outcome: ScanOutcome, details: dict[str, Any]) -> ScanReport:
    now = ctx.clock.now()
    if caller.address:
        details["client"] = caller.address
    with ctx.transaction() as session:
        seq = ctx.record(session, Record(actor, Action.SCAN, Outcome.ALLOWED, target.subject,
                                         details=details), now)
    return ScanReport(target.subject, not outcome.findings, outcome.verdict, outcome.sha256,
                      outcome.size, outcome.findings, details["engines"], now, seq)
