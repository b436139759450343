"""Scanning before signing: the artifact itself, received, scanned and hashed by signgate.

For a key with ``scan required`` the client uploads the artifact (streamed). signgate
spools it to its own disk (memory stays bounded whatever the size), computes its SHA-256
on the way, runs every configured scanner on it plus the hash deny-list, and computes what
the format signs from those same bytes (the file's digest, the PE image hash, a JAR's .SF,
...). A digest the client sends along is only compared, never signed: a client cannot
obtain a signature over bytes signgate did not scan. Only a clean verdict reaches the key
store; a finding, and a scanner that cannot answer (down, timed out, erroring), refuse the
signing. Either way the verdict goes into the audit entry (see ``sign_batch.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import (
    Denied,
    ErrorCode,
    InvalidInput,
    LengthRequired,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    ScannerUnavailable,
    SigngateError,
    StorageFull,
)
from signgate.formats import registry as formats
from signgate.formats.base import ClientFormat, PublicKeyInfo
from signgate.formats.jar import JarClient, JarLimits
from signgate.formats.raw import DetachedDigest
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.scan.base import Scanner, Verdict, scan_all
from signgate.scan.clamd import ClamdScanner
from signgate.scan.denylist import DenyListScanner
from signgate.scan.outcome import ScanOutcome
from signgate.scan.yara import YaraScanner
from signgate.service import spool
from signgate.service.context import ANONYMOUS, Caller, Context, Target, refusal_record
from signgate.service.lifecycle import stopping
from signgate.service.records.denylist import denied as denied_hashes
from signgate.service.records.keys import public_key_view, refuse_signer, split_ref
from signgate.service.sign_batch import SignBatcher, SignJob
from signgate.service.views import PublicKeyView, SignResult

CHUNK_WRITE = 1 << 20


class Scanners:
    """The engines configured in ``config.toml`` (made once per process)."""

    def __init__(self, ctx: Context) -> None:
        settings = ctx.settings
        self.engines: list[Scanner] = []
        self.clamd: ClamdScanner | None = None
        if settings.scan_clamd_socket:
            self.clamd = ClamdScanner(settings.scan_clamd_socket,
                                      timeout=float(settings.scan_timeout_seconds))
            self.engines.append(self.clamd)
        if settings.scan_yara_dir:
            self.engines.append(YaraScanner(
                Path(settings.scan_yara_dir), timeout=settings.scan_timeout_seconds,
                max_concurrent=settings.scan_yara_max_concurrent))

    def scan(self, path: Path, denied: Mapping[str, str],
             streamed: Verdict | None = None) -> list[Verdict]:
        """Every engine, then the deny-list. No engine configured is not a pass.
        ``streamed``: clamd's verdict, already given while the upload arrived."""
        if not self.engines:
            raise ScannerUnavailable("signgate", "no scanner is configured "
                                     "(scan_clamd_socket or scan_yara_dir in config.toml)")
        if streamed is None:
            return scan_all([*self.engines, DenyListScanner(denied)], path)
        others = [e for e in self.engines if e is not self.clamd]
        return [streamed, *scan_all([*others, DenyListScanner(denied)], path)]


class _StreamedClamd:
    """clamd scanning an upload while it arrives (zINSTREAM from a helper thread), so
    that receiving and scanning overlap. The queue is bounded: memory stays at a few
    chunks however fast the client sends."""

    def __init__(self, scanner: ClamdScanner) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.result: concurrent.futures.Future[Verdict] = concurrent.futures.Future()
        self.buffer = bytearray()
        threading.Thread(target=self._run, args=(scanner,), daemon=True,
                         name="signgate-clamd-stream").start()

    def _run(self, scanner: ClamdScanner) -> None:
        try:
            self.result.set_result(scanner.scan_chunks(iter(self.queue.get, None)))
        except BaseException as exc:  # handed to the request: fail closed there
            self.result.set_exception(exc)

    def _put(self, item: bytes | None) -> None:
        """Blocks while clamd is behind; gives up once clamd has stopped reading."""
        while not self.result.done():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    async def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= CHUNK_WRITE:
            await self._send(bytes(self.buffer))
            self.buffer.clear()

    async def _send(self, item: bytes | None) -> None:
        if self.result.done():
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(self._put, item)

    async def finish(self) -> Verdict | SigngateError:
        if self.buffer:
            await self._send(bytes(self.buffer))
            self.buffer.clear()
        await self._send(None)
        try:
            return await asyncio.wrap_future(self.result)
        except SigngateError as exc:
            return exc
        except Exception as exc:
            return ScannerUnavailable("clamav", f"{type(exc).__name__}: {exc}")

    async def abandon(self) -> None:
        """The upload failed: end the stream (clamd's answer is not wanted)."""
        await self._send(None)


@dataclass
class Spooled:
    path: Path  # spool/<private directory>/<artifact's file name>: errors name the artifact
    size: int = 0
    sha256: str = ""
    _hash: Any = field(default_factory=lambda: hashlib.sha256())
    streamed: Verdict | SigngateError | None = None  # clamd's answer, given on the way

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


def _file_name(artifact_name: str) -> str:
    name = PurePosixPath(artifact_name.replace("\\", "/")).name
    safe = "".join(c if c.isprintable() else "_" for c in name)[:200]
    return safe if safe not in ("", ".", "..") else "artifact"


def spool_dir(ctx: Context) -> Path:
    path = ctx.settings.data_dir / "spool"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


async def receive(ctx: Context, directory: Path, stream: AsyncIterator[bytes], limit: int,
                  artifact_name: str) -> Spooled:
    """The request body into a file in ``directory`` (the upload's private spool directory,
    see ``spool.admit``), hashed and (with clamd configured) scanned on the way; more than
    ``limit`` bytes: PayloadTooLarge; a full disk: StorageFull. Whatever goes wrong (the
    client stalls or disconnects too), nothing is kept."""
    spooled = Spooled(directory / _file_name(artifact_name))
    clamd = ctx.part("scanners", Scanners).clamd
    streaming = _StreamedClamd(clamd) if clamd is not None else None
    try:
        fd = os.open(spooled.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb", buffering=CHUNK_WRITE) as out:
            async for chunk in stream:
                spooled.size += len(chunk)
                if spooled.size > limit:
                    raise too_large(limit)
                spooled._hash.update(chunk)
                out.write(chunk)
                if streaming is not None:
                    await streaming.feed(chunk)
    except OSError as exc:
        spooled.remove()
        if streaming is not None:
            await streaming.abandon()
        if exc.errno == errno.ENOSPC:
            raise StorageFull("the disk holding the upload spool is full",
                              code=ErrorCode.SPOOL_DISK_FULL) from exc
        raise
    except BaseException:
        spooled.remove()
        if streaming is not None:
            await streaming.abandon()
        raise
    spooled.sha256 = spooled._hash.hexdigest()
    if streaming is not None:
        spooled.streamed = await streaming.finish()
    return spooled


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the artifact is larger than the scan limit of {limit} bytes "
                           "(scan_max_bytes)", code=ErrorCode.ARTIFACT_TOO_LARGE)


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
        if isinstance(spooled.streamed, SigngateError):
            raise spooled.streamed
        verdicts = ctx.part("scanners", Scanners).scan(spooled.path, denied, spooled.streamed)
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
                                   stopping(ctx).is_set, configured=True))
    return side


@dataclass(frozen=True)
class UploadSign:
    """A signing request whose artifact comes in the body (see SignRequest)."""

    artifact_name: str
    format: str = "raw"
    digest_algorithm: str = "sha256"
    digest: str | None = None  # the client's own, compared with signgate's
    metadata: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    timestamp: bool = False


async def sign_upload(ctx: Context, caller: Caller, ref: str, request: UploadSign,
                      stream: AsyncIterator[bytes], declared: int | None) -> SignResult:
    """Receive, scan, hash and sign (or refuse) an uploaded artifact."""
    project, name = split_ref(ref)
    target = Target(Action.SIGN, request.artifact_name or ref, project, ref)
    try:
        actor = await run_in_threadpool(authorize, ctx, caller, target,
                                        lambda a: decide.may_sign_with(a, project, name),
                                        (project, name))
    except NotFound as exc:  # told to a caller who may see the key: on the record too
        await run_in_threadpool(record_refusal, ctx, caller, target,
                                exc.details.get("actor", ANONYMOUS), exc)
        raise
    algorithm = DigestAlgorithm.parse(request.digest_algorithm)
    try:  # an unknown format or parameter is refused (and recorded) before the upload
        formats.builder(request.format)
        formats.check_params(request.format, request.params)
    except SigngateError as exc:
        await run_in_threadpool(record_refusal, ctx, caller, target, actor.name, exc)
        raise
    spooled = await _receive_or_refuse(ctx, caller, target, actor.name, stream, declared,
                                       request.artifact_name)
    try:
        outcome, digest = await run_in_threadpool(
            examine, ctx, caller, ref, spooled, request.format, algorithm, request.params,
            request.digest)
        job = SignJob(caller, project, name, algorithm.value,
                      digest.hex() if digest is not None else "", request.artifact_name,
                      request.metadata, request.timestamp, request.format, request.params,
                      scan=outcome)
        return await ctx.part("sign_batcher", SignBatcher).submit_async(job)
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
        directory = await run_in_threadpool(
            spool.admit, spool_dir(ctx), actor, declared,
            per_identity=settings.upload_max_concurrent_per_identity,
            budget=settings.upload_spool_max_bytes)
        return await receive(ctx, directory, stream, limit, artifact_name)
    except (InvalidInput, LimitExceeded) as exc:
        # Too large, no length, too many in flight, no room, a body that stopped coming:
        # all refusals of this identity's upload, on the record.
        await run_in_threadpool(record_refusal, ctx, caller, target, actor, exc,
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
    actor = await run_in_threadpool(authorize, ctx, caller, target, decide.may_scan)
    spooled = await _receive_or_refuse(ctx, caller, target, actor.name, stream, declared,
                                       artifact_name)
    try:
        started = time.monotonic()
        outcome, _ = await run_in_threadpool(examine, ctx, caller, None, spooled)
        details = outcome.details() | {"seconds": round(time.monotonic() - started, 3)}
        if outcome.error is not None:
            await run_in_threadpool(record_refusal, ctx, caller, target, actor.name,
                                    outcome.error, {"scan": details})
            raise outcome.error
        return await run_in_threadpool(_record_scan, ctx, caller, target, actor.name,
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
